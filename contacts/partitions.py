"""Monthly range partitions of ``contacts_event`` on PostgreSQL (a leaf module: SQL only).

On PostgreSQL the events table is ``PARTITION BY RANGE (occurred_at)``: one partition per
calendar month (UTC), named ``contacts_event_yYYYYmMM``, plus ``contacts_event_default``, which
holds any row no month partition covers (year 0001 or 9999 timestamps, a month not created yet),
so no insert is ever refused. SQLite keeps one plain table; nothing here runs there.

Contract of the functions (all take a Django cursor on PostgreSQL):
- :func:`months_ensure` creates the month partitions missing among the months asked for. When
  the DEFAULT partition already holds rows of such a month, they are moved into the new
  partition in the same transaction (PostgreSQL refuses to attach a range the DEFAULT partition
  has rows of); otherwise nothing is moved. Re-running it is a no-op.
- :func:`partitions_before` lists the month partitions that lie wholly before a moment;
  :func:`partition_drop` detaches and drops one (its rows are gone, in O(1), no row is scanned).

The migration ``contacts.0007_event_partitioned_by_month`` and the services
(``contacts.services.partitions``) both use these functions, so the DDL lives in one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

PARENT = "contacts_event"
DEFAULT = "contacts_event_default"
_NAME = re.compile(r"^contacts_event_y(\d{4})m(\d{2})$")
_BOUND = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")


@dataclass(frozen=True)
class Partition:
    name: str
    start: datetime | None  # None: the DEFAULT partition
    end: datetime | None
    rows_estimate: int


def month_start(moment: datetime) -> datetime:
    """The first instant (UTC) of ``moment``'s month."""
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def month_add(month: datetime, months: int) -> datetime:
    index = month.year * 12 + month.month - 1 + months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def month_range(first: datetime, last: datetime) -> list[datetime]:
    """Every month start from ``first``'s month to ``last``'s month, both included."""
    months, month, last = [], month_start(first), month_start(last)
    while month <= last:
        months.append(month)
        month = month_add(month, 1)
    return months


def partition_name(month: datetime) -> str:
    return f"{PARENT}_y{month.year:04d}m{month.month:02d}"


def is_partitioned(cursor) -> bool:
    cursor.execute("SELECT relkind FROM pg_class WHERE oid = %s::regclass", [PARENT])
    row = cursor.fetchone()
    return bool(row) and row[0] == "p"


def partitions(cursor) -> list[Partition]:
    """The partitions of the events table, month partitions by start, the DEFAULT last."""
    cursor.execute(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), c.reltuples::bigint "
        "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = %s::regclass",
        [PARENT],
    )
    found: list[Partition] = []
    for name, bound, tuples in cursor.fetchall():
        match = _BOUND.search(bound or "")
        if match is None:  # FOR VALUES DEFAULT
            found.append(Partition(name, None, None, max(int(tuples), 0)))
            continue
        start, end = (_timestamp(text) for text in match.groups())
        found.append(Partition(name, start, end, max(int(tuples), 0)))
    found.sort(key=lambda p: (p.start is None, p.start or datetime.min.replace(tzinfo=UTC)))
    return found


def _timestamp(text: str) -> datetime:
    # pg_get_expr prints the bound in the session zone ('2026-12-01 00:00:00+00').
    text = re.sub(r"([+-]\d{2})$", r"\1:00", text.strip())
    return datetime.fromisoformat(text).astimezone(UTC)


def months_ensure(cursor, months: list[datetime]) -> list[str]:
    """Create the month partitions of ``months`` that do not exist; return their names.
    Two concurrent callers (beat, the command) are serialised by a transaction-level advisory
    lock: the second sees the first one's partitions and creates nothing."""
    cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [PARENT + " partitions"])
    existing = {p.start for p in partitions(cursor) if p.start is not None}
    created = []
    for month in sorted({month_start(m) for m in months}):
        if month in existing:
            continue
        name, end = partition_name(month), month_add(month, 1)
        # A standalone table then ATTACH: the parent is locked SHARE UPDATE EXCLUSIVE only (a
        # CREATE … PARTITION OF would take ACCESS EXCLUSIVE on it), and rows of this month that
        # landed in DEFAULT meanwhile move in the same transaction.
        cursor.execute(
            f'CREATE TABLE "{name}" (LIKE {PARENT} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)'
        )
        cursor.execute(
            f'WITH moved AS (DELETE FROM "{DEFAULT}" '  # noqa: S608 (fixed identifiers)
            "WHERE occurred_at >= %s AND occurred_at < %s RETURNING *) "
            f'INSERT INTO "{name}" SELECT * FROM moved',
            [month, end],
        )
        cursor.execute(
            f'ALTER TABLE {PARENT} ATTACH PARTITION "{name}" FOR VALUES FROM (%s) TO (%s)',
            [month, end],
        )
        created.append(name)
    return created


def partitions_before(cursor, moment: datetime) -> list[Partition]:
    """Month partitions whose every row is older than ``moment`` (their end ≤ ``moment``)."""
    return [p for p in partitions(cursor) if p.end is not None and p.end <= moment]


def partition_drop(cursor, name: str) -> None:
    """Detach then drop one month partition (never the DEFAULT)."""
    if not _NAME.match(name):
        raise ValueError(f"not a month partition of {PARENT}: {name!r}")
    cursor.execute(f'ALTER TABLE {PARENT} DETACH PARTITION "{name}"')
    cursor.execute(f'DROP TABLE "{name}"')
