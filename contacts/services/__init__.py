"""Services of the contacts app: everything that writes contacts and events.

Modules: ``ingest`` (bulk upsert of contacts, bulk recording of events — the path every door
uses), ``csv_import`` (streamed CSV files), ``merge`` (dedup merge and duplicate report),
``webhooks`` (provider webhooks and the tracking endpoint), ``storage`` (set-based inserts),
``seed`` (demo population).
"""

from contacts.services.ingest import (
    MAX_BATCH,
    BulkOutcome,
    ItemResult,
    contacts_upsert_bulk,
    derived_external_id,
    events_record_bulk,
)
from contacts.services.merge import (
    MergeError,
    MergePreview,
    duplicate_report_create,
    merge_contacts,
    merge_preview,
)
from contacts.services.seed import SeedResult, demo_population_seed

__all__ = [
    "MAX_BATCH",
    "BulkOutcome",
    "ItemResult",
    "MergeError",
    "MergePreview",
    "SeedResult",
    "contacts_upsert_bulk",
    "demo_population_seed",
    "derived_external_id",
    "duplicate_report_create",
    "events_record_bulk",
    "merge_contacts",
    "merge_preview",
]
