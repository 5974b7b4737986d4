"""Thin Celery wrappers (queue ``send``). Every task is safe to run twice: occurrences are
unique per slot, enrolments per entry, outbox rows per (run, contact, step)."""

from __future__ import annotations

from datetime import datetime

from celery import shared_task
from django.utils import timezone

from activation.journeys import services
from activation.journeys.models import CampaignSchedule


def _at(iso: str | None) -> datetime:
    return datetime.fromisoformat(iso) if iso else timezone.now()


@shared_task(name="activation.journeys.tasks.fire_schedule", acks_late=True, ignore_result=True)
def fire_schedule(schedule_id: int, now: str | None = None) -> str:
    schedule = CampaignSchedule.objects.select_related("campaign").filter(pk=schedule_id).first()
    occurrence = schedule and services.schedule_fire(schedule=schedule, now=_at(now))
    return occurrence.outcome if occurrence else "nothing due"


@shared_task(name="activation.journeys.tasks.launch_now", acks_late=True, ignore_result=True)
def launch_now(schedule_id: int, occurrence_at: str) -> str:
    schedule = CampaignSchedule.objects.select_related("campaign").get(pk=schedule_id)
    when = datetime.fromisoformat(occurrence_at)
    return services.occurrence_launch(schedule=schedule, occurrence_at=when, now=when).outcome


@shared_task(name="activation.journeys.tasks.advance", acks_late=True, ignore_result=True)
def advance(now: str | None = None) -> dict:
    return services.workflows_advance(now=datetime.fromisoformat(now) if now else None)


@shared_task(name="activation.journeys.tasks.segment_entered", acks_late=True, ignore_result=True)
def segment_entered(segment_id: int, contact_ids: list[int], at: str) -> dict:
    return services.triggers_segment_entered(
        segment_id=segment_id, contact_ids=contact_ids, at=datetime.fromisoformat(at)
    )


@shared_task(name="activation.journeys.tasks.events_done", acks_late=True, ignore_result=True)
def events_done(contact_ids: list[int], event_types: list[str]) -> dict:
    return services.triggers_events(
        contact_ids=contact_ids, event_types=set(event_types), now=timezone.now()
    )
