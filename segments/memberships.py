"""Materialising memberships as a diff: insert who entered, close who exited, in SQL.

Callers hold a transaction and the segment lock (:func:`segment_lock`). The match query is the
ORM-compiled SQL of the segment's rule (``Query.sql_with_params``), never text from users.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import F, Q

from contacts.models import Contact
from segments.models import Segment, SegmentMembership

MATCH_TABLE = "segments_matched"
RESTRICTED_CHUNK = 5_000


@dataclass
class MembershipDiff:
    segment_id: int
    entered: list[int] = field(default_factory=list)
    exited: list[int] = field(default_factory=list)
    size: int | None = None  # known after a full computation


def segment_lock(segment_id: int) -> None:
    """Serialise computations of one segment until the transaction ends (any number of
    workers, any machine): a row lock on PostgreSQL, the database write lock on SQLite."""
    if connection.vendor == "postgresql":
        list(
            Segment.objects.select_for_update(of=("self",))
            .filter(pk=segment_id)
            .order_by("pk")
            .values_list("pk")
        )
    else:
        # SQLite: the first statement must be a write so the lock is taken before any read.
        Segment.objects.filter(pk=segment_id).update(priority=F("priority"))


def membership_diff_full(*, segment_id: int, rule_q: Q, now: datetime) -> MembershipDiff:
    """Make the open memberships of ``segment_id`` equal to the contacts matching ``rule_q``."""
    at = connection.ops.adapt_datetimefield_value(now)
    diff = MembershipDiff(segment_id=segment_id)
    try:
        match_sql, match_params = (
            Contact.objects.filter(rule_q).values("pk").query.sql_with_params()
        )
    except EmptyResultSet:
        match_sql, match_params = None, ()
    pg = connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {MATCH_TABLE}")
        column = "contact_id bigint NOT NULL" if pg else "contact_id INTEGER PRIMARY KEY"
        cursor.execute(f"CREATE TEMP TABLE {MATCH_TABLE} ({column})")
        if match_sql is not None:
            cursor.execute(f"INSERT INTO {MATCH_TABLE} (contact_id) {match_sql}", match_params)
            diff.size = cursor.rowcount
        else:
            diff.size = 0
        if pg:
            cursor.execute(f"ANALYZE {MATCH_TABLE}")
            # Membership statistics lag behind big diffs; a nested loop on stale estimates is
            # quadratic. Hash/merge anti-joins are linear whatever the estimates say.
            cursor.execute("SET LOCAL enable_nestloop = off")
        cursor.execute(  # fixed identifiers only; values are parameters
            f"""
            INSERT INTO segments_segmentmembership (segment_id, contact_id, entered_at)
            SELECT %s, t.contact_id, %s FROM {MATCH_TABLE} t
            WHERE NOT EXISTS (
                SELECT 1 FROM segments_segmentmembership m
                WHERE m.segment_id = %s AND m.exited_at IS NULL AND m.contact_id = t.contact_id
            )
            RETURNING contact_id
            """,  # noqa: S608
            [segment_id, at, segment_id],
        )
        diff.entered = [row[0] for row in cursor.fetchall()]
        cursor.execute(  # fixed identifiers only; values are parameters
            f"""
            UPDATE segments_segmentmembership SET exited_at = %s
            WHERE segment_id = %s AND exited_at IS NULL AND NOT EXISTS (
                SELECT 1 FROM {MATCH_TABLE} t
                WHERE t.contact_id = segments_segmentmembership.contact_id
            )
            RETURNING contact_id
            """,  # noqa: S608
            [at, segment_id],
        )
        diff.exited = [row[0] for row in cursor.fetchall()]
        cursor.execute(f"DROP TABLE {MATCH_TABLE}")
    return diff


def membership_diff_contacts(
    *, segment_id: int, rule_q: Q, contact_ids: Sequence[int], now: datetime
) -> MembershipDiff:
    """Same as :func:`membership_diff_full` restricted to ``contact_ids`` (real-time path)."""
    diff = MembershipDiff(segment_id=segment_id)
    ids = sorted(set(contact_ids))
    for start in range(0, len(ids), RESTRICTED_CHUNK):
        chunk = ids[start : start + RESTRICTED_CHUNK]
        try:
            matched = set(Contact.objects.filter(rule_q, pk__in=chunk).values_list("pk", flat=True))
        except EmptyResultSet:  # pragma: no cover - Django returns an empty queryset instead
            matched = set()
        open_now = set(
            SegmentMembership.objects.filter(
                segment_id=segment_id, contact_id__in=chunk, exited_at__isnull=True
            ).values_list("contact_id", flat=True)
        )
        entered = sorted(matched - open_now)
        exited = sorted(open_now - matched)
        SegmentMembership.objects.bulk_create(
            [
                SegmentMembership(segment_id=segment_id, contact_id=c, entered_at=now)
                for c in entered
            ],
            batch_size=1000,
        )
        if exited:
            SegmentMembership.objects.filter(
                segment_id=segment_id, contact_id__in=exited, exited_at__isnull=True
            ).update(exited_at=now)
        diff.entered += entered
        diff.exited += exited
    return diff
