"""Receivers of contacts' signals: erasure, merge, new events (conversion attribution)."""

from __future__ import annotations

from django.conf import settings
from django.dispatch import receiver
from django.utils import timezone

from contacts.signals import contact_erasing, contacts_merged, events_ingested

INLINE_ATTRIBUTION_LIMIT = 1000


@receiver(contact_erasing, dispatch_uid="activation.contact_erasing")
def on_contact_erasing(sender, *, contact_id, **kwargs) -> None:
    from activation.services import contact_messages_scrub

    contact_messages_scrub(contact_id=contact_id)


@receiver(contacts_merged, dispatch_uid="activation.contacts_merged")
def on_contacts_merged(sender, *, survivor_id, merged_ids, **kwargs) -> None:
    from activation.services import contact_messages_move

    contact_messages_move(survivor_id=survivor_id, merged_ids=list(merged_ids))


@receiver(events_ingested, dispatch_uid="activation.events_ingested")
def on_events_ingested(
    sender, *, contact_ids, event_types, source="", contact_ids_by_type=None, **kwargs
) -> None:
    conversions = set(event_types) & set(settings.ACTIVATION_CONVERSION_EVENT_TYPES)
    if not conversions:
        return
    if contact_ids_by_type is not None:  # only the contacts who converted (batch ingestion)
        ids = sorted({int(i) for kind in conversions for i in contact_ids_by_type.get(kind, ())})
    else:
        ids = [int(i) for i in contact_ids]
    if len(ids) <= INLINE_ATTRIBUTION_LIMIT:
        from activation.services import conversions_attribute

        conversions_attribute(contact_ids=ids, now=timezone.now())
    else:
        from activation.tasks import attribute_conversions

        attribute_conversions.delay(ids)
