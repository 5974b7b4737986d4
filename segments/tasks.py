"""Thin Celery tasks (queue ``segments``): each calls one service."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="segments.tasks.refresh_features_full")
def refresh_features_full() -> int:
    from segments.services import features_refresh

    return features_refresh().contacts


@shared_task(name="segments.tasks.refresh_features_incremental")
def refresh_features_incremental() -> int:
    from segments.services import features_refresh_incremental

    return features_refresh_incremental().contacts


@shared_task(name="segments.tasks.compute_segments")
def compute_segments(segment_ids: list[int] | None = None) -> int:
    from segments.services import segments_compute

    return len(segments_compute(segment_ids=segment_ids))


@shared_task(name="segments.tasks.reevaluate_contacts")
def reevaluate_contacts(contact_ids: list[int], event_types: list[str] | None = None) -> int:
    from segments.services import contacts_reevaluate

    types = set(event_types) if event_types is not None else None
    return len(contacts_reevaluate(contact_ids=contact_ids, event_types=types))
