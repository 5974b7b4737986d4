"""Feature computation: one set-based SQL statement per refresh (PostgreSQL and SQLite dialects).

The SQL text is built only from fixed identifiers and a fixed number of placeholders (one per
configured engagement event type); every value — event types, property names, weights, dates,
contact ids — is a query parameter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

from django.conf import settings
from django.db import connection

from contacts.models import Channel
from segments.table_rebuild import rebuildable_schema, table_rebuild

FEATURES_TABLE = "segments_contactfeatures"

# Channels counted for the preferred channel, in tie-break order.
PREFERRED_CHANNELS: tuple[str, ...] = tuple(Channel.values)

FEATURE_COLUMNS: tuple[str, ...] = (
    "recency_days",
    "frequency_90d",
    "frequency_365d",
    "monetary_total",
    "avg_basket",
    "mean_interpurchase_days",
    "engagement_score",
    "last_activity_at",
    "preferred_channel",
    "days_since_signup",
    "computed_at",
    "as_of",
)

# Which events can change which feature (for real-time re-evaluation); None = any event type.
PURCHASE_FEATURES = frozenset(
    {
        "recency_days",
        "frequency_90d",
        "frequency_365d",
        "monetary_total",
        "avg_basket",
        "mean_interpurchase_days",
    }
)
ANY_EVENT_FEATURES = frozenset({"last_activity_at", "preferred_channel"})


def feature_event_types(feature: str) -> frozenset[str] | None:
    """Event types whose arrival can change ``feature``; None means every type; empty: none."""
    if feature in PURCHASE_FEATURES:
        return frozenset({settings.CIBLE_PURCHASE_EVENT_TYPE})
    if feature == "engagement_score":
        return frozenset(settings.SEGMENTS_ENGAGEMENT_WEIGHTS)
    if feature in ANY_EVENT_FEATURES:
        return None
    return frozenset()


def _weights() -> list[tuple[str, float]]:
    return sorted((str(k), float(v)) for k, v in settings.SEGMENTS_ENGAGEMENT_WEIGHTS.items())


def _decay_per_second() -> float:
    return math.log(2) / (float(settings.SEGMENTS_ENGAGEMENT_HALF_LIFE_DAYS) * 86_400.0)


def _postgres_sql(
    *,
    restricted: bool,
    target: str = FEATURES_TABLE,
    upsert: bool = True,
    select_only: bool = False,
) -> str:
    """The refresh statement: per-contact aggregates of the events (``agg``) joined to every
    contact and written to ``target`` — or, with ``select_only``, just that query, whose
    columns are ``contact_id`` and ``FEATURE_COLUMNS`` in order."""
    weights = _weights()
    # exp() only runs for the weighted event types (one CASE branch each).
    decay = "exp(%(decay)s * (date_part('epoch', e.occurred_at) - %(as_of_epoch)s))"
    weight_case = (
        "CASE e.type " + " ".join(f"WHEN %s THEN %s::float8 * {decay}" for _ in weights) + " END"
        if weights
        else "NULL::float8"
    )
    channel_counts = ",\n".join(
        f"count(*) FILTER (WHERE e.channel = %s) AS ch_{i}" for i in range(len(PREFERRED_CHANNELS))
    )
    preferred = (
        "CASE "
        + " ".join(
            f"WHEN a.ch_{i} > 0 AND a.ch_{i} = GREATEST("
            + ", ".join(f"a.ch_{j}" for j in range(len(PREFERRED_CHANNELS)))
            + ") THEN %s"
            for i in range(len(PREFERRED_CHANNELS))
        )
        + " ELSE '' END"
    )
    contact_filter = "AND c.id = ANY(%(ids)s)" if restricted else ""
    on_conflict = (
        "ON CONFLICT (contact_id) DO UPDATE SET "
        + ", ".join(f"{col} = EXCLUDED.{col}" for col in FEATURE_COLUMNS)
        if upsert
        else ""
    )
    event_filter = "AND e.contact_id = ANY(%(ids)s)" if restricted else ""
    # psycopg uses one paramstyle per statement: the positional pieces are expanded by name.
    weight_case = _named(weight_case, "w")
    channel_counts = _named(channel_counts, "ch")
    preferred = _named(preferred, "pref")
    # Fixed identifiers and placeholders only; every value is a parameter.
    aggregate = f"""
    SELECT e.contact_id,
        max(e.occurred_at) FILTER (WHERE e.type = %(purchase)s) AS last_purchase,
        min(e.occurred_at) FILTER (WHERE e.type = %(purchase)s) AS first_purchase,
        count(*) FILTER (WHERE e.type = %(purchase)s) AS purchases,
        count(*) FILTER (WHERE e.type = %(purchase)s AND e.occurred_at > %(since_90)s) AS f90,
        count(*) FILTER (WHERE e.type = %(purchase)s AND e.occurred_at > %(since_365)s) AS f365,
        sum(CASE WHEN jsonb_typeof(e.properties -> %(amount)s) = 'number'
                 THEN (e.properties ->> %(amount)s)::float8 END)
            FILTER (WHERE e.type = %(purchase)s) AS monetary,
        avg(CASE WHEN jsonb_typeof(e.properties -> %(amount)s) = 'number'
                 THEN (e.properties ->> %(amount)s)::float8 END)
            FILTER (WHERE e.type = %(purchase)s) AS basket,
        sum({weight_case}) AS engagement,
        max(e.occurred_at) AS last_activity,
        {channel_counts}
    FROM contacts_event e
    WHERE e.occurred_at <= %(as_of)s {event_filter}
    GROUP BY e.contact_id
"""  # noqa: S608
    insert = (
        "" if select_only else f"INSERT INTO {target} (contact_id, {', '.join(FEATURE_COLUMNS)})"
    )
    return f"""
WITH agg AS ({aggregate})
{insert}
SELECT c.id,
    floor(date_part('epoch', %(as_of)s - a.last_purchase) / 86400)::int,
    coalesce(a.f90, 0),
    coalesce(a.f365, 0),
    coalesce(a.monetary, 0),
    a.basket,
    CASE WHEN a.purchases >= 2
         THEN date_part('epoch', a.last_purchase - a.first_purchase) / 86400 / (a.purchases - 1)
    END,
    coalesce(a.engagement, 0),
    a.last_activity,
    coalesce({preferred}, ''),
    floor(date_part('epoch', %(as_of)s - c.created_at) / 86400)::int,
    %(computed_at)s,
    %(as_of)s
FROM contacts_contact c
LEFT JOIN agg a ON a.contact_id = c.id
WHERE c.created_at <= %(as_of)s {contact_filter}
{"" if select_only else on_conflict}
"""  # noqa: S608


def _named(sql: str, prefix: str) -> str:
    parts = sql.split("%s")
    out = parts[0]
    for i, part in enumerate(parts[1:]):
        out += f"%({prefix}{i})s" + part
    return out


def _sqlite_sql(*, restricted_count: int) -> str:
    weights = _weights()
    weight_case = (
        "CASE e.type " + " ".join("WHEN %s THEN %s" for _ in weights) + " END"
        if weights
        else "NULL"
    )
    channel_counts = ",\n".join(
        f"count(*) FILTER (WHERE e.channel = %s) AS ch_{i}" for i in range(len(PREFERRED_CHANNELS))
    )
    preferred = (
        "CASE "
        + " ".join(
            f"WHEN a.ch_{i} > 0 AND a.ch_{i} = max("
            + ", ".join(f"a.ch_{j}" for j in range(len(PREFERRED_CHANNELS)))
            + ") THEN %s"
            for i in range(len(PREFERRED_CHANNELS))
        )
        + " ELSE '' END"
    )
    placeholders = ", ".join(["%s"] * restricted_count)
    contact_filter = f"AND c.id IN ({placeholders})" if restricted_count else ""
    event_filter = f"AND e.contact_id IN ({placeholders})" if restricted_count else ""
    amount = "CASE WHEN json_type(e.properties, %s) IN ('integer', 'real') THEN json_extract(e.properties, %s) END"
    # Fixed identifiers and placeholders only; every value is a parameter.
    return f"""
WITH agg AS (
    SELECT e.contact_id,
        max(e.occurred_at) FILTER (WHERE e.type = %s) AS last_purchase,
        min(e.occurred_at) FILTER (WHERE e.type = %s) AS first_purchase,
        count(*) FILTER (WHERE e.type = %s) AS purchases,
        count(*) FILTER (WHERE e.type = %s AND e.occurred_at > %s) AS f90,
        count(*) FILTER (WHERE e.type = %s AND e.occurred_at > %s) AS f365,
        sum({amount}) FILTER (WHERE e.type = %s) AS monetary,
        avg({amount}) FILTER (WHERE e.type = %s) AS basket,
        sum(({weight_case}) * exp(%s * (julianday(e.occurred_at) - %s) * 86400.0)) AS engagement,
        max(e.occurred_at) AS last_activity,
        {channel_counts}
    FROM contacts_event e
    WHERE e.occurred_at <= %s {event_filter}
    GROUP BY e.contact_id
)
INSERT INTO segments_contactfeatures (contact_id, {", ".join(FEATURE_COLUMNS)})
SELECT c.id,
    CAST(floor(julianday(%s) - julianday(a.last_purchase)) AS INTEGER),
    coalesce(a.f90, 0),
    coalesce(a.f365, 0),
    coalesce(a.monetary, 0.0),
    a.basket,
    CASE WHEN a.purchases >= 2
         THEN (julianday(a.last_purchase) - julianday(a.first_purchase)) / (a.purchases - 1)
    END,
    coalesce(a.engagement, 0.0),
    a.last_activity,
    coalesce({preferred}, ''),
    CAST(floor(julianday(%s) - julianday(c.created_at)) AS INTEGER),
    %s,
    %s
FROM contacts_contact c
LEFT JOIN agg a ON a.contact_id = c.id
WHERE c.created_at <= %s {contact_filter}
ON CONFLICT (contact_id) DO UPDATE SET
    {", ".join(f"{col} = excluded.{col}" for col in FEATURE_COLUMNS)}
"""  # noqa: S608


def _sqlite_params(
    *, as_of: datetime, computed_at: datetime, ids: Sequence[int] | None
) -> list[object]:
    from datetime import timedelta

    adapt = connection.ops.adapt_datetimefield_value
    purchase = settings.CIBLE_PURCHASE_EVENT_TYPE
    path = '$."' + settings.CIBLE_PURCHASE_AMOUNT_PROPERTY.replace('"', "") + '"'
    weights = _weights()
    as_of_s = adapt(as_of)
    params: list[object] = [
        purchase,
        purchase,
        purchase,
        purchase,
        adapt(as_of - timedelta(days=90)),
        purchase,
        adapt(as_of - timedelta(days=365)),
        path,
        path,
        purchase,
        path,
        path,
        purchase,
    ]
    for event_type, weight in weights:
        params += [event_type, weight]
    params += [_decay_per_second(), _julian_day(as_of)]
    params += list(PREFERRED_CHANNELS)
    params += [as_of_s]
    params += list(ids or [])
    params += [as_of_s]
    params += list(PREFERRED_CHANNELS)
    params += [as_of_s, adapt(computed_at), as_of_s, as_of_s]
    params += list(ids or [])
    return params


def _julian_day(moment: datetime) -> float:
    return moment.timestamp() / 86_400.0 + 2_440_587.5


def _postgres_params(
    *, as_of: datetime, computed_at: datetime, ids: Sequence[int] | None
) -> dict[str, object]:
    from datetime import timedelta

    params: dict[str, object] = {
        "purchase": settings.CIBLE_PURCHASE_EVENT_TYPE,
        "amount": settings.CIBLE_PURCHASE_AMOUNT_PROPERTY,
        "since_90": as_of - timedelta(days=90),
        "since_365": as_of - timedelta(days=365),
        "decay": _decay_per_second(),
        "as_of_epoch": as_of.timestamp(),
        "as_of": as_of,
        "computed_at": computed_at,
    }
    flat: list[object] = []
    for event_type, weight in _weights():
        flat += [event_type, weight]
    params.update({f"w{i}": v for i, v in enumerate(flat)})
    params.update({f"ch{i}": v for i, v in enumerate(PREFERRED_CHANNELS)})
    params.update({f"pref{i}": v for i, v in enumerate(PREFERRED_CHANNELS)})
    if ids is not None:
        params["ids"] = list(ids)
    return params


SQLITE_MAX_IDS_PER_STATEMENT = 10_000


def features_sql_execute(
    *, as_of: datetime, computed_at: datetime, contact_ids: Sequence[int] | None
) -> int:
    """Upsert the feature rows of ``contact_ids`` (all contacts when None) as of ``as_of``.

    Contacts created after ``as_of`` are left out. Returns the number of rows written.
    Runs in the caller's transaction; a full refresh on PostgreSQL builds a fresh table and
    swaps it in (see :mod:`segments.table_rebuild`; readers wait only for the swap), or, when the
    table's schema is not the one the rebuild recreates, truncates and refills it.
    """
    written = 0
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            restricted = contact_ids is not None
            params = _postgres_params(as_of=as_of, computed_at=computed_at, ids=contact_ids)
            if not restricted:
                schema = rebuildable_schema(
                    cursor, table=FEATURES_TABLE, columns=["contact_id", *FEATURE_COLUMNS]
                )
                if schema is not None:
                    # See segments.table_rebuild: readers wait only for the swap.
                    return table_rebuild(
                        cursor,
                        schema=schema,
                        select_sql=_postgres_sql(restricted=False, select_only=True),
                        select_columns=["contact_id", *FEATURE_COLUMNS],
                        params=params,
                    )
                # A full refresh rewrites every row: emptying the table first turns 1M
                # conflict-updates into plain inserts. Readers wait (ACCESS EXCLUSIVE) until
                # the refresh commits; they never see a half-empty table.
                # Pending deferred FK checks of this transaction would forbid TRUNCATE: run them.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                cursor.execute(f"TRUNCATE {FEATURES_TABLE}")
                cursor.execute("SET CONSTRAINTS ALL DEFERRED")
            elif len(contact_ids) > 1:
                # The planner cannot see how many events the id list holds: it guesses ~67
                # per contact, so a 10,000-contact refresh is costed past the JIT thresholds and
                # compiling (inlining + optimising) its ~40 expressions took ~0.5 s of a 1 s
                # statement that reads ~110,000 events. Off for the rest of the transaction
                # (the caller's short statements that follow do not gain from it either).
                cursor.execute("SET LOCAL jit = off")
            cursor.execute(_postgres_sql(restricted=restricted), params)
            return cursor.rowcount
        chunks: list[Sequence[int] | None]
        if contact_ids is None:
            chunks = [None]
        else:
            chunks = [
                contact_ids[i : i + SQLITE_MAX_IDS_PER_STATEMENT]
                for i in range(0, len(contact_ids), SQLITE_MAX_IDS_PER_STATEMENT)
            ]
        for chunk in chunks:
            cursor.execute(
                _sqlite_sql(restricted_count=len(chunk) if chunk is not None else 0),
                _sqlite_params(as_of=as_of, computed_at=computed_at, ids=chunk),
            )
            cursor.execute("SELECT changes()")  # sqlite3's rowcount is -1 after WITH … INSERT
            written += cursor.fetchone()[0]
    return written
