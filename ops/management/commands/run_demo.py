"""``manage.py run_demo`` — the embedded product in one process tree (used by ``make demo``).

Migrates the SQLite database under var/, creates the demo admin, loads demo data once, then runs
the web server, one Celery worker and beat on the filesystem broker. Ctrl-C stops all of them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from ops.signals import demo_ready

DEMO_USER = "admin"
DEMO_PASSWORD = "cible-demo"  # noqa: S105 (embedded demo only; printed on start)


def demo_environment(*, port: int, environ: dict[str, str] | None = None) -> dict[str, str]:
    """Environment of the demo's web, worker and beat processes (from ``environ``, default
    this process's). Links in sent messages (tracking, unsubscribe, preference centre) point at
    the address the demo serves — ``http://127.0.0.1:<port>`` — unless
    ``CIBLE_PUBLIC_BASE_URL`` is set explicitly."""
    env = dict(os.environ if environ is None else environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    if not env.get("CIBLE_PUBLIC_BASE_URL"):
        env["CIBLE_PUBLIC_BASE_URL"] = f"http://127.0.0.1:{port}"
    return env


class Command(BaseCommand):
    help = "Run the embedded demo: web + worker + beat on SQLite and the filesystem broker."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--contacts", type=int, default=2000)
        parser.add_argument("--events-per-contact", type=float, default=25.0)
        parser.add_argument("--no-serve", action="store_true", help="set up only; start nothing")

    def handle(
        self, *args, port: int, contacts: int, events_per_contact: float, no_serve: bool, **options
    ):
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("Database migrated: " + str(settings.DATABASES["default"]["NAME"]))
        user_model = get_user_model()
        if not user_model.objects.filter(username=DEMO_USER).exists():
            user_model.objects.create_superuser(DEMO_USER, "admin@cible.localhost", DEMO_PASSWORD)
        call_command(
            "seed_demo",
            contacts=contacts,
            events_per_contact=events_per_contact,
            seed=42,
            if_empty=True,
            stdout=self.stdout,
        )
        # Apps add their own demo objects (segments, campaigns, …) by listening to demo_ready.
        demo_ready.send(sender=self.__class__)
        # Static files as production serves them: hashed names, gzip variants (WhiteNoise).
        # Part of the set-up: a server started later on this folder (runserver, gunicorn)
        # serves the collected files.
        call_command("collectstatic", interactive=False, verbosity=0)
        if no_serve:
            return
        env = demo_environment(port=port)
        python = sys.executable
        processes = {
            "web": [python, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
            "worker": [
                python,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-P",
                "solo",
                "-l",
                "INFO",
                "-Q",
                "default,ingest,segments,ml,send",
                "--without-gossip",
                "--without-mingle",
            ],
            "beat": [python, "-m", "celery", "-A", "config", "beat", "-l", "INFO"],
        }
        running = {
            name: subprocess.Popen(cmd, env=env, start_new_session=True)
            for name, cmd in processes.items()
        }
        from ops.tasks import record_worker_heartbeat

        # First heartbeats now (default and send queues, as /readyz checks both); beat sends
        # them every minute.
        record_worker_heartbeat.delay()
        record_worker_heartbeat.apply_async(queue="send")
        self.stdout.write(
            self.style.SUCCESS(
                f"\nCible is running: http://127.0.0.1:{port}/admin/  (login {DEMO_USER} / {DEMO_PASSWORD})\n"
                "Worker + beat on the filesystem broker (var/broker/). Press Ctrl-C to stop everything.\n"
            )
        )
        # `kill`, a terminal closing or a service manager stop everything like Ctrl-C does
        # (the children run in their own sessions, so nothing else would reach them).
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        signal.signal(signal.SIGHUP, signal.default_int_handler)
        try:
            while all(p.poll() is None for p in running.values()):
                time.sleep(0.5)
            dead = [name for name, p in running.items() if p.poll() is not None]
            self.stderr.write(
                f"Process stopped unexpectedly: {', '.join(dead)}; stopping the others."
            )
        except KeyboardInterrupt:
            self.stdout.write("\nStopping web, worker and beat…")
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(signum, signal.SIG_IGN)  # a second signal must not cut this short
            for p in running.values():
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGTERM)
            deadline = time.monotonic() + 15
            for p in running.values():
                try:
                    p.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
            self.stdout.write("Stopped.")
