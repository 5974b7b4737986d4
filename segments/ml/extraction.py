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

from dataclasses import dataclass
from datetime import datetime
from itertools import islice

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, Max, Min, OuterRef, QuerySet

from contacts.models import Contact
from segments.binary_copy import copy_out_float_matrix
from segments.ml.catalogue import FEATURE_NAMES
from segments.ml.models import ContactMlFeatures
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


def _snapshot_select(
    *, vendor: str, eligible_sql: str, with_contact_features: bool, ranged: bool
) -> str:
    """The snapshot rows (columns ``SNAPSHOT_COLUMNS``): one pass over the events (of the
    contact id range ``%(lo)s``–``%(hi)s`` when ``ranged``) aggregated per contact, joined to
    the eligible contacts. Each aggregate reads columns of the row it is given; the purchase
    amount is read once per purchase (the average basket is the sum over the count, not a
    second ``avg`` over the same JSON)."""
    d = _dialect(vendor)
    fl = d["float"]
    type_counts = ",\n        ".join(
        f"count(*) FILTER (WHERE e.type = %(type{i})s) AS n_type{i}"
        for i in range(len(OTHER_EVENT_TYPES))
    )
    device_counts = ",\n        ".join(
        f"count(*) FILTER (WHERE e.device = %(device{i})s) AS n_device{i}"
        for i in range(len(DEVICES))
    )
    channel_counts = ",\n        ".join(
        f"count(*) FILTER (WHERE e.channel = %(channel{i})s) AS n_channel{i}"
        for i in range(len(CHANNELS))
    )

    def share(col: str) -> str:
        return f"CASE WHEN a.n > 0 THEN a.{col}{fl} / a.n END"

    def purchase_share(col: str) -> str:
        return f"CASE WHEN a.n_purchase > 0 THEN a.{col}{fl} / a.n_purchase END"

    if with_contact_features:
        features_join = f"LEFT JOIN {CONTACT_FEATURES_TABLE} f ON f.contact_id = c.id"
        engagement, interpurchase = "f.engagement_score", "f.mean_interpurchase_days"
    else:
        features_join, engagement, interpurchase = "", "NULL", "NULL"
    days = d["days"]
    events_range = "e.contact_id BETWEEN %(lo)s AND %(hi)s AND" if ranged else ""
    contacts_range = "c.id BETWEEN %(lo)s AND %(hi)s AND" if ranged else ""
    return f"""
SELECT c.id, %(now)s,
    coalesce(a.n, 0),
    coalesce(a.n_purchase, 0),
    coalesce(a.spend, 0),
    CASE WHEN a.n_amount > 0 THEN a.spend{fl} / a.n_amount END,
    {days.format(col="a.last_event")},
    {days.format(col="a.first_event")},
    {days.format(col="a.last_purchase")},
    {days.format(col="c.created_at")},
    {share("n_purchase")},
    {", ".join(share(f"n_type{i}") for i in range(len(OTHER_EVENT_TYPES)))},
    {", ".join(share(f"n_device{i}") for i in range(len(DEVICES)))},
    {", ".join(share(f"n_channel{i}") for i in range(len(CHANNELS)))},
    {purchase_share("n_weekend")},
    {purchase_share("n_month_end")},
    CASE WHEN c.birth_year IS NOT NULL THEN %(year)s - c.birth_year END,
    {engagement},
    {interpurchase}
FROM contacts_contact c
LEFT JOIN (
    SELECT e.contact_id,
        count(*) AS n,
        count(*) FILTER (WHERE e.type = %(purchase)s) AS n_purchase,
        sum({d["amount"]}) FILTER (WHERE e.type = %(purchase)s) AS spend,
        count({d["amount"]}) FILTER (WHERE e.type = %(purchase)s) AS n_amount,
        max(e.occurred_at) AS last_event,
        min(e.occurred_at) AS first_event,
        max(e.occurred_at) FILTER (WHERE e.type = %(purchase)s) AS last_purchase,
        count(*) FILTER (WHERE e.type = %(purchase)s AND {d["weekend"]}) AS n_weekend,
        count(*) FILTER (WHERE e.type = %(purchase)s AND {d["month_end"]}) AS n_month_end,
        {type_counts},
        {device_counts},
        {channel_counts}
    FROM contacts_event e
    WHERE {events_range} e.occurred_at <= %(now)s
    GROUP BY e.contact_id
) a ON a.contact_id = c.id
{features_join}
WHERE {contacts_range} c.created_at <= %(now)s
    AND c.id IN ({eligible_sql})
"""  # noqa: S608 (fixed identifiers only; every value is a query parameter)


@dataclass(frozen=True)
class SnapshotResult:
    contacts: int  # rows written (eligible contacts)
    removed: int  # rows of contacts no longer eligible


def features_snapshot_refresh(*, now: datetime, chunk_contacts: int = 250_000) -> SnapshotResult:
    """Recompute ``ContactMlFeatures`` as of ``now`` for every eligible contact; rows of
    contacts who are no longer eligible (objected to profiling, erased) disappear. Runs in one
    transaction; on PostgreSQL concurrent refreshes wait for each other (transaction-level
    advisory lock), SQLite serialises writers by itself.

    PostgreSQL: one statement reads every event once and builds a fresh table that is swapped
    in (``segments.table_rebuild``: parallel workers, no per-row index upkeep, no dead rows;
    readers wait only for the swap). Elsewhere, or when the table's schema is not the one the
    rebuild recreates, per range of ``chunk_contacts`` contact ids the range's rows are deleted
    and recomputed by one statement.
    """
    vendor = connection.vendor
    eligible = eligible_contacts().values("pk")
    eligible_sql, eligible_params = eligible.query.sql_with_params()
    with_features = CONTACT_FEATURES_TABLE in connection.introspection.table_names()
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
    params.update({f"elig{i}": v for i, v in enumerate(eligible_params)})

    def select(*, ranged: bool) -> str:
        return _snapshot_select(
            vendor=vendor,
            eligible_sql=_named_placeholders(eligible_sql, "elig"),
            with_contact_features=with_features,
            ranged=ranged,
        )

    table = ContactMlFeatures._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        if vendor == "postgresql":
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [SNAPSHOT_LOCK_KEY])
            # JIT compiling these ~40 expressions costs ~1 s per statement, more than it saved
            # when measured (100,000 contacts: 4.1 s with, 3.2 s without).
            cursor.execute("SET LOCAL jit = off")
            schema = rebuildable_schema(cursor, table=table, columns=SNAPSHOT_COLUMNS)
            if schema is not None:
                # Stream in contact id order: partial GroupAggregates over a parallel scan of
                # the events' (contact_id, occurred_at) index, merged, then merge-joined to the
                # contacts and their features. The planner guesses ~150,000 distinct contacts
                # in 10M events (there are 1M) and, given an ML job's large work_mem, hashes
                # instead: a 1M-group final hash aggregate spilled to disk and a 200 MB hash
                # join, both serial — 2.5× slower at 1M contacts.
                cursor.execute("SET LOCAL enable_hashagg = off")
                cursor.execute("SET LOCAL enable_hashjoin = off")
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
                return SnapshotResult(contacts=written, removed=removed[0])
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
    return SnapshotResult(contacts=written, removed=removed)


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
