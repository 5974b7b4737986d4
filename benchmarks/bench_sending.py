"""Sending benchmark (PostgreSQL).

1. Eligibility + outbox creation for a campaign whose audience is every seeded contact
   (target ≤ 60 s for 1,000,000 contacts), compared with a bare ``INSERT … SELECT`` of the same
   number of rows into a copy of the outbox table (no eligibility at all).
2. Delivery throughput: one, then two real Celery worker processes (Redis broker when
   ``redis-server`` is installed, else the filesystem broker) deliver ``DELIVERY_MESSAGES`` emails to a local
   SMTP sink (target ≥ 500 emails/s), compared with one bare smtplib connection sending
   pre-built messages to the same sink (no database, no rendering). The sink is Postfix's
   ``smtp-sink`` (a C test server, Debian package ``postfix``; ``make bench`` installs it when
   it can) so that the figure measures Cible rather than the sink; without it, an aiosmtpd
   server in its own process, whose own ceiling (~500 messages/s on this machine) then caps
   both figures.

Re-runnable on a kept cluster (``--keep``): what an earlier run created is deleted first.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import time as dt_time
from email.message import EmailMessage
from pathlib import Path

from benchmarks.harness import Context, Result, timed

DELIVERY_MESSAGES = int(os.environ.get("BENCH_SENDING_DELIVERY_MESSAGES", "20000"))
ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class CountingHandler:
    """Accepts every message; counts recipients in a counter shared with the parent."""

    def __init__(self, counter):
        self.counter = counter

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd API)
        with self.counter.get_lock():
            self.counter.value += len(envelope.rcpt_tos)
        return "250 OK"


def _sink_main(port: int, counter, ready) -> None:
    """A real SMTP server (aiosmtpd) in its own process, so neither the benchmark's polling
    nor anything else shares its interpreter lock."""
    from aiosmtpd.controller import Controller

    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every command
    controller = Controller(CountingHandler(counter), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    threading.Event().wait()


class SmtpSink:
    """``with SmtpSink() as sink``: ``sink.port``, ``sink.count`` (messages received)."""

    name = "aiosmtpd"

    def __enter__(self) -> SmtpSink:
        context = multiprocessing.get_context("spawn")
        self.port = _free_port()
        self._counter = context.Value("q", 0)
        ready = context.Event()
        self._process = context.Process(
            target=_sink_main, args=(self.port, self._counter, ready), daemon=True
        )
        self._process.start()
        if not ready.wait(30):
            raise RuntimeError("the SMTP sink did not start")
        return self

    @property
    def count(self) -> int:
        return self._counter.value

    def reset(self) -> None:
        with self._counter.get_lock():
            self._counter.value = 0

    def __exit__(self, *exc) -> None:
        self._process.terminate()
        self._process.join(10)


class PostfixSink:
    """Postfix's ``smtp-sink`` test server: accepts every message and prints a running
    ``mesg=N`` counter, which a thread reads. Same interface as ``SmtpSink``."""

    name = "Postfix smtp-sink"

    @staticmethod
    def binary() -> str | None:
        return shutil.which("smtp-sink") or shutil.which("smtp-sink", path="/usr/sbin:/usr/bin")

    def __enter__(self) -> PostfixSink:
        self.port = _free_port()
        command = [self.binary(), "-c"]
        if os.geteuid() == 0:
            command += ["-u", "nobody"]  # it refuses to keep root privileges
        command += [f"127.0.0.1:{self.port}", "256"]
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._received = 0
        self._base = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("smtp-sink did not start")

    def _read(self) -> None:
        buffer = b""
        while chunk := self._process.stdout.read1(65536):
            buffer = (buffer + chunk)[-4096:]
            for record in reversed(buffer.replace(b"\r", b"\n").split(b"\n")):
                if b"mesg=" in record:
                    try:
                        self._received = int(record.rsplit(b"mesg=", 1)[1])
                        break
                    except ValueError:
                        continue  # a record cut in the middle

    @property
    def count(self) -> int:
        return self._received - self._base

    def reset(self) -> None:
        self._base = self._received

    def __exit__(self, *exc) -> None:
        self._process.terminate()
        self._process.wait(10)


def smtp_sink() -> SmtpSink | PostfixSink:
    """Postfix's smtp-sink when installed, unless ``BENCH_SENDING_SINK=aiosmtpd``."""
    wanted = os.environ.get("BENCH_SENDING_SINK", "smtp-sink")
    return PostfixSink() if wanted != "aiosmtpd" and PostfixSink.binary() else SmtpSink()


def _cleanup() -> None:
    """Remove what earlier runs of this module created (segments, campaigns, runs, outbox
    rows), set-based, so the module can run again on a kept cluster."""
    from django.db import connection

    from activation.models import Campaign, CampaignRun
    from segments.models import Segment

    runs = list(
        CampaignRun.objects.filter(campaign__name__startswith="Bench: ").values_list(
            "pk", flat=True
        )
    )
    with connection.cursor() as cursor:
        if runs:
            cursor.execute(
                "DELETE FROM activation_deliveryattempt WHERE message_id IN "
                "(SELECT id FROM activation_outboxmessage WHERE run_id = ANY(%s))",
                [runs],
            )
            cursor.execute("DELETE FROM activation_attribution WHERE run_id = ANY(%s)", [runs])
            cursor.execute("DELETE FROM activation_outboxmessage WHERE run_id = ANY(%s)", [runs])
        segments = list(
            Segment.objects.filter(name__startswith="bench: ").values_list("pk", flat=True)
        )
        if segments:
            cursor.execute(
                "DELETE FROM segments_segmentmembership WHERE segment_id = ANY(%s)", [segments]
            )
    CampaignRun.objects.filter(pk__in=runs).delete()
    Campaign.objects.filter(name__startswith="Bench: ").delete()
    Segment.objects.filter(name__startswith="bench: ").delete()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE activation_outboxmessage")
        cursor.execute("VACUUM ANALYZE segments_segmentmembership")


def _segment_of_all_contacts(name: str, *, limit: int | None = None):
    from django.db import connection
    from django.utils import timezone

    from segments.models import Segment

    # Memberships written below; inactive, so no scheduled or real-time computation (another
    # module's, on the same kept cluster) evaluates it.
    segment = Segment.objects.create(name=name, rule={"all": []}, is_active=False)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO segments_segmentmembership (segment_id, contact_id, entered_at) "
            "SELECT %s, id, %s FROM contacts_contact ORDER BY id LIMIT %s",
            [segment.pk, timezone.now(), limit or 2**62],
        )
        # Steady state, as autovacuum leaves a segment computed before a launch (hint bits
        # set, statistics current): the first read of 1M fresh rows is not what we measure.
        cursor.execute("VACUUM ANALYZE segments_segmentmembership")
    return segment


def _campaign(name: str, segment, *, capped: bool = True, quiet_hours: bool = True):
    from activation.models import Campaign, Template, TemplateVersion
    from consent.models import Purpose

    template, _ = Template.objects.get_or_create(name="Bench", defaults={"channel": "email"})
    TemplateVersion.objects.get_or_create(
        template=template,
        locale="fr",
        defaults={
            "subject": "Bonjour {{ contact.first_name|default:'' }}",
            "html": "<p>Bonjour {{ contact.first_name|default:'' }},</p>"
            '<p><a href="https://shop.example.fr/soldes">Soldes</a></p>',
        },
    )
    campaign = Campaign.objects.create(
        name=name,
        purpose=Purpose.objects.get(code="newsletter"),
        channel="email",
        template=template,
        frequency_capped=capped,
        status="active",
        # The delivery test measures throughput whatever the hour: a one-minute quiet window.
        **(
            {}
            if quiet_hours
            else {"quiet_hours_start": dt_time(3, 0), "quiet_hours_end": dt_time(3, 1)}
        ),
    )
    campaign.segments.add(segment)
    return campaign


def _bare_insert_seconds(rows: int) -> float:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bench_outbox (LIKE activation_outboxmessage INCLUDING ALL)")
        cursor.execute("SELECT id FROM activation_campaignrun ORDER BY id DESC LIMIT 1")
        run_id = cursor.fetchone()[0]
        with timed() as t:
            cursor.execute(
                "INSERT INTO bench_outbox (run_id, contact_id, step, channel, variant, state, "
                "skip_reason, attempts, next_attempt_at, claim_token, provider_message_id, "
                "message_id, error, created_at) SELECT %s, id, 0, 'email', '', 'queued', '', 0, "
                "now(), '', '', '', '', now() FROM contacts_contact ORDER BY id LIMIT %s",
                [run_id, rows],
            )
        cursor.execute("DROP TABLE bench_outbox")
    return t["seconds"]


def _bare_smtp_rate(port: int, n: int) -> float:
    message = EmailMessage()
    message["From"] = "bench@cible.localhost"
    message["Subject"] = "Bonjour"
    message.set_content("Bonjour,\n")
    message.add_alternative("<p>Bonjour,</p>", subtype="html")
    with smtplib.SMTP("127.0.0.1", port) as smtp, timed() as t:
        for i in range(n):
            del message["To"]
            message["To"] = f"c{i}@example.fr"
            smtp.send_message(message)
    return n / t["seconds"]


def _broker(tmp: Path) -> tuple[str, subprocess.Popen | None]:
    server = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if server:
        port = _free_port()
        process = subprocess.Popen(
            [server, "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(tmp)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"redis://127.0.0.1:{port}/0"
        import redis

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                redis.Redis.from_url(url).ping()
                return url, process
            except redis.ConnectionError:
                time.sleep(0.1)
        process.kill()
    for sub in ("queue", "processed", "control"):
        (tmp / "broker" / sub).mkdir(parents=True, exist_ok=True)
    return "filesystem://", None


def _workers(n: int, *, broker: str, tmp: Path, database_url: str, smtp_port: int) -> list:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DEBUG": "0",
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": broker,
        "CELERY_BROKER_FOLDER": str(tmp / "broker"),
        "EMAIL_URL": f"smtp://127.0.0.1:{smtp_port}",
        "EMAIL_RATE_PER_SECOND": "0",
        "LOG_LEVEL": "WARNING",
    }
    return [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-Q",
                "send",
                "-P",
                "solo",
                "--without-gossip",
                "--without-mingle",
                "-l",
                "WARNING",
                "-n",
                f"bench{i}@%h",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(tmp / f"worker{i}.log").open("w"),
        )
        for i in range(n)
    ]


def _wait_for_workers(producer, n: int, *, timeout: float = 120) -> bool:
    """Until ``n`` workers answer a ping (Redis broker), so worker start-up is not timed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if len(producer.control.ping(timeout=1.0) or []) >= n:
                return True
        except Exception:  # noqa: BLE001 - broker without remote control: fall back to waiting
            time.sleep(10)
            return False
    return False


def _stop(workers: list) -> None:
    for worker in workers:
        worker.terminate()
    for worker in workers:
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()


def run(ctx: Context) -> None:
    from celery import Celery
    from django.utils import timezone

    from activation.models import OutboxMessage
    from activation.services import campaign_run_launch, eligibility_report

    _cleanup()

    # 1. Eligibility + outbox creation for the whole seeded population.
    everyone = _segment_of_all_contacts("bench: everyone")
    campaign = _campaign("Bench: everyone", everyone)
    with timed() as dry:
        report = eligibility_report(campaign=campaign, now=timezone.now())
    with timed() as t:
        run_all = campaign_run_launch(campaign=campaign, now=timezone.now())
    rows = OutboxMessage.objects.filter(run=run_all).count()
    bare = _bare_insert_seconds(rows)
    full_scale = ctx.contacts >= 1_000_000
    ctx.record(
        Result(
            benchmark="sending: eligibility + outbox creation",
            value=t["seconds"],
            unit="s",
            target="≤ 60 s for a 1,000,000-contact audience",
            passed=(t["seconds"] <= 60) if full_scale else None,
            comparison=f"bare INSERT…SELECT of the same {rows:,} rows, no eligibility: {bare:.1f} s; "
            f"dry run (counts + samples): {dry['seconds']:.1f} s",
            details={
                "audience": run_all.audience_size,
                "rows": rows,
                "by_state": run_all.counts["by_state"],
                "by_reason": report.by_reason,
                "eligible": report.eligible,
                "load_average": os.getloadavg(),
            },
        )
    )
    _cleanup()  # the 1M rows of that run are not needed for the delivery test

    # 2. Delivery throughput with one, then two worker processes (the per-worker rate and how
    # it scales, for docs/scaling.md).
    tmp = Path(tempfile.mkdtemp(prefix="cible-bench-send-"))
    broker, redis_process = _broker(tmp)
    workers = []
    try:
        with smtp_sink() as sink:
            subset = _segment_of_all_contacts("bench: delivery", limit=DELIVERY_MESSAGES * 3)
            producer = Celery("bench-producer", broker=broker, set_as_current=False)
            if broker.startswith("filesystem"):
                folder = tmp / "broker"
                producer.conf.broker_transport_options = {
                    "data_folder_in": str(folder / "queue"),
                    "data_folder_out": str(folder / "queue"),
                    "processed_folder": str(folder / "processed"),
                    "control_folder": str(folder / "control"),
                }
            bare_rate = None
            rates: dict[int, float] = {}
            for n_workers in (1, 2):
                # Workers first, idle: a worker that starts with queued rows begins sending
                # on its own (the start-up sweep), before the clock would start.
                workers = _workers(
                    n_workers,
                    broker=broker,
                    tmp=tmp,
                    database_url=ctx.database_url,
                    smtp_port=sink.port,
                )
                _wait_for_workers(producer, n_workers)
                delivery_campaign = _campaign(
                    f"Bench: delivery, {n_workers} worker(s)",
                    subset,
                    capped=False,
                    quiet_hours=False,
                )
                run_send = campaign_run_launch(campaign=delivery_campaign, now=timezone.now())
                queued = run_send.messages.filter(state="queued")
                surplus = list(
                    queued.order_by("id").values_list("id", flat=True)[DELIVERY_MESSAGES:]
                )
                OutboxMessage.objects.filter(id__in=surplus).update(state="cancelled")
                target = run_send.messages.filter(state="queued").count()
                if bare_rate is None:
                    bare_rate = _bare_smtp_rate(sink.port, min(target, 5000))
                sink.reset()
                # The launch queued its own delivery tasks: dropped, so that no worker starts
                # sending before the clock does (each worker is given one task below).
                with producer.connection_for_write() as connection:
                    connection.default_channel.queue_purge("send")
                load = os.getloadavg()
                start = time.perf_counter()
                for _ in range(n_workers):
                    producer.send_task("activation.tasks.deliver", args=["email"], queue="send")
                deadline = start + max(600, target / 50)
                sent = 0
                while time.perf_counter() < deadline:
                    sent = run_send.messages.filter(state="sent").count()
                    if sent >= target:
                        break
                    time.sleep(0.2)
                seconds = time.perf_counter() - start
                rate = rates[n_workers] = sent / seconds
                _stop(workers)
                workers = []
                if sent == 0:  # say why instead of dividing by a zero rate below
                    logs = " | ".join(
                        (tmp / f"worker{i}.log").read_text(errors="replace")[-400:].strip()
                        for i in range(n_workers)
                    )
                    raise RuntimeError(
                        f"{n_workers} worker(s) sent no message in {seconds:.0f} s "
                        f"(sink {sink.name} received {sink.count}); worker logs: {logs or '-'}"
                    )
                scaling = "" if n_workers == 1 else f"; {rate / rates[1]:.2f}× the rate of 1 worker"
                ctx.record(
                    Result(
                        benchmark=f"sending: email delivery, {n_workers} worker process"
                        + ("es" if n_workers > 1 else ""),
                        value=rate,
                        unit="emails/s",
                        target="≥ 500 emails/s to a local SMTP sink" if n_workers == 2 else "",
                        passed=rate >= 500 if n_workers == 2 else None,
                        comparison=f"one bare smtplib connection, pre-built messages, no "
                        f"database: {bare_rate:,.0f} emails/s (same sink: {sink.name}); "
                        f"{rate / n_workers:,.0f} emails/s per worker{scaling}",
                        details={
                            "sink": sink.name,
                            "workers": n_workers,
                            "per_worker_rate": rate / n_workers,
                            "messages": target,
                            "sent": sent,
                            "received_by_sink": sink.count,
                            "seconds": seconds,
                            "broker": broker.split(":")[0],
                            "cpus": os.cpu_count(),
                            "load_average_at_start": load,
                            "load_average_at_end": os.getloadavg(),
                        },
                    )
                )
    finally:
        _stop(workers)
        if redis_process is not None:
            redis_process.terminate()
            redis_process.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)
