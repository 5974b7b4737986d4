"""Signals other apps listen to (dependencies flow contacts ← consent ← segments ← activation).

Receivers must be idempotent and cheap: heavy work goes to a Celery task. Signals are sent
after the writing transaction commits (``transaction.on_commit``), except ``contacts_merged``
(see below), which runs inside the merge transaction so receivers move their rows atomically.
"""

from django.dispatch import Signal

# Sent by seed_demo after contacts and events are loaded.
# kwargs: contact_ids (numpy array, same order as population), population (DemoContacts), now.
demo_population_loaded = Signal()

# Sent after new events are stored (API, CSV import, webhooks, tracking, activation's own events).
# kwargs: contact_ids (list[int]), event_types (set[str]), source (str), and from the batch
# ingestion paths (API, CSV) contact_ids_by_type (dict[str, list[int]]: the contacts that got
# events of each type) — optional: a receiver falls back to contact_ids when it is absent.
# Well-known event types written by ingestion/webhooks and read by other apps:
#   purchase (properties.amount, properties.category), page_view, cart_updated, app_open,
#   email_delivered, email_open (properties.machine_open: bool), email_click (properties.url),
#   email_bounce (properties.bounce_type: "hard" | "soft", properties.address),
#   email_complaint (properties.address), sms_delivered, sms_inbound (properties.body,
#   properties.from), push_delivered, push_click, unsubscribe, conversion.
events_ingested = Signal()

# Sent by merge_contacts INSIDE its transaction, after events and push subscriptions moved and
# before the duplicates are deleted (their rows would otherwise be lost to ON DELETE CASCADE).
# kwargs: survivor_id (int), merged_ids (list[int]). Receivers move their own rows
# (consent ledger + state, segment memberships, outbox…) from merged_ids to survivor_id; an
# exception in a receiver rolls the whole merge back. events_ingested follows after commit.
contacts_merged = Signal()

# Sent just before a contact is erased (right to erasure), so apps delete/anonymise their rows.
# kwargs: contact_id (int). Consent owns erase_contact and sends it.
contact_erasing = Signal()

# Sent by events_delete_before (retention) INSIDE its transaction, after events older than the
# cutoff were deleted. kwargs: cutoff (datetime), deleted (int). Receivers holding totals derived
# from events (segment features) stop trusting totals computed before the deletion.
events_deleted = Signal()
