"""Run a command-line program (``celery …``) with its wall clock shifted: ``python -m
tests.shifted_clock HOURS celery -A config worker …``. Journey tests use it for "a day later"
workers: what the product schedules for tomorrow is due for that worker now, while the rest of
the test (web server, browser, local servers) keeps the real time."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

import time_machine


def main() -> None:
    hours = float(sys.argv[1])
    program = sys.argv[2]
    sys.argv = [program, *sys.argv[3:]]
    time_machine.travel(datetime.now(UTC) + timedelta(hours=hours), tick=True).start()
    if program != "celery":
        raise SystemExit(f"tests.shifted_clock runs celery only, not {program!r}")
    from celery.__main__ import main as celery_main

    celery_main()


if __name__ == "__main__":
    main()
