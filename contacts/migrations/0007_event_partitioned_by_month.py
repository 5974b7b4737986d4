"""PostgreSQL only: ``contacts_event`` becomes ``PARTITION BY RANGE (occurred_at)``, one partition
per month plus a DEFAULT partition; existing rows are copied. SQLite keeps one table (no-op).

PostgreSQL requires every primary key and unique constraint of a partitioned table to include
the partition key: the primary key becomes ``(id, occurred_at)`` (``id`` stays the Django pk and
stays unique: one identity sequence feeds it) and ``event_unique_per_source_key`` becomes
``(source, idempotency_key, occurred_at)`` — see docs/decisions.md for what that means for a key
repeated with another timestamp. No foreign key may point at the table any more (``id`` alone is
not unique in the database's eyes): activation's ``0007`` drops the one there was, and this
migration stops with the list if any other remains.

Month partitions are created from the month of the oldest row (no earlier than 10 years back;
with no rows, from the retention cut-off) to ``CONTACTS_EVENT_PARTITIONS_AHEAD`` months ahead;
older, later or out-of-range rows (year 0001, 9999) land in the DEFAULT partition. Every other
index and constraint of the table is re-created as it was (unique ones gain ``occurred_at``).
Reversible: the reverse copies the rows back into one plain table.
"""

import re
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import migrations

from contacts import partitions as p

OLD = "contacts_event_unpartitioned"


def _with_occurred_at(columns_sql: str) -> str:
    """``(source, idempotency_key)`` → ``(source, idempotency_key, occurred_at)``."""
    inner = columns_sql[1:-1]
    if re.search(r"\boccurred_at\b", inner):
        return columns_sql
    return f"({inner}, occurred_at)"


def _without_occurred_at(columns_sql: str) -> str:
    """The reverse of :func:`_with_occurred_at` (a key made of occurred_at alone stays)."""
    return re.sub(r", occurred_at\)$", ")", columns_sql)


def _rebuild(cursor, *, partitioned: bool) -> None:
    """Copy ``contacts_event`` into a new table of the other shape (partitioned by month or
    plain), re-creating its constraints and indexes and continuing its id sequence."""
    cursor.execute(
        "SELECT conrelid::regclass::text, conname FROM pg_constraint "
        "WHERE confrelid = %s::regclass AND contype = 'f'",
        [p.PARENT],
    )
    referencing = cursor.fetchall()
    if partitioned and referencing:
        names = ", ".join(f"{table}.{name}" for table, name in referencing)
        raise RuntimeError(
            f"{p.PARENT} cannot be partitioned while foreign keys point at it ({names}): "
            "drop them (db_constraint=False) in a migration that runs before this one."
        )
    # Every constraint and index of the table, as SQL, before anything changes.
    cursor.execute(
        "SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND coninhcount = 0 ORDER BY conname",
        [p.PARENT],
    )
    constraints = cursor.fetchall()
    cursor.execute(
        "SELECT i.relname, pg_get_indexdef(x.indexrelid) FROM pg_index x "
        "JOIN pg_class i ON i.oid = x.indexrelid "
        "WHERE x.indrelid = %s::regclass AND NOT EXISTS "
        "(SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid) ORDER BY 1",
        [p.PARENT],
    )
    indexes = cursor.fetchall()
    cursor.execute(f"SELECT min(occurred_at) FROM {p.PARENT}")  # noqa: S608
    (oldest,) = cursor.fetchone()

    cursor.execute(f"ALTER TABLE {p.PARENT} RENAME TO {OLD}")
    for name, _kind, _definition in constraints:
        cursor.execute(f'ALTER TABLE {OLD} DROP CONSTRAINT "{name}"')
    for name, _definition in indexes:
        cursor.execute(f'DROP INDEX "{name}"')
    shape = " PARTITION BY RANGE (occurred_at)" if partitioned else ""
    cursor.execute(
        f"CREATE TABLE {p.PARENT} (LIKE {OLD} INCLUDING DEFAULTS INCLUDING IDENTITY){shape}"
    )
    if partitioned:
        cursor.execute(f"CREATE TABLE {p.DEFAULT} PARTITION OF {p.PARENT} DEFAULT")
        now = datetime.now(UTC)
        floor = p.month_add(p.month_start(now), -120)
        first = p.month_start(now - timedelta(days=settings.CONSENT_RETENTION_EVENTS_DAYS))
        if oldest is not None:
            first = max(floor, min(first, p.month_start(oldest)))
        last = p.month_add(p.month_start(now), settings.CONTACTS_EVENT_PARTITIONS_AHEAD)
        p.months_ensure(cursor, p.month_range(first, last))

    cursor.execute(f"INSERT INTO {p.PARENT} SELECT * FROM {OLD}")  # noqa: S608
    # The new identity sequence continues the old one: no id is ever handed out twice.
    cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [OLD])
    (old_sequence,) = cursor.fetchone()
    cursor.execute(f"SELECT last_value, is_called FROM {old_sequence}")  # noqa: S608
    last_value, is_called = cursor.fetchone()
    cursor.execute(
        "SELECT setval(pg_get_serial_sequence(%s, 'id'), %s, %s)",
        [p.PARENT, last_value, is_called],
    )
    key_columns = _with_occurred_at if partitioned else _without_occurred_at
    for name, kind, definition in constraints:
        if kind == "p":
            definition = "PRIMARY KEY (id, occurred_at)" if partitioned else "PRIMARY KEY (id)"
        elif kind == "u":
            definition = re.sub(
                r"^UNIQUE (\(.*\))", lambda m: "UNIQUE " + key_columns(m[1]), definition
            )
        cursor.execute(f'ALTER TABLE {p.PARENT} ADD CONSTRAINT "{name}" {definition}')
    for _name, definition in indexes:
        if definition.startswith("CREATE UNIQUE INDEX"):
            definition = re.sub(
                r"USING (\w+) (\([^)]*\))",
                lambda m: f"USING {m[1]} {key_columns(m[2])}",
                definition,
                count=1,
            )
        cursor.execute(definition.replace(" ON ONLY ", " ON "))
    cursor.execute(f"DROP TABLE {OLD}")  # with its partitions, when it had some
    cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [p.PARENT])
    (sequence,) = cursor.fetchone()
    if sequence != f"public.{p.PARENT}_id_seq":
        cursor.execute(f"ALTER SEQUENCE {sequence} RENAME TO {p.PARENT}_id_seq")
    cursor.execute(f"ANALYZE {p.PARENT}")


def partition(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        if not p.is_partitioned(cursor):
            _rebuild(cursor, partitioned=True)


def unpartition(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        if p.is_partitioned(cursor):
            _rebuild(cursor, partitioned=False)


class Migration(migrations.Migration):
    dependencies = [
        ("contacts", "0006_event_type_index_covers_contact"),
    ]

    operations = [
        migrations.RunPython(partition, unpartition),
    ]
