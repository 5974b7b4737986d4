"""Thin Celery wrappers (queue ``send``). Tasks carry no row ids: they claim due outbox rows,
so a task redelivered after a worker crash (``acks_late``) can never re-send a sent row.

A lost database or broker connection does not end delivery: the delivery loop reconnects and
retries in-process (``ACTIVATION_DB_RETRY_SECONDS``); past that the task is retried by Celery
with exponential backoff (no limit: re-running it is always safe), and a worker that (re)starts
enqueues delivery for every channel with due rows, so nothing waits for beat alone.
"""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import task_failure, worker_ready
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from activation import services
from activation.broker import BROKER_ERRORS
from activation.metrics import metrics_task_failure_count

logger = logging.getLogger(__name__)

# Retried by Celery, with backoff (2, 4, 8 … 300 s, jittered) and no retry limit.
TRANSIENT_ERRORS = (OperationalError, InterfaceError, *BROKER_ERRORS)
RETRY = {
    "autoretry_for": TRANSIENT_ERRORS,
    "retry_backoff": 2,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": None,
}


@shared_task(name="activation.tasks.deliver", acks_late=True, ignore_result=True, **RETRY)
def deliver(channel: str) -> int:
    stats, next_due_in = services.outbox_deliver_pending(channel=channel)
    if next_due_in is not None:
        services.outbox_delivery_start(channel=channel, tasks=1, countdown=max(1.0, next_due_in))
    return stats.sent


@shared_task(name="activation.tasks.outbox_sweep", acks_late=True, ignore_result=True, **RETRY)
def outbox_sweep() -> dict:
    return services.outbox_sweep(now=timezone.now())


@shared_task(name="activation.tasks.prepare_run", acks_late=True, ignore_result=True, **RETRY)
def prepare_run(run_id: int) -> str:
    return services.campaign_run_prepare_and_deliver(run_id=run_id, now=timezone.now()).status


@shared_task(name="activation.tasks.attribute_conversions", acks_late=True, ignore_result=True)
def attribute_conversions(contact_ids: list[int]) -> int:
    return services.conversions_attribute(contact_ids=contact_ids, now=timezone.now())


@worker_ready.connect(dispatch_uid="cible-delivery-on-worker-start")
def _start_delivery_on_worker_start(sender=None, **_kwargs) -> None:
    """A (re)started worker restarts due delivery itself (the sweep: expired leases back in
    the queue, one delivery task per channel with due rows)."""
    try:
        services.outbox_sweep(now=timezone.now())
    except Exception as exc:  # noqa: BLE001 - the periodic sweep covers it
        logger.warning("delivery not restarted at worker start (%s); the sweep will", exc)


@task_failure.connect(dispatch_uid="cible-task-failure-counter")
def _count_task_failure(sender=None, **_kwargs) -> None:
    metrics_task_failure_count(getattr(sender, "name", "unknown"))
