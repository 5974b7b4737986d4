"""Readiness: is this installation able to do its work right now?

``readiness_report`` checks, each on its own (one failing never hides another): the database,
the broker, the cache, beat's heartbeat age, the freshest worker heartbeat of each queue in
``OPS_READY_QUEUES``, the age of the oldest due outbox message per channel, and each
channel's circuit breaker. ``ready`` is false when any of them is down or past its threshold
(``OPS_READY_*`` settings); ``/readyz`` answers 200 or 503 with the report as JSON — also
when the database itself is unreachable.
"""

from __future__ import annotations

import socket
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.db import connection

BEAT_WORKER_PREFIX = "beat@"


def _error(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def _check_database() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return {"ok": True, "vendor": connection.vendor}


def _check_broker() -> dict:
    from config.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=settings.OPS_READY_TIMEOUT_SECONDS)
        return {"ok": True, "transport": conn.transport_cls}


def _check_cache() -> dict:
    key = f"cible:readyz:{socket.gethostname()}"
    cache.set(key, "1", timeout=30)
    if cache.get(key) != "1":
        raise RuntimeError("the cache did not return what was just written")
    return {"ok": True}


def heartbeat_name(*, hostname: str, queue: str) -> str:
    """Name of a worker heartbeat row: the host, plus the queue when not the default one."""
    return hostname if queue == settings.CELERY_TASK_DEFAULT_QUEUE else f"{hostname}/{queue}"


def _age(now: datetime, at: datetime | None) -> float | None:
    return None if at is None else round(max(0.0, (now - at).total_seconds()), 1)


def _check_heartbeats(now: datetime) -> tuple[dict, dict]:
    from ops.models import WorkerHeartbeat

    rows = WorkerHeartbeat.objects.values_list("worker", "last_seen_at")
    beat_at = None
    per_queue: dict[str, datetime | None] = {q: None for q in settings.OPS_READY_QUEUES}
    for worker, seen in rows:
        if worker.startswith(BEAT_WORKER_PREFIX):
            beat_at = max(beat_at, seen) if beat_at else seen
            continue
        _host, _slash, queue = worker.partition("/")
        queue = queue or settings.CELERY_TASK_DEFAULT_QUEUE
        if queue in per_queue:
            per_queue[queue] = max(per_queue[queue], seen) if per_queue[queue] else seen
    beat_age = _age(now, beat_at)
    beat = {
        "ok": beat_age is not None and beat_age <= settings.OPS_READY_BEAT_MAX_AGE_SECONDS,
        "age_seconds": beat_age,
        "max_age_seconds": settings.OPS_READY_BEAT_MAX_AGE_SECONDS,
    }
    queues = {}
    for queue, seen in per_queue.items():
        age = _age(now, seen)
        queues[queue] = {
            "ok": age is not None and age <= settings.OPS_READY_WORKER_MAX_AGE_SECONDS,
            "age_seconds": age,
        }
    workers = {
        "ok": all(q["ok"] for q in queues.values()),
        "max_age_seconds": settings.OPS_READY_WORKER_MAX_AGE_SECONDS,
        "queues": queues,
    }
    return beat, workers


def _check_outbox(now: datetime) -> dict:
    from activation.selectors import outbox_oldest_due

    oldest = {channel: _age(now, at) for channel, at in outbox_oldest_due(now=now).items()}
    worst = max((age for age in oldest.values() if age is not None), default=None)
    return {
        "ok": worst is None or worst <= settings.OPS_READY_QUEUE_MAX_AGE_SECONDS,
        "oldest_due_age_seconds": oldest,
        "max_age_seconds": settings.OPS_READY_QUEUE_MAX_AGE_SECONDS,
    }


def _check_breakers() -> dict:
    from activation.breaker import breaker_states

    states = breaker_states()
    return {"ok": all(s["state"] == "closed" for s in states.values()), "channels": states}


def readiness_report(*, now: datetime) -> dict:
    """``{"ready": bool, "checks": {name: {"ok": bool, …}}}``; never raises."""
    checks: dict[str, dict] = {}

    def run(name: str, probe) -> None:
        try:
            checks[name] = probe()
        except Exception as exc:  # noqa: BLE001 - a failed probe is the report
            checks[name] = {"ok": False, "error": _error(exc)}

    run("database", _check_database)
    run("broker", _check_broker)
    run("cache", _check_cache)
    if checks["database"]["ok"]:
        try:
            checks["beat"], checks["workers"] = _check_heartbeats(now)
        except Exception as exc:  # noqa: BLE001
            checks["beat"] = checks["workers"] = {"ok": False, "error": _error(exc)}
        run("outbox", lambda: _check_outbox(now))
    else:
        unknown = {"ok": False, "error": "unknown: the database is unreachable"}
        checks["beat"] = checks["workers"] = checks["outbox"] = unknown
    if checks["cache"]["ok"]:
        run("providers", _check_breakers)
    else:
        checks["providers"] = {"ok": False, "error": "unknown: the cache is unreachable"}
    return {"ready": all(c["ok"] for c in checks.values()), "checks": checks}


def beat_heartbeat_record(*, hostname: str, now: datetime) -> None:
    """Beat's own heartbeat (one row per beat host), written by ``ops.beat``'s scheduler."""
    from ops.models import WorkerHeartbeat

    name = f"{BEAT_WORKER_PREFIX}{hostname}"
    updated = WorkerHeartbeat.objects.filter(worker=name).update(last_seen_at=now)
    if not updated:
        WorkerHeartbeat.objects.get_or_create(
            worker=name, defaults={"last_seen_at": now, "tasks_processed": 0}
        )
