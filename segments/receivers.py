"""Receivers of other apps' signals. Cheap and idempotent: heavy work goes to a task."""

from __future__ import annotations

from django.conf import settings
from django.dispatch import receiver
from django.utils import timezone

from contacts.signals import contact_erasing, contacts_merged, events_deleted, events_ingested
from ops.signals import demo_ready

REALTIME_BATCH = 1_000


@receiver(events_ingested, dispatch_uid="segments-events-ingested")
def on_events_ingested(sender, *, contact_ids, event_types, source="", **kwargs) -> None:
    """Queue the real-time re-evaluation of the contacts that received events."""
    if not settings.SEGMENTS_REALTIME:
        return
    from segments.tasks import reevaluate_contacts

    ids = sorted({int(i) for i in contact_ids})
    types = sorted(event_types) if event_types is not None else None
    for start in range(0, len(ids), REALTIME_BATCH):
        batch = ids[start : start + REALTIME_BATCH]
        # A short argsrepr: Celery's own repr of 1,000 ids costs more than sending the task.
        reevaluate_contacts.apply_async(
            (batch, types),
            argsrepr=f"([{len(batch)} contact ids {batch[0]}…{batch[-1]}], {types!r})",
        )


@receiver(contacts_merged, dispatch_uid="segments-contacts-merged")
def on_contacts_merged(sender, *, survivor_id, merged_ids, **kwargs) -> None:
    from segments.services import memberships_merge
    from segments.tasks import reevaluate_contacts

    memberships_merge(survivor_id=survivor_id, merged_ids=merged_ids, now=timezone.now())
    reevaluate_contacts.delay([survivor_id], None)


@receiver(events_deleted, dispatch_uid="segments-events-deleted")
def on_events_deleted(sender, **kwargs) -> None:
    """Feature rows computed before the deletion may count deleted events: once it is
    committed, they are no longer folded forward (``features_fold_reset``)."""
    from django.db import transaction

    from segments.services import features_fold_reset

    transaction.on_commit(features_fold_reset)


@receiver(contact_erasing, dispatch_uid="segments-contact-erasing")
def on_contact_erasing(sender, *, contact_id, **kwargs) -> None:
    from segments.services import contact_segment_data_erase

    contact_segment_data_erase(contact_id=contact_id)


@receiver(demo_ready, dispatch_uid="segments-demo-ready")
def on_demo_ready(sender, **kwargs) -> None:
    from segments.demo import demo_segments_create

    demo_segments_create(now=timezone.now())
