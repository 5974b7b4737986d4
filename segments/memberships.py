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
from segments.rules.shared_events import SharedEventScan

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


def _marks(values: Sequence[object]) -> str:
    return ", ".join(["%s"] * len(values))


def segments_lock_open_memberships(
    *, contact_id: int, segment_ids: Sequence[int]
) -> dict[int, int]:
    """Take the compute locks of ``segment_ids`` (as :func:`segment_lock`, in id order) and
    return ``{segment id: membership id}`` of the contact's open memberships among them — one
    statement on PostgreSQL. The memberships are looked up by contact only (its open
    memberships are few), so the plan does not hinge on per-segment statistics, which lag
    behind a large computation."""
    ids = sorted(set(segment_ids))
    wanted = set(ids)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(  # fixed identifiers only; values are parameters
                "WITH locked AS (SELECT id FROM segments_segment "  # noqa: S608
                f"WHERE id IN ({_marks(ids)}) ORDER BY id FOR UPDATE) "
                "SELECT segment_id, id FROM segments_segmentmembership "
                "WHERE contact_id = %s AND exited_at IS NULL "
                "AND (SELECT count(*) FROM locked) >= 0",
                [*ids, contact_id],
            )
        else:
            # SQLite: a write first, so the database lock is taken before any read.
            cursor.execute(
                f"UPDATE segments_segment SET priority = priority WHERE id IN ({_marks(ids)})",  # noqa: S608
                ids,
            )
            cursor.execute(
                "SELECT segment_id, id FROM segments_segmentmembership "
                "WHERE contact_id = %s AND exited_at IS NULL",
                [contact_id],
            )
        return {sid: mid for sid, mid in cursor.fetchall() if sid in wanted}


def membership_diff_contact(
    *,
    contact_id: int,
    levels: Sequence[Sequence[tuple[int, dict]]],
    open_now: dict[int, int],
    now: datetime,
) -> list[MembershipDiff]:
    """Make the open memberships of one contact in the segments of ``levels`` (batches of
    ``(segment id, effective rule)``, each batch reading only memberships of earlier ones) equal
    to the rules' verdicts at ``now``, and shift the segments' sizes by the change. ``open_now``:
    ``{segment id: membership id}`` of the contact's open memberships (from
    :func:`segments_lock_open_memberships`, whose locks the caller holds). Per batch, one
    statement evaluates every rule (a ``UNION ALL`` of the rules' compiled SQL, see
    ``segments.rules.compiled``) and one statement (PostgreSQL; up to four on SQLite) writes the
    diff. Returns the non-empty diffs."""
    from segments.rules.compiled import rule_sql_for_contact

    at = connection.ops.adapt_datetimefield_value(now)
    diffs: list[MembershipDiff] = []
    with connection.cursor() as cursor:
        for level in levels:
            parts, params = [], []
            for segment_id, rule in level:
                sql, rule_params = rule_sql_for_contact(rule, now=now, contact_id=contact_id)
                if sql is not None:  # segment ids are integers from the database
                    parts.append(f"SELECT {int(segment_id)} FROM ({sql}) m{int(segment_id)}")  # noqa: S608
                    params += rule_params
            matched: set[int] = set()
            if parts:
                cursor.execute(" UNION ALL ".join(parts), params)
                matched = {row[0] for row in cursor.fetchall()}
            ids = {sid for sid, _rule in level}
            entered = sorted((matched & ids) - set(open_now))
            exited = sorted((set(open_now) & ids) - matched)
            _contact_diff_write(
                cursor, contact_id, entered, exited, [open_now[sid] for sid in exited], at
            )
            diffs += [MembershipDiff(segment_id=sid, entered=[contact_id]) for sid in entered]
            diffs += [MembershipDiff(segment_id=sid, exited=[contact_id]) for sid in exited]
    return diffs


def _contact_diff_write(
    cursor, contact_id: int, entered: list[int], exited: list[int], closing: list[int], at
) -> None:
    statements: list[tuple[str, list]] = []
    if entered:
        statements.append(
            (
                "INSERT INTO segments_segmentmembership (segment_id, contact_id, entered_at) "  # noqa: S608
                f"VALUES {', '.join(['(%s, %s, %s)'] * len(entered))}",
                [value for sid in entered for value in (sid, contact_id, at)],
            )
        )
        statements.append(
            (
                f"UPDATE segments_segment SET size = size + 1 WHERE id IN ({_marks(entered)})",  # noqa: S608
                entered,
            )
        )
    if exited:
        statements.append(
            (
                "UPDATE segments_segmentmembership SET exited_at = %s "  # noqa: S608
                f"WHERE id IN ({_marks(closing)}) AND exited_at IS NULL",
                [at, *closing],
            )
        )
        statements.append(
            (
                "UPDATE segments_segment SET size = CASE WHEN size > 0 THEN size - 1 ELSE 0 END "  # noqa: S608
                f"WHERE id IN ({_marks(exited)})",
                exited,
            )
        )
    if not statements:
        return
    if connection.vendor == "postgresql":
        # One round trip: data-modifying CTEs all run, on distinct rows.
        ctes = ", ".join(f"w{i} AS ({sql} RETURNING 1)" for i, (sql, _p) in enumerate(statements))
        cursor.execute(
            f"WITH {ctes} SELECT 1",  # noqa: S608
            [value for _sql, params in statements for value in params],
        )
        return
    for sql, params in statements:
        cursor.execute(sql, params)


DENSE_SPAN = 4096  # widest id range looked up by subscript in the open-membership masks


def _bit_of_segment(ids: Sequence[int]) -> str:
    """SQL (integers only) giving the bit of ``segment_id`` among ``ids``: a subscript into a
    constant array over the ids' range (one step per membership row, where a ``CASE`` tests
    the ids one by one), or ``array_position`` when the ids are spread too wide."""
    low, high = min(ids), max(ids)
    if high - low < DENSE_SPAN:
        bits = {sid: 1 << bit for bit, sid in enumerate(ids)}
        dense = ",".join(str(bits.get(sid, 0)) for sid in range(low, high + 1))
        return f"('{{{dense}}}'::bigint[])[segment_id - {low - 1}]"
    listed = ",".join(str(sid) for sid in ids)
    return f"(1::bigint << (array_position('{{{listed}}}'::bigint[], segment_id) - 1))"


CHANGES_TABLE = "segments_verdict_changes"
LEVEL_MAX = 62  # segments per evaluation pass: one bit each in a bigint
ANALYZE_AFTER = 100_000  # membership rows changed by a pass before the table is re-analysed


def membership_diff_level(
    *,
    rules: Sequence[tuple[int, Q]],
    now: datetime,
    shared_events: SharedEventScan | None = None,
) -> tuple[list[MembershipDiff], float]:
    """PostgreSQL: :func:`membership_diff_full` for up to ``LEVEL_MAX`` segments that do not
    read each other (one dependency level), in one pass over the contacts instead of several
    per segment.

    One statement evaluates every rule for every contact (one scan of contacts and their
    features) next to the contact's open memberships of those segments, both as bit masks held
    in memory, counts the sizes and keeps only the contacts whose masks differ in a temporary
    table; only those are then touched: one statement closes the memberships that no longer match, one inserts those that
    entered. ``shared_events``: the scan the rules were compiled with (``rule_compile(...,
    shared_events=)``), materialised here first — one pass over the events for every event
    condition of the level. Callers hold a transaction and every segment's lock. Returns the
    diffs (sizes included) and the seconds spent evaluating."""
    import time

    from django.db.models import BooleanField, ExpressionWrapper

    if len(rules) > LEVEL_MAX:
        raise ValueError(f"at most {LEVEL_MAX} segments per pass")
    at = connection.ops.adapt_datetimefield_value(now)
    started = time.perf_counter()
    ids = [int(segment_id) for segment_id, _q in rules]
    names = [f"s{sid}" for sid in ids]
    annotations = {
        name: ExpressionWrapper(rule_q, output_field=BooleanField())
        for name, (_sid, rule_q) in zip(names, rules, strict=True)
    }
    query = Contact.objects.order_by().annotate(**annotations).values("pk", *annotations).query
    sql, params = query.sql_with_params()
    # ``::boolean``: a rule that is constant compiles to a literal 1/0.
    hits = " | ".join(
        f"(CASE WHEN q.{name}::boolean THEN {1 << bit} ELSE 0 END)::bigint"
        for bit, name in enumerate(names)
    )
    opened = _bit_of_segment(ids)
    id_list = ", ".join(str(sid) for sid in ids)
    bits = ", ".join(f"({sid}, {bit})" for bit, sid in enumerate(ids))
    diffs = {sid: MembershipDiff(segment_id=sid) for sid in ids}
    with connection.cursor() as cursor:  # fixed identifiers and integers only below
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(f"DROP TABLE IF EXISTS {CHANGES_TABLE}")
        if shared_events is not None:
            shared_events.materialize(cursor)
        # The verdicts stay in memory (a materialised CTE): one read of them counts the sizes,
        # one keeps the contacts whose masks differ — the only rows written.
        cursor.execute(
            f"CREATE TEMP TABLE {CHANGES_TABLE} (contact_id bigint, hits bigint, opened bigint)"
        )
        sizes = ", ".join(
            f"count(*) FILTER (WHERE hits & {1 << bit} <> 0)" for bit in range(len(ids))
        )
        # Contacts, their features and their open memberships are all read in contact id order
        # (primary keys, the membership index on contact): merge joins and a streaming
        # aggregate are linear and need no memory. With the transaction's large work_mem the
        # planner prefers hashing each side instead, 1.6× slower at 1M contacts.
        cursor.execute("SET LOCAL enable_hashjoin = off")
        cursor.execute("SET LOCAL enable_hashagg = off")
        cursor.execute(
            f"""
            WITH verdicts AS MATERIALIZED (
                SELECT q.contact_id, {hits} AS hits, coalesce(o.opened, 0) AS opened
                FROM ({sql}) AS q (contact_id, {", ".join(names)})
                LEFT JOIN (
                    SELECT contact_id, bit_or({opened}) AS opened
                    FROM segments_segmentmembership
                    WHERE exited_at IS NULL AND segment_id IN ({id_list})
                    GROUP BY contact_id
                ) AS o ON o.contact_id = q.contact_id
            ), changed AS (
                INSERT INTO {CHANGES_TABLE} (contact_id, hits, opened)
                SELECT contact_id, hits, opened FROM verdicts WHERE hits <> opened
            )
            SELECT {sizes} FROM verdicts
            """,  # noqa: S608
            params,
        )
        for sid, size in zip(ids, cursor.fetchone(), strict=True):
            diffs[sid].size = size
        cursor.execute("SET LOCAL enable_hashjoin TO DEFAULT")
        cursor.execute("SET LOCAL enable_hashagg TO DEFAULT")
        evaluated = time.perf_counter() - started
        if shared_events is not None:
            shared_events.drop(cursor)
        cursor.execute(f"ANALYZE {CHANGES_TABLE}")
        cursor.execute(
            f"""
            UPDATE segments_segmentmembership m SET exited_at = %s
            FROM {CHANGES_TABLE} c, (VALUES {bits}) AS k (sid, bit)
            WHERE m.contact_id = c.contact_id AND m.segment_id = k.sid AND m.exited_at IS NULL
              AND (c.opened >> k.bit) & 1 = 1 AND (c.hits >> k.bit) & 1 = 0
            RETURNING m.segment_id, m.contact_id
            """,  # noqa: S608
            [at],
        )
        for sid, contact_id in cursor.fetchall():
            diffs[sid].exited.append(contact_id)
        cursor.execute(
            f"""
            INSERT INTO segments_segmentmembership (segment_id, contact_id, entered_at)
            SELECT k.sid, c.contact_id, %s
            FROM {CHANGES_TABLE} c, (VALUES {bits}) AS k (sid, bit)
            WHERE (c.hits >> k.bit) & 1 = 1 AND (c.opened >> k.bit) & 1 = 0
            RETURNING segment_id, contact_id
            """,  # noqa: S608
            [at],
        )
        for sid, contact_id in cursor.fetchall():
            diffs[sid].entered.append(contact_id)
        cursor.execute(f"DROP TABLE {CHANGES_TABLE}")
        if sum(len(d.entered) + len(d.exited) for d in diffs.values()) > ANALYZE_AFTER:
            # Fresh statistics for the per-contact statements of the real-time path.
            cursor.execute("ANALYZE segments_segmentmembership")
    return [diffs[sid] for sid in ids], evaluated
