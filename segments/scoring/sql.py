"""The set-based SQL of scoring: the RFM summary and the cohort aggregates (two dialects).

SQL text is built only from fixed identifiers; every value (event type, property name, dates,
the eligible-contacts subquery's own parameters) is a query parameter. Each function runs ONE
statement and returns numpy arrays / plain rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet

from segments.binary_copy import copy_out_float_matrix

DAY_SECONDS = 86_400.0


def _amount_expr() -> tuple[str, list[object]]:
    """SQL of the purchase amount (NULL unless the property is a JSON number) and its params."""
    name = settings.CIBLE_PURCHASE_AMOUNT_PROPERTY
    if connection.vendor == "postgresql":
        return (
            "CASE WHEN jsonb_typeof(e.properties -> %s) = 'number' "
            "THEN (e.properties ->> %s)::float8 END",
            [name, name],
        )
    path = '$."' + name.replace('"', "") + '"'
    return (
        "CASE WHEN json_type(e.properties, %s) IN ('integer', 'real') "
        "THEN json_extract(e.properties, %s) END",
        [path, path],
    )


def _epoch_day_expr(column: str) -> str:
    """Whole UTC days since 1970-01-01 of a timestamp column (fixed identifier)."""
    if connection.vendor == "postgresql":
        return f"floor(date_part('epoch', {column}) / 86400)::int"
    return f"CAST(floor(julianday({column}) - 2440587.5) AS INTEGER)"


def _month_index_expr(column: str) -> str:
    """UTC calendar month of a timestamp as ``year * 12 + month - 1`` (fixed identifier)."""
    if connection.vendor == "postgresql":
        return (
            f"(date_part('year', {column} AT TIME ZONE 'UTC') * 12 "
            f"+ date_part('month', {column} AT TIME ZONE 'UTC') - 1)::int"
        )
    return (
        f"(CAST(strftime('%%Y', {column}) AS INTEGER) * 12 "
        f"+ CAST(strftime('%%m', {column}) AS INTEGER) - 1)"
    )


def _adapt(moment: datetime) -> object:
    return connection.ops.adapt_datetimefield_value(moment)


@dataclass
class RfmSummary:
    """Per customer (a contact with a purchase before the calibration end), time in days.

    ``x`` repeat purchase days, ``t_x`` days from first to last purchase day, ``T`` days from
    the first purchase day to the calibration end, ``m`` mean spend of the repeat purchase days
    (NaN without any amount), ``holdout_x`` purchase days after the calibration end (until
    ``holdout_end``).
    """

    contact_id: np.ndarray
    x: np.ndarray
    t_x: np.ndarray
    T: np.ndarray
    m: np.ndarray
    holdout_x: np.ndarray

    def __len__(self) -> int:
        return len(self.contact_id)


def rfm_summary(
    *,
    eligible: QuerySet,
    calibration_end: datetime,
    holdout_end: datetime | None = None,
    purchases_before: datetime | None = None,
) -> RfmSummary:
    """One aggregate over purchase events of the ``eligible`` contacts (a Contact queryset):
    purchases are grouped by contact and UTC day (amounts summed per day), then by contact.

    Calibration purchases are those before ``purchases_before`` (default ``calibration_end``);
    ``T`` counts from the first purchase day to ``calibration_end``. A calibration *date*
    (lifetimes' ``observation_period_end``) is ``calibration_end`` = its midnight with
    ``purchases_before`` = the next midnight: the whole day's purchases are in, T counts to it."""
    amount_sql, amount_params = _amount_expr()
    eligible_sql, eligible_params = eligible.values("pk").query.sql_with_params()
    day = _epoch_day_expr("e.occurred_at")
    cutoff = purchases_before or calibration_end
    holdout_end = holdout_end or cutoff
    sql = f"""
WITH days AS (
    SELECT e.contact_id, {day} AS day,
        CASE WHEN e.occurred_at < %s THEN 1 ELSE 0 END AS cal,
        sum({amount_sql}) AS amount
    FROM contacts_event e
    WHERE e.type = %s AND e.occurred_at < %s AND e.contact_id IN ({eligible_sql})
    GROUP BY e.contact_id, {day}, CASE WHEN e.occurred_at < %s THEN 1 ELSE 0 END
), marked AS (
    SELECT contact_id, day, cal, amount,
        min(CASE WHEN cal = 1 THEN day END) OVER (PARTITION BY contact_id) AS first_day
    FROM days
)
SELECT contact_id,
    sum(cal) - 1 AS x,
    max(CASE WHEN cal = 1 THEN day END) - min(first_day) AS t_x,
    min(first_day) AS first_day,
    sum(CASE WHEN cal = 1 AND day > first_day THEN amount END) AS repeat_spend,
    count(CASE WHEN cal = 1 AND day > first_day THEN amount END) AS repeat_days_with_amount,
    sum(1 - cal) AS holdout_x
FROM marked
WHERE first_day IS NOT NULL
GROUP BY contact_id
ORDER BY contact_id
"""  # noqa: S608 - fixed identifiers; values are parameters
    cal = _adapt(cutoff)
    params = [
        cal,
        *amount_params,
        settings.CIBLE_PURCHASE_EVENT_TYPE,
        _adapt(max(holdout_end, cutoff)),
        *eligible_params,
        cal,
    ]
    if connection.vendor == "postgresql":
        contact_ids, data = _copy_out_postgres(sql, params, columns=6)
    else:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        contact_ids = np.array([row[0] for row in rows], dtype=np.int64)
        data = np.array(
            [tuple(np.nan if v is None else v for v in row) for row in rows], dtype=np.float64
        ).reshape(-1, 7)[:, 1:]
    if len(contact_ids) == 0:
        empty = np.zeros(0)
        return RfmSummary(empty.astype(np.int64), empty, empty, empty, empty, empty)
    cal_day = calibration_end.timestamp() / DAY_SECONDS
    with np.errstate(invalid="ignore", divide="ignore"):
        m = np.where(data[:, 4] > 0, data[:, 3] / data[:, 4], np.nan)
    return RfmSummary(
        contact_id=contact_ids,
        x=data[:, 0],
        t_x=data[:, 1],
        T=cal_day - data[:, 2],
        m=m,
        holdout_x=data[:, 5],
    )


def _copy_out_postgres(sql: str, params: list, *, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """Run ``sql`` (first column a bigint id, then ``columns`` numeric columns, NULL allowed)
    as one ``COPY … TO STDOUT (FORMAT BINARY)`` parsed by numpy (segments.binary_copy): (ids,
    float matrix with NaN for NULL). The statement runs without JIT (compiling it costs
    seconds and saves less) and with enough work_mem to sort and hash a million customers."""
    cast = ", ".join(f"coalesce(c{i}::float8, 'NaN'::float8)" for i in range(columns))
    names = ", ".join(f"c{i}" for i in range(columns))
    select = f"SELECT id::bigint, {cast} FROM ({sql}) AS result (id, {names})"  # noqa: S608
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")
        cursor.execute("SELECT set_config('work_mem', %s, true)", [settings.SCORING_SQL_WORK_MEM])
        return copy_out_float_matrix(cursor, select, columns, params)


def purchase_bounds() -> tuple[datetime | None, datetime | None]:
    """First and last purchase instants in the data (None, None without purchases)."""
    from django.db.models import Max, Min

    from contacts.models import Event

    found = Event.objects.filter(type=settings.CIBLE_PURCHASE_EVENT_TYPE).aggregate(
        first=Min("occurred_at"), last=Max("occurred_at")
    )
    return found["first"], found["last"]


@dataclass
class CohortRows:
    """Cohort sizes and per (cohort month, activity month) buyers and revenue.

    Months are ``year * 12 + month - 1`` (UTC calendar months)."""

    sizes: list[tuple[int, int]]  # (cohort, contacts)
    cells: list[tuple[int, int, int, float]]  # (cohort, month, buyers, revenue)


def _month_start(month: int) -> datetime:
    """The UTC instant a month index (``year * 12 + month - 1``) begins."""
    return datetime(month // 12, month % 12 + 1, 1, tzinfo=UTC)


def cohort_rows(*, by: str, first_month: int) -> CohortRows:
    """Two aggregates: contacts per acquisition month (sign-up or first purchase) from
    ``first_month`` on, and buyers + revenue per (acquisition month, purchase month).

    A cell's purchase month is never before its cohort's, so only purchases from the start
    of ``first_month`` are read (the monthly event partitions before it are pruned), and by
    sign-up only the contacts created from then on. Cells come in no particular order. On
    PostgreSQL the two statements run without JIT and with ``SCORING_SQL_WORK_MEM``, so the
    per (contact, month) aggregate stays in memory instead of spilling to disk."""
    amount_sql, amount_params = _amount_expr()
    purchase = settings.CIBLE_PURCHASE_EVENT_TYPE
    since = _adapt(_month_start(first_month))
    if by == "signup":  # only the contacts who signed up in the period are hashed and joined
        cohort_sql = (
            f"SELECT c.id AS contact_id, {_month_index_expr('c.created_at')} AS cohort "  # noqa: S608
            "FROM contacts_contact c WHERE c.created_at >= %s"
        )
        cohort_params: list[object] = [since]
    elif by == "first_purchase":
        cohort_sql = (
            f"SELECT e.contact_id, {_month_index_expr('min(e.occurred_at)')} AS cohort "  # noqa: S608
            "FROM contacts_event e WHERE e.type = %s GROUP BY e.contact_id"
        )
        cohort_params = [purchase]
    else:
        raise ValueError(f"unknown cohort kind {by!r}; use signup or first_purchase")
    month = _month_index_expr("e.occurred_at")
    sizes_sql = f"""
WITH cohorts AS ({cohort_sql})
SELECT cohort, count(*) FROM cohorts WHERE cohort >= %s GROUP BY cohort ORDER BY cohort
"""  # noqa: S608
    # No ORDER BY: the caller places cells by (cohort, month); ordering made PostgreSQL sort
    # every buyer-month (1.2M rows at 1M contacts) for a GroupAggregate instead of hashing.
    cells_sql = f"""
WITH cohorts AS ({cohort_sql}),
activity AS (
    SELECT e.contact_id, {month} AS month, sum({amount_sql}) AS revenue
    FROM contacts_event e
    WHERE e.type = %s AND e.occurred_at >= %s
    GROUP BY e.contact_id, {month}
)
SELECT c.cohort, a.month, count(*), coalesce(sum(a.revenue), 0)
FROM cohorts c JOIN activity a ON a.contact_id = c.contact_id
WHERE c.cohort >= %s AND a.month >= c.cohort
GROUP BY c.cohort, a.month
"""  # noqa: S608
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL jit = off")
            cursor.execute(
                "SELECT set_config('work_mem', %s, true)", [settings.SCORING_SQL_WORK_MEM]
            )
        cursor.execute(sizes_sql, [*cohort_params, first_month])
        sizes = [(int(c), int(n)) for c, n in cursor.fetchall()]
        cursor.execute(cells_sql, [*cohort_params, *amount_params, purchase, since, first_month])
        cells = [(int(c), int(m), int(n), float(r)) for c, m, n, r in cursor.fetchall()]
    return CohortRows(sizes=sizes, cells=cells)
