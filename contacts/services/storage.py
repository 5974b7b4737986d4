"""Set-based writes that tell created rows from rows already there.

``INSERT … ON CONFLICT DO NOTHING RETURNING`` on both PostgreSQL and SQLite (≥ 3.35): one
statement per chunk, so concurrent writers of the same keys store one copy and each caller learns
which rows it created. On PostgreSQL the rows are first COPYed into a session-local staging
table, so a chunk of 5,000 events costs one COPY and one INSERT … SELECT.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import connection

from contacts.models import Contact, Event

# column → PostgreSQL array type of the unnest parameter
EVENT_INSERT_COLUMNS: dict[str, str] = {
    "contact_id": "bigint",
    "type": "text",
    "occurred_at": "timestamptz",
    "received_at": "timestamptz",
    "properties": "text",
    "channel": "text",
    "device": "text",
    "country": "text",
    "city": "text",
    "source": "text",
    "idempotency_key": "text",
}
CONTACT_INSERT_COLUMNS: dict[str, str] = {
    "external_id": "text",
    "email": "text",
    "phone": "text",
    "first_name": "text",
    "last_name": "text",
    "locale": "text",
    "timezone": "text",
    "country": "text",
    "city": "text",
    "birth_year": "integer",
    "attributes": "text",
    "is_anonymous": "boolean",
    "created_at": "timestamptz",
    "updated_at": "timestamptz",
}
JSON_COLUMNS = {"properties", "attributes"}
SQLITE_MAX_PARAMS = 30_000


def _insert_returning(
    *,
    table: str,
    columns: dict[str, str],
    rows: Sequence[tuple],
    conflict: tuple[str, ...],
    returning: tuple[str, ...],
) -> list[tuple]:
    """Insert ``rows`` (tuples in ``columns`` order); return ``returning`` of the rows inserted."""
    if not rows:
        return []
    names = list(columns)
    out: list[tuple] = []
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # COPY into a session-local staging table (C-speed row formatting), then one
            # INSERT … SELECT … ON CONFLICT DO NOTHING RETURNING into the real table.
            stage = f"stage_{table}"
            definition = ", ".join(f"{name} {kind}" for name, kind in columns.items())
            cursor.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {stage} ({definition}) ON COMMIT DELETE ROWS"
            )
            json_positions = [i for i, name in enumerate(names) if name in JSON_COLUMNS]
            raw = cursor.cursor  # the psycopg cursor behind Django's wrapper
            with raw.copy(f"COPY {stage} ({', '.join(names)}) FROM STDIN") as copy:
                for row in rows:
                    if json_positions:
                        row = list(row)
                        for i in json_positions:
                            row[i] = _json_text(row[i])
                    copy.write_row(row)
            select = ", ".join(f"{name}::jsonb" if name in JSON_COLUMNS else name for name in names)
            cursor.execute(
                f"INSERT INTO {table} ({', '.join(names)}) "  # noqa: S608 (fixed identifiers)
                f"SELECT {select} FROM {stage} "
                f"ON CONFLICT ({', '.join(conflict)}) DO NOTHING "
                f"RETURNING {', '.join(returning)}"
            )
            out.extend(cursor.fetchall())
            cursor.execute(f"TRUNCATE {stage}")
        else:
            per_chunk = max(1, SQLITE_MAX_PARAMS // len(names))
            row_sql = "(" + ", ".join(["%s"] * len(names)) + ")"
            for start in range(0, len(rows), per_chunk):
                chunk = rows[start : start + per_chunk]
                sql = (
                    f"INSERT INTO {table} ({', '.join(names)}) VALUES "  # noqa: S608
                    + ", ".join([row_sql] * len(chunk))
                    + f" ON CONFLICT ({', '.join(conflict)}) DO NOTHING"
                    f" RETURNING {', '.join(returning)}"
                )
                params: list[Any] = []
                for row in chunk:
                    params.extend(
                        _sqlite_value(name, v) for name, v in zip(names, row, strict=True)
                    )
                cursor.execute(sql, params)
                out.extend(cursor.fetchall())
    return out


def _json_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _sqlite_value(name: str, value: Any) -> Any:
    if name in JSON_COLUMNS:
        return _json_text(value)
    if isinstance(value, datetime):
        return connection.ops.adapt_datetimefield_value(value)
    return value


def events_insert(rows: Sequence[tuple]) -> set[str]:
    """Insert event rows (``EVENT_INSERT_COLUMNS`` order, one source per call); return the
    idempotency keys that were new. Rows whose ``(source, idempotency_key)`` exists are skipped."""
    returned = _insert_returning(
        table=Event._meta.db_table,
        columns=EVENT_INSERT_COLUMNS,
        rows=rows,
        conflict=("source", "idempotency_key"),
        returning=("idempotency_key",),
    )
    return {key for (key,) in returned}


def contacts_insert(rows: Sequence[tuple]) -> dict[str, int]:
    """Insert contact rows (``CONTACT_INSERT_COLUMNS`` order); return ``external_id → id`` of the
    rows created. Rows whose external_id exists (e.g. created concurrently) are skipped."""
    returned = _insert_returning(
        table=Contact._meta.db_table,
        columns=CONTACT_INSERT_COLUMNS,
        rows=rows,
        conflict=("external_id",),
        returning=("external_id", "id"),
    )
    return {external_id: pk for external_id, pk in returned}
