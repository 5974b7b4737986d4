"""Real Celery worker processes for end-to-end tests (no eager mode, no mocks)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parents[1]


def filesystem_broker_folder(base: Path) -> tuple[Path, dict]:
    """Create a private kombu filesystem broker under ``base``; return it and its options."""
    folder = base / "broker"
    for name in ("queue", "processed", "control"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    options = {
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "processed_folder": str(folder / "processed"),
        "control_folder": str(folder / "control"),
    }
    return folder, options


def reset_producer_pools(app) -> None:
    """Make the next .delay() connect with the current broker settings (pools are cached)."""
    app._pool = None
    if "amqp" in app.__dict__:
        app.__dict__["amqp"]._producer_pool = None


def subprocess_database_url() -> str:
    """DATABASE_URL of the database the current test is using (the test database)."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    return f"postgres://{s['USER']}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


@contextlib.contextmanager
def celery_worker(
    *,
    broker_url: str,
    broker_folder: Path | None = None,
    queues: str = "default",
    extra_env: dict[str, str] | None = None,
    clock_shift_hours: float = 0.0,
) -> Iterator[subprocess.Popen]:
    """A real Celery worker subprocess (solo pool) for the duration of the block; with
    ``clock_shift_hours`` its wall clock runs that far ahead (``tests.shifted_clock``).

    Its output is drained by a thread into ``process.output`` (a list of lines, for failure
    reports): an undrained pipe fills up and blocks the worker mid-task."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DEBUG": "0",
        "DATABASE_URL": subprocess_database_url(),
        "CELERY_BROKER_URL": broker_url,
    }
    if broker_folder is not None:
        env["CELERY_BROKER_FOLDER"] = str(broker_folder)
    env.update(extra_env or {})
    program = (
        ["-m", "tests.shifted_clock", str(clock_shift_hours), "celery"]
        if clock_shift_hours
        else ["-m", "celery"]
    )
    process = subprocess.Popen(
        [
            sys.executable,
            *program,
            "-A",
            "config",
            "worker",
            "-Q",
            queues,
            "-P",
            "solo",
            "--without-gossip",
            "--without-mingle",
            "-l",
            "INFO",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    process.output = []
    reader = threading.Thread(target=lambda: process.output.extend(process.stdout), daemon=True)
    reader.start()
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until(
    condition: Callable[[], bool], *, timeout: float = 60.0, what: str = "condition"
) -> None:
    """Poll ``condition`` until true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
