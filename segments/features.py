"""Feature computation: one set-based SQL statement per refresh (PostgreSQL and SQLite dialects).

The SQL text is built only from fixed identifiers and a fixed number of placeholders (one per
configured engagement event type); every value — event types, property names, weights, dates,
contact ids — is a query parameter.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

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

# The running totals kept beside the features (not features themselves; see ContactFeatures),
# from which the incremental refresh folds new events in: written on PostgreSQL only.
STATE_COLUMNS: tuple[str, ...] = (
    "events_through",
    "fold_key",
    "purchases",
    "amounts",
    "spend",
    "first_purchase_at",
    "last_purchase_at",
    *(f"channel_{name}" for name in PREFERRED_CHANNELS),
)
# A row is folded forward only when computed at most this long before: the time bands the fold
# reads (events since the row, purchases leaving the windows) stay a few days long.
FOLD_MAX_AGE = timedelta(days=7)
# FeatureWatermark whose ``rebuilt_at`` is the last deletion of events: rows computed before it
# are not folded forward (they may count deleted events).
FOLD_SINCE = "features-fold-since"


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


def _postgres_pieces() -> dict[str, str]:
    """SQL fragments shared by the full, restricted and folding statements (named
    placeholders only; see :func:`_postgres_params`)."""
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
    # psycopg uses one paramstyle per statement: the positional pieces are expanded by name.
    weight_case = _named(weight_case, "w")
    channel_counts = _named(channel_counts, "ch")
    preferred = _named(preferred, "pref")
    amount = (
        "CASE WHEN jsonb_typeof(e.properties -> %(amount)s) = 'number' "
        "THEN (e.properties ->> %(amount)s)::float8 END"
    )
    # Per contact, over the events ``e`` of a FROM/WHERE that follows: the running totals a
    # feature row is derived from (``a`` in ``derived``).
    aggregates = f"""
        max(e.occurred_at) FILTER (WHERE e.type = %(purchase)s) AS last_purchase,
        min(e.occurred_at) FILTER (WHERE e.type = %(purchase)s) AS first_purchase,
        count(*) FILTER (WHERE e.type = %(purchase)s) AS purchases,
        count(*) FILTER (WHERE e.type = %(purchase)s AND e.occurred_at > %(since_90)s) AS f90,
        count(*) FILTER (WHERE e.type = %(purchase)s AND e.occurred_at > %(since_365)s) AS f365,
        sum({amount}) FILTER (WHERE e.type = %(purchase)s) AS monetary,
        count({amount}) FILTER (WHERE e.type = %(purchase)s) AS amounts,
        sum({weight_case}) AS engagement,
        max(e.occurred_at) AS last_activity,
        {channel_counts}"""
    # One feature row (columns: contact_id, FEATURE_COLUMNS, STATE_COLUMNS) from a contact ``c``
    # and its totals ``a``; ``{events_through}`` is filled in by the caller.
    derived = f"""
SELECT c.id,
    floor(date_part('epoch', %(as_of)s - a.last_purchase) / 86400)::int,
    coalesce(a.f90, 0),
    coalesce(a.f365, 0),
    coalesce(a.monetary, 0),
    CASE WHEN a.amounts > 0 THEN a.monetary / a.amounts END,
    CASE WHEN a.purchases >= 2
         THEN date_part('epoch', a.last_purchase - a.first_purchase) / 86400 / (a.purchases - 1)
    END,
    coalesce(a.engagement, 0),
    a.last_activity,
    coalesce({preferred}, ''),
    floor(date_part('epoch', %(as_of)s - c.created_at) / 86400)::int,
    %(computed_at)s,
    %(as_of)s,
    {{events_through}},
    %(fold_key)s,
    coalesce(a.purchases, 0),
    coalesce(a.amounts, 0),
    coalesce(a.monetary, 0),
    a.first_purchase,
    a.last_purchase,
    {", ".join(f"coalesce(a.ch_{i}, 0)" for i in range(len(PREFERRED_CHANNELS)))}"""
    return {"aggregates": aggregates, "derived": derived}


ALL_COLUMNS: tuple[str, ...] = ("contact_id", *FEATURE_COLUMNS, *STATE_COLUMNS)


def _upsert() -> str:
    return "ON CONFLICT (contact_id) DO UPDATE SET " + ", ".join(
        f"{col} = EXCLUDED.{col}" for col in ALL_COLUMNS[1:]
    )


def _postgres_sql(
    *,
    restricted: bool,
    target: str = FEATURES_TABLE,
    upsert: bool = True,
    select_only: bool = False,
) -> str:
    """The refresh statement from every event: per-contact totals of the events (``agg``)
    joined to every contact and written to ``target`` — or, with ``select_only``, just that
    query, whose columns are ``ALL_COLUMNS`` in order."""
    pieces = _postgres_pieces()
    contact_filter = "AND c.id = ANY(%(ids)s)" if restricted else ""
    event_filter = "AND e.contact_id = ANY(%(ids)s)" if restricted else ""
    # Fixed identifiers and placeholders only; every value is a parameter.
    insert = "" if select_only else f"INSERT INTO {target} ({', '.join(ALL_COLUMNS)})"
    # The newest event id in this statement's snapshot: every event the row includes is at
    # most that (see docs/decisions.md for ids committed out of order).
    derived = pieces["derived"].format(events_through="(SELECT max(id) FROM contacts_event)")
    return f"""
WITH agg AS (
    SELECT e.contact_id,{pieces["aggregates"]}
    FROM contacts_event e
    WHERE e.occurred_at <= %(as_of)s {event_filter}
    GROUP BY e.contact_id
)
{insert}
{derived}
FROM contacts_contact c
LEFT JOIN agg a ON a.contact_id = c.id
WHERE c.created_at <= %(as_of)s {contact_filter}
{"" if select_only or not upsert else _upsert()}
"""  # noqa: S608


# The feature rows ``p`` (of the contacts ``%(ids)s``) that can be folded forward to
# ``%(as_of)s``: computed with the same settings, from events up to the run's newest id, at most
# FOLD_MAX_AGE before (``%(oldest)s``) and after the last deletion of events.
_FOLD_TRUSTED = (
    "p.contact_id = ANY(%(ids)s) AND p.fold_key = %(fold_key)s "
    "AND p.events_through <= %(newest)s AND p.as_of <= %(as_of)s AND p.as_of >= %(oldest)s "
    "AND p.computed_at > %(computed_after)s"
)


def _postgres_fold_sql() -> str:
    """The incremental statement for contacts whose row can be folded forward (see
    :func:`features_fold_execute`): each row ``p`` as of ``p.as_of`` plus the contact's events
    it does not include (``delta``: those after ``p.as_of``, and those stored after the row
    with an earlier time), minus its purchases that left the 90- and 365-day windows since
    (``gone_90``/``gone_365``), the engagement decayed from ``p.as_of`` to ``as_of``. Only
    events up to id ``%(newest)s`` count, and only a few days of history are read: the time
    bounds ``%(lo)s``… are literal, so PostgreSQL prunes the month partitions."""
    pieces = _postgres_pieces()
    derived = pieces["derived"].format(events_through="%(newest)s")
    channels = ",\n        ".join(
        f"p.channel_{name} + coalesce(d.ch_{i}, 0) AS ch_{i}"
        for i, name in enumerate(PREFERRED_CHANNELS)
    )
    # As chosen by features_fold_execute, unless another writer changed the row since.
    trusted = _FOLD_TRUSTED

    def gone(days: int) -> str:
        window = f"make_interval(secs => {days * 86_400})"
        return f"""
gone_{days} AS (
    SELECT p.contact_id, g.n
    FROM prev p CROSS JOIN LATERAL (
        SELECT count(*) AS n FROM contacts_event e
        WHERE e.contact_id = p.contact_id AND e.type = %(purchase)s
          AND e.occurred_at > %(lo_{days})s AND e.occurred_at <= %(since_{days})s
          AND e.occurred_at > p.as_of - {window} AND e.id <= p.events_through
    ) g
)"""  # noqa: S608 (fixed identifiers and numbers only)

    # The event reads are driven contact by contact from ``prev`` (LATERAL: one index descent
    # per contact in each of the few partitions the literal bounds leave): the newest rows are
    # not in the statistics yet, and a join planned on their estimate (one row) was measured at
    # 9 s instead of 0.3 s. The late events are found by id, each matched to its row through
    # the feature table's primary key.
    return f"""
WITH prev AS (
    SELECT p.* FROM {FEATURES_TABLE} p WHERE {trusted}
),
delta AS (
    SELECT p.contact_id, e.type, e.occurred_at, e.properties, e.channel
    FROM prev p CROSS JOIN LATERAL (
        SELECT e.type, e.occurred_at, e.properties, e.channel FROM contacts_event e
        WHERE e.contact_id = p.contact_id AND e.occurred_at > %(lo)s
          AND e.occurred_at > p.as_of AND e.occurred_at <= %(as_of)s AND e.id <= %(newest)s
        OFFSET 0  -- kept a per-contact subquery: not flattened into a join over the partition
    ) e
    UNION ALL
    SELECT e.contact_id, e.type, e.occurred_at, e.properties, e.channel
    FROM contacts_event e JOIN {FEATURES_TABLE} p ON p.contact_id = e.contact_id
    WHERE e.contact_id = ANY(%(ids)s) AND e.id > %(low_id)s AND e.id <= %(newest)s
      AND e.id > p.events_through AND e.occurred_at <= p.as_of AND {trusted}
),
d AS (
    SELECT e.contact_id,{pieces["aggregates"]}
    FROM delta e
    GROUP BY e.contact_id
),{gone(90)},{gone(365)},
a AS (
    SELECT p.contact_id,
        GREATEST(p.last_purchase_at, d.last_purchase) AS last_purchase,
        LEAST(p.first_purchase_at, d.first_purchase) AS first_purchase,
        p.purchases + coalesce(d.purchases, 0) AS purchases,
        p.frequency_90d - coalesce(g90.n, 0) + coalesce(d.f90, 0) AS f90,
        p.frequency_365d - coalesce(g365.n, 0) + coalesce(d.f365, 0) AS f365,
        p.spend + coalesce(d.monetary, 0) AS monetary,
        p.amounts + coalesce(d.amounts, 0) AS amounts,
        p.engagement_score * exp(%(decay)s * (date_part('epoch', p.as_of) - %(as_of_epoch)s))
            + coalesce(d.engagement, 0) AS engagement,
        GREATEST(p.last_activity_at, d.last_activity) AS last_activity,
        {channels}
    FROM prev p
    LEFT JOIN d ON d.contact_id = p.contact_id
    LEFT JOIN gone_90 g90 ON g90.contact_id = p.contact_id
    LEFT JOIN gone_365 g365 ON g365.contact_id = p.contact_id
)
INSERT INTO {FEATURES_TABLE} ({", ".join(ALL_COLUMNS)})
{derived}
FROM contacts_contact c
JOIN a ON a.contact_id = c.id
{_upsert()}
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
    params["fold_key"] = fold_key()
    if ids is not None:
        params["ids"] = list(ids)
    return params


def fold_key() -> int:
    """A number naming the settings a feature row is computed with (purchase type and amount
    property, engagement weights and half-life, channels): a row computed with others is never
    folded forward."""
    described = repr(
        (
            settings.CIBLE_PURCHASE_EVENT_TYPE,
            settings.CIBLE_PURCHASE_AMOUNT_PROPERTY,
            _weights(),
            float(settings.SEGMENTS_ENGAGEMENT_HALF_LIFE_DAYS),
            PREFERRED_CHANNELS,
        )
    )
    return zlib.crc32(described.encode())


def features_fold_execute(
    *, as_of: datetime, computed_at: datetime, contact_ids: Sequence[int], newest: int
) -> tuple[int, int]:
    """Refresh the rows of ``contact_ids`` as of ``as_of`` from the events up to id ``newest``
    (PostgreSQL): a row computed with the same settings, at most ``FOLD_MAX_AGE`` before and
    from events up to ``newest`` is folded forward (:func:`_postgres_fold_sql`, a few days of
    events read); any other contact is computed from all its events. Returns
    ``(rows written, of which folded)``. Runs in the caller's transaction."""
    ids = list(contact_ids)
    if not ids:
        return 0, 0
    from segments.models import FeatureWatermark

    deleted_at = (
        FeatureWatermark.objects.filter(name=FOLD_SINCE)
        .values_list("rebuilt_at", flat=True)
        .first()
    )
    trusted = {
        "ids": ids,
        "fold_key": fold_key(),
        "newest": newest,
        "as_of": as_of,
        "oldest": as_of - FOLD_MAX_AGE,
        "computed_after": deleted_at or datetime(1970, 1, 1, tzinfo=UTC),
    }
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.contact_id, p.as_of, p.events_through "  # noqa: S608
            f"FROM {FEATURES_TABLE} p WHERE {_FOLD_TRUSTED}",
            trusted,
        )
        foldable = cursor.fetchall()
        folded = 0
        if foldable:
            lo = min(row[1] for row in foldable)
            params = _postgres_params(
                as_of=as_of, computed_at=computed_at, ids=[row[0] for row in foldable]
            )
            params.update(
                {name: value for name, value in trusted.items() if name != "ids"},
                lo=lo,
                lo_90=lo - timedelta(days=90),
                lo_365=lo - timedelta(days=365),
                low_id=min(row[2] for row in foldable),
            )
            cursor.execute("SET LOCAL jit = off")  # see features_sql_execute
            cursor.execute(_postgres_fold_sql(), params)
            folded = cursor.rowcount
    done = {row[0] for row in foldable}
    rest = [i for i in ids if i not in done]
    written = (
        features_sql_execute(as_of=as_of, computed_at=computed_at, contact_ids=rest) if rest else 0
    )
    return folded + written, folded


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
                schema = rebuildable_schema(cursor, table=FEATURES_TABLE, columns=ALL_COLUMNS)
                if schema is not None:
                    # See segments.table_rebuild: readers wait only for the swap.
                    return table_rebuild(
                        cursor,
                        schema=schema,
                        select_sql=_postgres_sql(restricted=False, select_only=True),
                        select_columns=list(ALL_COLUMNS),
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
