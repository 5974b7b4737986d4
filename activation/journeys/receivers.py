"""Receivers: segment entries and new events start triggered campaigns (inline when few
contacts, through a worker task when many)."""

from __future__ import annotations

from django.conf import settings
from django.dispatch import receiver
from django.utils import timezone

from contacts.signals import events_ingested
from ops.signals import demo_ready
from segments.signals import contact_entered_segment


def _triggered_event_types() -> set[str]:
    from activation.journeys.models import CampaignSchedule, ScheduleKind, ScheduleState

    return set(
        CampaignSchedule.objects.filter(kind=ScheduleKind.EVENT, state=ScheduleState.ACTIVE)
        .values_list("trigger_event_type", flat=True)
        .distinct()
    )


@receiver(contact_entered_segment, dispatch_uid="journeys.contact_entered_segment")
def on_contact_entered_segment(sender, *, segment_id, contact_ids, at, **kwargs) -> None:
    from activation.journeys.models import CampaignSchedule, ScheduleKind

    if not CampaignSchedule.objects.filter(
        kind=ScheduleKind.SEGMENT_ENTRY, trigger_segment_id=segment_id
    ).exists():
        return
    ids = [int(i) for i in contact_ids]
    if len(ids) <= settings.JOURNEYS_INLINE_ENROLL_LIMIT:
        from activation.journeys.services import triggers_segment_entered

        triggers_segment_entered(segment_id=segment_id, contact_ids=ids, at=at)
    else:
        from activation.journeys.tasks import segment_entered

        segment_entered.delay(segment_id, ids, at.isoformat())


@receiver(events_ingested, dispatch_uid="journeys.events_ingested")
def on_events_ingested(sender, *, contact_ids, event_types, **kwargs) -> None:
    wanted = set(event_types) & _triggered_event_types()
    if not wanted:
        return
    ids = [int(i) for i in contact_ids]
    if len(ids) <= settings.JOURNEYS_INLINE_ENROLL_LIMIT:
        from activation.journeys.services import triggers_events

        triggers_events(contact_ids=ids, event_types=wanted, now=timezone.now())
    else:
        from activation.journeys.tasks import events_done

        events_done.delay(ids, sorted(wanted))


@receiver(demo_ready, dispatch_uid="journeys.demo_ready")
def on_demo_ready(sender, **kwargs) -> None:
    from activation.journeys.demo import demo_campaigns_create

    demo_campaigns_create(now=timezone.now())
