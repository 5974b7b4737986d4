"""Feature extraction: one set-based SQL statement over the events, then numpy.

``features_snapshot_refresh`` rewrites ``ContactMlFeatures`` for every contact eligible for
profiling. On PostgreSQL one ``CREATE TABLE AS … GROUP BY`` reads every event once (parallel
workers, one ``FILTER``-ed aggregate per feature) and the fresh table is swapped in
(``segments.table_rebuild``); on SQLite (or a table whose schema the rebuild cannot recreate)
one ``DELETE`` + ``INSERT … SELECT … GROUP BY`` runs per range of contact ids. The SQL text is
built only from fixed identifiers; every value (event types, devices, dates, property names) is
a query parameter. The eligibility subquery is the SQL Django compiles from
``consent.selectors.without_profiling_objection``.

``feature_matrix_read`` streams the snapshot into a float matrix (NaN = missing), never through
ORM objects: binary ``COPY … TO STDOUT`` on PostgreSQL, ``values_list(...).iterator()`` on SQLite.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, Max, Min, OuterRef, QuerySet
from django.utils import timezone

from contacts.models import Contact
from segments.binary_copy import copy_out_float_matrix
from segments.ml.catalogue import FEATURE_NAMES
from segments.ml.models import ContactMlCounters, ContactMlFeatures
from segments.models import FeatureWatermark
from segments.table_rebuild import rebuildable_schema, table_rebuild

OTHER_EVENT_TYPES = ("email_open", "email_click", "page_view", "cart_updated", "app_open")
DEVICES = ("desktop", "mobile", "tablet")
CHANNELS = ("email", "web", "app")
CONTACT_FEATURES_TABLE = "segments_contactfeatures"
READ_CHUNK = 20_000
SNAPSHOT_LOCK_KEY = int.from_bytes(b"cibleML1", "big")  # pg_advisory_xact_lock key


def eligible_contacts() -> QuerySet[Contact]:
    """Contacts that may be profiled: everyone but those who objected (or were erased).

    The consent app owns the rule (``consent.selectors.without_profiling_objection``); without
    the consent app installed every contact is eligible.
    """
    contacts = Contact.objects.all()
    try:
        from consent.selectors import without_profiling_objection
    except ImportError:  # consent app not installed: nobody has objected
        return contacts
    return without_profiling_objection(contacts)


def _named_placeholders(sql: str, prefix: str) -> str:
    parts = sql.split("%s")
    out = parts[0]
    for i, part in enumerate(parts[1:]):
        out += f"%({prefix}{i})s" + part
    return out


def _dialect(vendor: str) -> dict[str, str]:
    if vendor == "postgresql":
        return {
            "days": "date_part('epoch', %(now)s - {col}) / 86400.0",
            "amount": "CASE WHEN jsonb_typeof(e.properties -> %(amount)s) = 'number' "
            "THEN (e.properties ->> %(amount)s)::float8 END",
            "weekend": "extract(isodow FROM e.occurred_at AT TIME ZONE 'UTC') >= 6",
            # In the last five days of its month ⇔ five days later is day 1–5 of the next.
            "month_end": "extract(day FROM (e.occurred_at AT TIME ZONE 'UTC') + interval '5 days')"
            " <= 5",
            "float": "::float8",
        }
    return {
        "days": "(julianday(%(now)s) - julianday({col}))",
        "amount": "CASE WHEN json_type(e.properties, %(amount)s) IN ('integer', 'real') "
        "THEN json_extract(e.properties, %(amount)s) END",
        "weekend": "strftime('%%w', e.occurred_at) IN ('0', '6')",
        "month_end": "strftime('%%m', e.occurred_at, '+5 days') <> strftime('%%m', e.occurred_at)",
        "float": " * 1.0",
    }


SNAPSHOT_COLUMNS: tuple[str, ...] = ("contact_id", "computed_at", *FEATURE_NAMES)
# The per-contact aggregates every feature is derived from (ContactMlCounters' columns).
COUNTER_COLUMNS: tuple[str, ...] = (
    "n_events",
    "n_purchases",
    "spend",
    "n_amounts",
    "first_event_at",
    "last_event_at",
    "last_purchase_at",
    "n_weekend_purchases",
    "n_month_end_purchases",
    *(f"n_{t}" for t in OTHER_EVENT_TYPES),
    *(f"n_{d}" for d in DEVICES),
    *(f"n_channel_{c}" for c in CHANNELS),
)


def _counters_aggregate(*, vendor: str, where: str) -> str:
    """Per contact, the ``COUNTER_COLUMNS`` of the events matching ``where`` (one pass, one
    ``FILTER``-ed aggregate per counter); output columns ``contact_id, *COUNTER_COLUMNS``. The
    purchase amount is read once per purchase."""
    d = _dialect(vendor)
    purchase = "e.type = %(purchase)s"
    columns = [
        "count(*)",
        f"count(*) FILTER (WHERE {purchase})",
        f"coalesce(sum({d['amount']}) FILTER (WHERE {purchase}), 0)",
        f"count({d['amount']}) FILTER (WHERE {purchase})",
        "min(e.occurred_at)",
        "max(e.occurred_at)",
        f"max(e.occurred_at) FILTER (WHERE {purchase})",
        f"count(*) FILTER (WHERE {purchase} AND {d['weekend']})",
        f"count(*) FILTER (WHERE {purchase} AND {d['month_end']})",
        *(f"count(*) FILTER (WHERE e.type = %(type{i})s)" for i in range(len(OTHER_EVENT_TYPES))),
        *(f"count(*) FILTER (WHERE e.device = %(device{i})s)" for i in range(len(DEVICES))),
        *(f"count(*) FILTER (WHERE e.channel = %(channel{i})s)" for i in range(len(CHANNELS))),
    ]
    selected = ",\n        ".join(
        f"{expr} AS {name}" for expr, name in zip(columns, COUNTER_COLUMNS, strict=True)
    )
    return f"""
    SELECT e.contact_id,
        {selected}
    FROM contacts_event e
    WHERE {where}
    GROUP BY e.contact_id"""  # noqa: S608 (fixed identifiers only; values are parameters)


def _snapshot_select(
    *, vendor: str, eligible_sql: str, with_contact_features: bool, ranged: bool, counters: str
) -> str:
    """The snapshot rows (columns ``SNAPSHOT_COLUMNS``): each eligible contact joined to its
    counters ``a`` — ``counters`` is the stored table's name, or a parenthesised
    ``_counters_aggregate`` — (of the contact id range ``%(lo)s``–``%(hi)s`` when ``ranged``).
    Shares are counts over counts, the average basket the spend over the purchases with an
    amount, days are counted back from ``%(now)s``."""
    d = _dialect(vendor)
    fl = d["float"]

    def share(col: str) -> str:
        return f"CASE WHEN a.n_events > 0 THEN a.{col}{fl} / a.n_events END"

    def purchase_share(col: str) -> str:
        return f"CASE WHEN a.n_purchases > 0 THEN a.{col}{fl} / a.n_purchases END"

    if with_contact_features:
        features_join = f"LEFT JOIN {CONTACT_FEATURES_TABLE} f ON f.contact_id = c.id"
        engagement, interpurchase = "f.engagement_score", "f.mean_interpurchase_days"
    else:
        features_join, engagement, interpurchase = "", "NULL", "NULL"
    days = d["days"]
    contacts_range = "c.id BETWEEN %(lo)s AND %(hi)s AND" if ranged else ""
    return f"""
SELECT c.id, %(now)s,
    coalesce(a.n_events, 0),
    coalesce(a.n_purchases, 0),
    coalesce(a.spend, 0),
    CASE WHEN a.n_amounts > 0 THEN a.spend{fl} / a.n_amounts END,
    {days.format(col="a.last_event_at")},
    {days.format(col="a.first_event_at")},
    {days.format(col="a.last_purchase_at")},
    {days.format(col="c.created_at")},
    {share("n_purchases")},
    {", ".join(share(f"n_{t}") for t in OTHER_EVENT_TYPES)},
    {", ".join(share(f"n_{x}") for x in DEVICES)},
    {", ".join(share(f"n_channel_{x}") for x in CHANNELS)},
    {purchase_share("n_weekend_purchases")},
    {purchase_share("n_month_end_purchases")},
    CASE WHEN c.birth_year IS NOT NULL THEN %(year)s - c.birth_year END,
    {engagement},
    {interpurchase}
FROM contacts_contact c
LEFT JOIN {counters} a ON a.contact_id = c.id
{features_join}
WHERE {contacts_range} c.created_at <= %(now)s
    AND c.id IN ({eligible_sql})
"""  # noqa: S608 (fixed identifiers only; every value is a query parameter)


@dataclass(frozen=True)
class SnapshotResult:
    contacts: int  # rows written (eligible contacts)
    removed: int  # rows of contacts no longer eligible
    # How the counters were brought up to date: "rebuilt" from every event, "folded" (only the
    # events stored since the last refresh were read), "current" (nothing new), or "none"
    # (a snapshot as of a past date: computed from the events up to that date directly).
    counters: str = "none"
    events_read: int = 0  # events aggregated into the counters by this refresh


# A snapshot "as of now" may be asked for with a ``now`` taken a little earlier (when the task
# started): within this much of the clock it is built from the counters (every stored event).
PRESENT_TOLERANCE = timedelta(minutes=15)
COUNTERS_TABLE = ContactMlCounters._meta.db_table


def _watermark_name() -> str:
    """The counters' watermark row; it changes with the settings the counters depend on, so
    changing the purchase event type or amount property rebuilds them."""
    key = f"{settings.CIBLE_PURCHASE_EVENT_TYPE}\0{settings.CIBLE_PURCHASE_AMOUNT_PROPERTY}"
    return "ml-counters-" + hashlib.sha256(key.encode()).hexdigest()[:12]


def _params(vendor: str, now: datetime) -> dict[str, object]:
    adapt = connection.ops.adapt_datetimefield_value
    params: dict[str, object] = {
        "now": now if vendor == "postgresql" else adapt(now),
        "purchase": settings.CIBLE_PURCHASE_EVENT_TYPE,
        "amount": settings.CIBLE_PURCHASE_AMOUNT_PROPERTY
        if vendor == "postgresql"
        else '$."' + settings.CIBLE_PURCHASE_AMOUNT_PROPERTY.replace('"', "") + '"',
        "year": now.year,
    }
    params.update({f"type{i}": t for i, t in enumerate(OTHER_EVENT_TYPES)})
    params.update({f"device{i}": t for i, t in enumerate(DEVICES)})
    params.update({f"channel{i}": t for i, t in enumerate(CHANNELS)})
    return params


def _counters_rebuild(cursor, *, vendor: str, params: dict[str, object]) -> int:
    """Recount every contact's events up to ``%(events_hi)s``; returns the contacts counted."""
    aggregate = _counters_aggregate(vendor=vendor, where="e.id <= %(events_hi)s")
    columns = ("contact_id", *COUNTER_COLUMNS)
    if vendor == "postgresql":
        schema = rebuildable_schema(cursor, table=COUNTERS_TABLE, columns=columns)
        if schema is not None:
            return table_rebuild(
                cursor, schema=schema, select_sql=aggregate, select_columns=columns, params=params
            )
    cursor.execute(f"DELETE FROM {COUNTERS_TABLE}")  # noqa: S608 (fixed identifier)
    cursor.execute(f"INSERT INTO {COUNTERS_TABLE} ({', '.join(columns)}) {aggregate}", params)  # noqa: S608
    return cursor.rowcount


def _counters_fold(cursor, *, vendor: str, params: dict[str, object]) -> None:
    """Add the events with ids in ``(%(events_lo)s, %(events_hi)s]`` to the counters: counts
    and sums add up, first timestamps take the earlier, last ones the later."""
    least, greatest = ("LEAST", "GREATEST") if vendor == "postgresql" else ("min", "max")

    def fold(column: str) -> str:
        if column == "first_event_at":
            f = least
        elif column in ("last_event_at", "last_purchase_at"):
            f = greatest
        else:
            return f"{column} = t.{column} + excluded.{column}"
        # PostgreSQL's LEAST/GREATEST skip NULLs, SQLite's min/max return NULL: coalesce both.
        return (
            f"{column} = {f}(coalesce(t.{column}, excluded.{column}), "
            f"coalesce(excluded.{column}, t.{column}))"
        )

    aggregate = _counters_aggregate(
        vendor=vendor, where="e.id > %(events_lo)s AND e.id <= %(events_hi)s"
    )
    columns = ", ".join(("contact_id", *COUNTER_COLUMNS))
    cursor.execute(
        f"INSERT INTO {COUNTERS_TABLE} AS t ({columns}) {aggregate} "  # noqa: S608
        f"ON CONFLICT (contact_id) DO UPDATE SET {', '.join(map(fold, COUNTER_COLUMNS))}",
        params,
    )


def _counters_sync(cursor, *, vendor: str, params: dict[str, object]) -> tuple[str, int]:
    """Bring ``ContactMlCounters`` up to the newest stored event: fold in the events stored
    since the watermark, or rebuild from every event when the counters were never built, were
    built more than ``ML_COUNTERS_REBUILD_HOURS`` ago, or events were removed past the
    watermark. Returns what was done and how many events were read.

    Event ids are taken in order, so an event committed after a refresh with a lower id than
    one it saw (two concurrent ingestions) waits for the next rebuild; so do events removed by
    retention. Merges and erasures correct the counters at once (``counters_recount``)."""
    name = _watermark_name()
    cursor.execute("SELECT coalesce(max(id), 0) FROM contacts_event")
    newest = cursor.fetchone()[0]
    mark = FeatureWatermark.objects.filter(name=name).first()
    now = timezone.now()
    stale = now - timedelta(hours=settings.ML_COUNTERS_REBUILD_HOURS)
    bounds = {"events_hi": newest, "events_lo": mark.last_event_id if mark else 0}
    if (
        mark is None
        or mark.rebuilt_at is None
        or mark.rebuilt_at < stale
        or newest < mark.last_event_id
    ):
        _counters_rebuild(cursor, vendor=vendor, params={**params, **bounds})
        FeatureWatermark.objects.update_or_create(
            name=name, defaults={"last_event_id": newest, "rebuilt_at": now}
        )
        cursor.execute("SELECT coalesce(sum(n_events), 0) FROM " + COUNTERS_TABLE)  # noqa: S608
        return "rebuilt", int(cursor.fetchone()[0])
    if newest == mark.last_event_id:
        return "current", 0
    _counters_fold(cursor, vendor=vendor, params={**params, **bounds})
    cursor.execute(
        "SELECT count(*) FROM contacts_event WHERE id > %s AND id <= %s",
        [mark.last_event_id, newest],
    )
    read = cursor.fetchone()[0]
    FeatureWatermark.objects.filter(name=name).update(last_event_id=newest, updated_at=now)
    return "folded", read


def counters_recount(*, contact_id: int, forget: list[int]) -> None:
    """After a merge moved the events of ``forget`` to ``contact_id`` (inside its transaction):
    recount that contact's events up to the watermark and drop the merged contacts' rows."""
    vendor = connection.vendor
    with connection.cursor() as cursor:
        if vendor == "postgresql":  # not while a refresh folds (it would miss the move)
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [SNAPSHOT_LOCK_KEY])
        ContactMlCounters.objects.filter(contact_id__in=[contact_id, *forget]).delete()
        mark = FeatureWatermark.objects.filter(name=_watermark_name()).first()
        if mark is None:
            return  # never built: the first refresh counts everything
        aggregate = _counters_aggregate(
            vendor=vendor, where="e.contact_id = %(contact)s AND e.id <= %(events_hi)s"
        )
        columns = ", ".join(("contact_id", *COUNTER_COLUMNS))
        cursor.execute(
            f"INSERT INTO {COUNTERS_TABLE} ({columns}) {aggregate}",  # noqa: S608
            {
                **_params(vendor, timezone.now()),
                "contact": contact_id,
                "events_hi": mark.last_event_id,
            },
        )


def features_snapshot_refresh(*, now: datetime, chunk_contacts: int = 250_000) -> SnapshotResult:
    """Recompute ``ContactMlFeatures`` as of ``now`` for every eligible contact; rows of
    contacts who are no longer eligible (objected to profiling, erased) disappear. Runs in one
    transaction; on PostgreSQL concurrent refreshes wait for each other (transaction-level
    advisory lock), SQLite serialises writers by itself.

    As of the present (``now`` within ``PRESENT_TOLERANCE`` of the clock), the features are
    derived from the per-contact counters (``ContactMlCounters``), first brought up to date by
    reading only the events stored since the last refresh (``_counters_sync``). As of a past
    date, the same counters are computed from the events up to that date in the statement.

    PostgreSQL: one statement builds a fresh table that is swapped in
    (``segments.table_rebuild``: parallel workers, no per-row index upkeep, no dead rows;
    readers wait only for the swap). Elsewhere, or when the table's schema is not the one the
    rebuild recreates, per range of ``chunk_contacts`` contact ids the range's rows are deleted
    and recomputed by one statement.
    """
    vendor = connection.vendor
    eligible = eligible_contacts().values("pk")
    eligible_sql, eligible_params = eligible.query.sql_with_params()
    with_features = CONTACT_FEATURES_TABLE in connection.introspection.table_names()
    params = _params(vendor, now)
    params.update({f"elig{i}": v for i, v in enumerate(eligible_params)})
    present = now >= timezone.now() - PRESENT_TOLERANCE

    def select(*, ranged: bool) -> str:
        if present:
            counters = COUNTERS_TABLE
        else:
            events_range = "e.contact_id BETWEEN %(lo)s AND %(hi)s AND " if ranged else ""
            where = f"{events_range}e.occurred_at <= %(now)s"
            counters = f"({_counters_aggregate(vendor=vendor, where=where)})"
        return _snapshot_select(
            vendor=vendor,
            eligible_sql=_named_placeholders(eligible_sql, "elig"),
            with_contact_features=with_features,
            ranged=ranged,
            counters=counters,
        )

    table = ContactMlFeatures._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        if vendor == "postgresql":
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [SNAPSHOT_LOCK_KEY])
            # JIT compiling these ~40 expressions costs ~1 s per statement, more than it saved
            # when measured (100,000 contacts: 4.1 s with, 3.2 s without).
            cursor.execute("SET LOCAL jit = off")
            # Stream in contact id order: partial GroupAggregates over a parallel scan of the
            # events' (contact_id, occurred_at) index, merged, then merge-joined to the
            # contacts and their features. The planner guesses ~150,000 distinct contacts in
            # 10M events (there are 1M) and, given an ML job's large work_mem, hashes instead:
            # a 1M-group final hash aggregate spilled to disk and a 200 MB hash join, both
            # serial — 2.5× slower at 1M contacts.
            cursor.execute("SET LOCAL enable_hashagg = off")
            cursor.execute("SET LOCAL enable_hashjoin = off")
        counters, read = (
            _counters_sync(cursor, vendor=vendor, params=params) if present else ("none", 0)
        )
        if vendor == "postgresql":
            schema = rebuildable_schema(cursor, table=table, columns=SNAPSHOT_COLUMNS)
            if schema is not None:
                removed = [0]

                def count_removed(cursor, rebuilt: str) -> None:
                    cursor.execute(  # fixed identifiers only
                        f"SELECT count(*) FROM {table} o WHERE NOT EXISTS "  # noqa: S608
                        f"(SELECT 1 FROM {rebuilt} n WHERE n.contact_id = o.contact_id)"
                    )
                    removed[0] = cursor.fetchone()[0]

                written = table_rebuild(
                    cursor,
                    schema=schema,
                    select_sql=select(ranged=False),
                    select_columns=SNAPSHOT_COLUMNS,
                    params=params,
                    before_swap=count_removed,
                )
                return SnapshotResult(written, removed[0], counters, read)
        # NOT EXISTS, not NOT IN: PostgreSQL plans NOT IN over a million ids as a per-row scan
        # of the subquery once its hash no longer fits in work_mem (hours at 1M contacts).
        no_longer_eligible = ~Exists(eligible_contacts().filter(pk=OuterRef("contact_id")))
        removed, _ = ContactMlFeatures.objects.filter(no_longer_eligible).delete()
        bounds = Contact.objects.aggregate(lo=Min("id"), hi=Max("id"))
        delete_range = f"DELETE FROM {table} WHERE contact_id BETWEEN %(lo)s AND %(hi)s"  # noqa: S608
        insert = f"INSERT INTO {table} ({', '.join(SNAPSHOT_COLUMNS)}) {select(ranged=True)}"  # noqa: S608
        if bounds["lo"] is not None:
            for lo in range(bounds["lo"], bounds["hi"] + 1, chunk_contacts):
                bound = {"lo": lo, "hi": lo + chunk_contacts - 1}
                cursor.execute(delete_range, bound)
                cursor.execute(insert, {**params, **bound})
        written = ContactMlFeatures.objects.count()
    return SnapshotResult(written, removed, counters, read)


def features_snapshot_matrix(*, now: datetime, names: list[str]) -> FeatureMatrix:
    """Refresh the snapshot as of ``now`` (``features_snapshot_refresh``), then return its
    ``names`` columns for every eligible contact, ordered by contact id (``feature_matrix_read``).
    Raises ``KeyError`` for a name outside the catalogue, before any work."""
    _check_names(names)
    features_snapshot_refresh(now=now)
    return feature_matrix_read(names=names)


@dataclass
class FeatureMatrix:
    contact_ids: np.ndarray  # int64, ascending
    values: np.ndarray  # float64 (n_contacts, n_features), NaN = missing
    names: list[str]

    def __len__(self) -> int:
        return len(self.contact_ids)


def _check_names(names: list[str]) -> None:
    unknown = [n for n in names if n not in FEATURE_NAMES]
    if unknown:
        raise KeyError(", ".join(unknown))


def feature_matrix_read(*, names: list[str]) -> FeatureMatrix:
    """The snapshot's ``names`` columns for every eligible contact, ordered by contact id."""
    _check_names(names)
    if connection.vendor == "postgresql":
        return _read_with_copy(names)
    rows = (
        ContactMlFeatures.objects.order_by("contact_id")
        .values_list("contact_id", *names)
        .iterator(chunk_size=READ_CHUNK)
    )
    blocks: list[np.ndarray] = []
    while chunk := list(islice(rows, READ_CHUNK)):
        blocks.append(np.array(chunk, dtype=np.float64))
    if not blocks:
        return FeatureMatrix(np.zeros(0, np.int64), np.zeros((0, len(names))), list(names))
    data = np.concatenate(blocks)
    return FeatureMatrix(
        data[:, 0].astype(np.int64), np.ascontiguousarray(data[:, 1:]), list(names)
    )


def _read_with_copy(names: list[str]) -> FeatureMatrix:
    """PostgreSQL: stream the snapshot with binary ``COPY … TO STDOUT`` straight into numpy
    (fixed-width rows, NULL sent as NaN), block by block — no Python object per contact."""
    table = ContactMlFeatures._meta.db_table
    columns = ", ".join(f"coalesce({n}, 'NaN'::float8)" for n in names)  # catalogue names only
    select = f"SELECT contact_id::int8, {columns} FROM {table} ORDER BY contact_id"  # noqa: S608
    with connection.cursor() as cursor:
        ids, values = copy_out_float_matrix(cursor.cursor, select, len(names))
    return FeatureMatrix(ids, values, list(names))
