"""Receivers of the contacts app's signals (connected in ``ConsentConfig.ready``).

Each is idempotent: inbound SMS events are acted on once (``source_event_id``), the suppression
list is unique per address, and merges re-point rows that are already re-pointed to nothing.
"""

from __future__ import annotations

from consent import services


def on_events_ingested(sender, *, contact_ids, event_types, source="", **kwargs) -> None:
    """SMS STOP withdraws SMS consent; hard bounces and complaints suppress the address.

    Events from the public tracking endpoint (source ``tracking``, unauthenticated) never touch
    consent or suppression, whatever their type."""
    event_types = set(event_types or ())
    contact_ids = [int(i) for i in contact_ids]
    if not contact_ids or source == "tracking":
        return
    if "sms_inbound" in event_types:
        services.sms_stop_process(contact_ids=contact_ids)
    if event_types & {"email_bounce", "email_complaint"}:
        services.email_feedback_process(contact_ids=contact_ids)


def on_contacts_merged(sender, *, survivor_id, merged_ids, **kwargs) -> None:
    services.consent_merge(survivor_id=int(survivor_id), merged_ids=list(merged_ids))


def on_demo_population_loaded(sender, *, contact_ids, population, now, **kwargs) -> None:
    from consent.demo import demo_ledger_load

    demo_ledger_load(contact_ids=contact_ids, population=population, now=now)
