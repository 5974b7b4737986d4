"""Thin Celery wrappers (queue ``send``). Tasks carry no row ids: they claim due outbox rows,
so a task redelivered after a worker crash (``acks_late``) can never re-send a sent row."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from activation import services


@shared_task(name="activation.tasks.deliver", acks_late=True, ignore_result=True)
def deliver(channel: str) -> int:
    stats, next_due_in = services.outbox_deliver_pending(channel=channel)
    if next_due_in is not None:
        deliver.apply_async((channel,), countdown=max(1.0, next_due_in))
    return stats.sent


@shared_task(name="activation.tasks.outbox_sweep", acks_late=True, ignore_result=True)
def outbox_sweep() -> dict:
    return services.outbox_sweep(now=timezone.now())


@shared_task(name="activation.tasks.prepare_run", acks_late=True, ignore_result=True)
def prepare_run(run_id: int) -> str:
    return services.campaign_run_prepare_and_deliver(run_id=run_id, now=timezone.now()).status


@shared_task(name="activation.tasks.attribute_conversions", acks_late=True, ignore_result=True)
def attribute_conversions(contact_ids: list[int]) -> int:
    return services.conversions_attribute(contact_ids=contact_ids, now=timezone.now())
