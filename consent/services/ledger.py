"""Ledger writes: append a row, keep the derived current state, merges, API batches."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models, transaction
from django.utils import timezone

from consent.models import (
    ConsentEvent,
    ConsentSource,
    CurrentConsent,
    ErasedContact,
    LegalBasis,
    Purpose,
)
from consent.selectors import (
    channel_validate,
    purpose_get,
)
from contacts.models import Contact
from contacts.normalisation import EPOCH, InvalidValue, parse_timestamp

logger = logging.getLogger(__name__)

# Clock skew tolerated for ``at`` in the future (client clocks, webhooks).
FUTURE_TOLERANCE = timedelta(minutes=5)


# --- ledger ---------------------------------------------------------------------------------


def _contact_id(contact: Contact | int) -> int:
    return contact.pk if isinstance(contact, Contact) else int(contact)


def current_state_rebuild(
    *,
    contact_ids: list[int] | None = None,
    contact_id_range: tuple[int, int] | None = None,
    key: tuple[int, int, str] | None = None,
) -> None:
    """Recompute ``CurrentConsent`` from the ledger for the given contacts (or one
    ``(contact_id, purpose_id, channel)`` key) in ONE statement (upsert of the deciding row).

    Used in the transaction of every ledger write, after demo loads and after merges.
    """
    if key is not None:
        where, params = "contact_id = %s AND purpose_id = %s AND channel = %s", list(key)
    elif contact_id_range is not None:
        where, params = "contact_id BETWEEN %s AND %s", list(contact_id_range)
    elif contact_ids:
        where = f"contact_id IN ({', '.join(['%s'] * len(contact_ids))})"
        params = list(contact_ids)
    else:
        return
    ledger = ConsentEvent._meta.db_table
    state = CurrentConsent._meta.db_table
    # Fixed identifiers only (table names from the models); values are parameters.
    sql = f"""
        INSERT INTO {state} (contact_id, purpose_id, channel, granted, event_id, decided_at)
        SELECT contact_id, purpose_id, channel, granted, id, occurred_at FROM (
            SELECT id, contact_id, purpose_id, channel, granted, occurred_at,
                   ROW_NUMBER() OVER (
                       PARTITION BY contact_id, purpose_id, channel
                       ORDER BY occurred_at DESC, id DESC
                   ) AS rank_in_key
            FROM {ledger}
            WHERE awaiting_confirmation = %s AND {where}
        ) ranked
        WHERE rank_in_key = 1
        ON CONFLICT (contact_id, purpose_id, channel) DO UPDATE SET
            granted = excluded.granted,
            event_id = excluded.event_id,
            decided_at = excluded.decided_at
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [False, *params])


def _validate_channel_for(purpose: Purpose, channel: str) -> str:
    channel_validate(channel)
    if channel not in purpose.channels:
        raise ValueError(
            f"channel {channel!r} does not apply to purpose {purpose.code!r} "
            f"(its channels: {', '.join(purpose.channels)})"
        )
    return channel


def _validate_source(source: str) -> str:
    if source not in ConsentSource.values:
        raise ValueError(
            f"unknown consent source {source!r}; known sources: {', '.join(ConsentSource.values)}"
        )
    return source


def consent_record(
    *,
    contact: Contact | int,
    purpose: str | Purpose,
    channel: str,
    granted: bool,
    source: str,
    at: datetime,
    proof: dict | None = None,
    actor: str = "",
    awaiting_confirmation: bool = False,
    source_event_id: int | None = None,
) -> ConsentEvent:
    """Append one ledger row and refresh the current state, in one transaction.

    ``awaiting_confirmation=True`` records a double opt-in request (decides nothing until a
    confirming grant follows). Unknown purpose, channel or source, a channel the purpose does
    not use, a naive or far-future ``at``, or a grant for an erased person → ValueError naming
    the problem, and nothing is written. The purpose's ``wording_version`` is added to ``proof``
    when absent.
    """
    purpose = purpose_get(purpose)
    _validate_channel_for(purpose, channel)
    _validate_source(source)
    if timezone.is_naive(at):
        raise ValueError("consent time must be timezone-aware")
    try:
        at = at.astimezone(UTC)
    except OverflowError as exc:  # year 1 or 9999 pushed past datetime's range by its offset
        raise ValueError("consent time is out of range (1970 to now)") from exc
    if at < EPOCH:
        raise ValueError(f"consent time {at.isoformat()} is before 1970")
    if at > timezone.now() + FUTURE_TOLERANCE:
        raise ValueError(f"consent time {at.isoformat()} is in the future")
    if awaiting_confirmation and not granted:
        raise ValueError("only a grant can await confirmation")
    contact_id = _contact_id(contact)
    if granted and ErasedContact.objects.filter(contact_id=contact_id).exists():
        raise ValueError("this contact was erased (right to erasure); consent cannot be recorded")
    proof = dict(proof or {})
    proof.setdefault("wording_version", purpose.wording_version)
    with transaction.atomic():
        event = ConsentEvent.objects.create(
            contact_id=contact_id,
            purpose=purpose,
            channel=channel,
            granted=granted,
            awaiting_confirmation=awaiting_confirmation,
            occurred_at=at,
            source=source,
            proof=json.loads(json.dumps(proof, cls=DjangoJSONEncoder)),
            actor=actor[:150],
            source_event_id=source_event_id,
        )
        if not awaiting_confirmation:
            current_state_rebuild(key=(contact_id, purpose.pk, channel))
    return event


def _decides_now(contact_id: int, purpose: Purpose, channel: str) -> bool | None:
    """Current decision of a key (``None``: no deciding row)."""
    row = CurrentConsent.objects.filter(
        contact_id=contact_id, purpose=purpose, channel=channel
    ).values_list("granted", flat=True)
    return row[0] if row else None


def _allowed_now(contact_id: int, purpose: Purpose, channel: str) -> bool:
    decided = _decides_now(contact_id, purpose, channel)
    if decided is None:
        return purpose.legal_basis != LegalBasis.CONSENT
    return decided


# --- merge ----------------------------------------------------------------------------------


def consent_merge(*, survivor_id: int, merged_ids: list[int]) -> int:
    """Sanctioned ledger change #2 (contact merge): ledger rows of ``merged_ids`` are re-pointed
    to ``survivor_id`` (each row keeps its time, source and proof), then the survivor's current
    state is rebuilt from the union, so the latest decision across all duplicates wins.
    Returns the number of rows moved. Idempotent."""
    merged_ids = [int(i) for i in merged_ids if int(i) != int(survivor_id)]
    if not merged_ids:
        return 0
    with transaction.atomic():
        moved = models.QuerySet.update(
            ConsentEvent.objects.filter(contact_id__in=merged_ids), contact_id=survivor_id
        )
        CurrentConsent.objects.filter(contact_id__in=merged_ids).delete()
        current_state_rebuild(contact_ids=[survivor_id])
    return moved


# --- API batch ------------------------------------------------------------------------------

CONSENT_BATCH_MAX = 1000


def consent_record_bulk(*, items: list, origin: str, actor: str) -> list[dict]:
    """Record up to ``CONSENT_BATCH_MAX`` API items ``{"external_id", "purpose", "channel",
    "granted", "timestamp" (ISO 8601 with offset), "proof"?}``; answer per item
    ``{"index", "status": "recorded"|"rejected", "event_id"?, "errors"?}``. Each item is its own
    transaction: good items land even when others are rejected."""
    if len(items) > CONSENT_BATCH_MAX:
        raise ValueError(f"at most {CONSENT_BATCH_MAX} items per request, got {len(items)}")
    results = []
    for index, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise ValueError("expected an object")
            contact = Contact.objects.filter(external_id=str(item.get("external_id", ""))).first()
            if contact is None:
                raise ValueError(f"unknown contact {item.get('external_id')!r}")
            if not isinstance(item.get("granted"), bool):
                raise ValueError("granted must be true or false")
            try:
                at = parse_timestamp(item.get("timestamp"), default_zone=None, now=timezone.now())
            except InvalidValue as exc:
                raise ValueError(f"timestamp: {exc}") from exc
            proof = item.get("proof") or {}
            if not isinstance(proof, dict):
                raise ValueError("proof must be an object")
            event = consent_record(
                contact=contact,
                purpose=str(item.get("purpose", "")),
                channel=str(item.get("channel", "")),
                granted=item["granted"],
                source=ConsentSource.API,
                at=at,
                proof={**proof, "origin": str(origin)[:64]},
                actor=actor,
            )
            results.append({"index": index, "status": "recorded", "event_id": event.pk})
        except ValueError as exc:
            results.append({"index": index, "status": "rejected", "errors": str(exc)})
    return results
