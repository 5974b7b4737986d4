from __future__ import annotations

from datetime import datetime

from django.db.models import F

from ops.models import WorkerHeartbeat


def worker_heartbeat_record(*, worker: str, now: datetime) -> WorkerHeartbeat:
    """Create or touch the heartbeat row of ``worker``; the counter only grows."""
    heartbeat, created = WorkerHeartbeat.objects.get_or_create(
        worker=worker, defaults={"last_seen_at": now, "tasks_processed": 1}
    )
    if not created:
        WorkerHeartbeat.objects.filter(pk=heartbeat.pk).update(
            last_seen_at=now, tasks_processed=F("tasks_processed") + 1
        )
        heartbeat.refresh_from_db()
    return heartbeat
