"""Set-based writes that tell created rows from rows already there.

``INSERT … ON CONFLICT DO NOTHING RETURNING`` on both PostgreSQL and SQLite (≥ 3.35): one
statement per chunk, so concurrent writers of the same keys store one copy and each caller learns
which rows it created. On PostgreSQL the rows are first COPYed into a session-local staging
table, so a chunk of 5,000 rows costs one COPY and one INSERT … SELECT. Events are first COPYed
straight into their table in a savepoint (most batches hold no stored key, and a plain COPY is
the least the database can do to store them); a stored key makes it fail, and the batch then goes
through the staging table with ON CONFLICT DO NOTHING RETURNING. Events are written in
``contact_id`` order (:func:`contacts.services.event_batch.events_prepare_rows` sorts them): the
foreign-key checks (run at commit, one per row) and the ``(contact_id, occurred_at)`` index then
walk the contact pages in order instead of at random, and two writers of overlapping batches take
their row locks in the same order.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from django.db import connection, transaction

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
# No conflict target for events: the unique constraint is (source, idempotency_key) on SQLite and
# (source, idempotency_key, occurred_at) on partitioned PostgreSQL; the only other unique index
# is the primary key, whose ids the database allocates, so any conflict is an idempotency repeat.
# (Skipping keys stored at another instant too was measured: a NOT EXISTS probe of every month
# partition made a 5,000-event insert 7× slower — 690 ms instead of 93 ms at 1M events.)
EVENT_CONFLICT: tuple[str, ...] = ()
SQLITE_MAX_PARAMS = 30_000


def _insert_returning(
    *,
    table: str,
    columns: dict[str, str],
    rows: Sequence[tuple],
    conflict: tuple[str, ...],
    returning: tuple[str, ...],
    order_by: str = "",
) -> list[tuple]:
    """Insert ``rows`` (tuples in ``columns`` order); return ``returning`` of the rows inserted.
    ``order_by`` (a column of ``columns``): the order rows are written in on PostgreSQL."""
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
                + (f"ORDER BY {order_by} " if order_by else "")
                + f"{_on_conflict(conflict)} RETURNING {', '.join(returning)}"
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
                    + f" {_on_conflict(conflict)} RETURNING {', '.join(returning)}"
                )
                params: list[Any] = []
                for row in chunk:
                    params.extend(
                        _sqlite_value(name, v) for name, v in zip(names, row, strict=True)
                    )
                cursor.execute(sql, params)
                out.extend(cursor.fetchall())
    return out


def _on_conflict(conflict: tuple[str, ...]) -> str:
    return (
        f"ON CONFLICT ({', '.join(conflict)}) DO NOTHING" if conflict else "ON CONFLICT DO NOTHING"
    )


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
    idempotency keys that were new. Rows whose ``(source, idempotency_key)`` exists are skipped;
    on partitioned PostgreSQL the key is ``(source, idempotency_key, occurred_at)`` (a unique key
    must hold the partition key): a key repeated at another instant is a new event there
    (docs/decisions.md)."""
    returned = _insert_returning(
        table=Event._meta.db_table,
        columns=EVENT_INSERT_COLUMNS,
        rows=rows,
        conflict=EVENT_CONFLICT,
        returning=("idempotency_key",),
        order_by="contact_id",
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


_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")


def _copy_text(values: pd.Series) -> pd.Series:
    """Text column in COPY text format (backslash, tab, newline and CR escaped)."""
    values = values.astype(object)
    if not _COPY_SPECIAL.search("".join(values)):  # one C pass over the column
        return values
    for char, escaped in (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r")):
        values = values.str.replace(char, escaped, regex=False)
    return values


def _utc_text(nanoseconds: pd.Series) -> list[str]:
    iso = np.datetime_as_string(
        nanoseconds.to_numpy(dtype="int64").view("datetime64[ns]").astype("datetime64[us]"),
        unit="us",
    )
    return (iso.astype(object) + "+00:00").tolist()


def events_copy_payload(frame: pd.DataFrame) -> bytes:
    """The rows of an :func:`events_insert_frame` frame as a PostgreSQL COPY text stream:
    each column formatted and escaped column-wise, the rows joined by C-level ``str.join``
    over the zipped columns (no Python code runs per row)."""
    parts: list[Any] = []
    for name, kind in EVENT_INSERT_COLUMNS.items():
        column = frame[name]
        if kind == "bigint":
            parts.append(column.to_numpy(dtype="int64").astype(str).tolist())
        elif kind == "timestamptz":
            parts.append(_utc_text(column.astype("int64")))
        else:
            parts.append(_copy_text(column).tolist())
    return ("\n".join(map("\t".join, zip(*parts, strict=True))) + "\n").encode("utf-8")


def _copy_write(cursor: Any, statement: str, payload: bytes) -> None:
    with cursor.cursor.copy(statement) as copy:  # the psycopg cursor behind Django's wrapper
        for start in range(0, len(payload), 1 << 22):
            copy.write(payload[start : start + (1 << 22)])


def events_insert_frame(frame: pd.DataFrame, *, copy_payload: bytes | None = None) -> set[str]:
    """Like :func:`events_insert` for a frame in ``EVENT_INSERT_COLUMNS`` order whose
    ``occurred_at``/``received_at`` are UTC nanoseconds (int64) and ``properties`` JSON text.

    On PostgreSQL the rows are COPYed (``copy_payload``, else :func:`events_copy_payload` of
    the frame); elsewhere they go through :func:`events_insert`."""
    if frame.empty:
        return set()
    if connection.vendor != "postgresql":
        occurred = pd.DatetimeIndex(pd.to_datetime(frame["occurred_at"], utc=True)).to_pydatetime()
        received = pd.DatetimeIndex(pd.to_datetime(frame["received_at"], utc=True)).to_pydatetime()
        rows = list(
            zip(
                frame["contact_id"].astype(int).tolist(),
                frame["type"].tolist(),
                occurred.tolist(),
                received.tolist(),
                frame["properties"].tolist(),
                frame["channel"].tolist(),
                frame["device"].tolist(),
                frame["country"].tolist(),
                frame["city"].tolist(),
                frame["source"].tolist(),
                frame["idempotency_key"].tolist(),
                strict=True,
            )
        )
        return events_insert(rows)
    names = list(EVENT_INSERT_COLUMNS)
    payload = copy_payload if copy_payload is not None else events_copy_payload(frame)
    table = Event._meta.db_table
    with connection.cursor() as cursor:
        try:
            # Most batches hold no key already stored: COPY them straight into the table
            # (no staging table, no INSERT … SELECT, nothing returned). A stored key stops the
            # COPY at that row, within its own savepoint; the batch then goes through the
            # staging table and ON CONFLICT DO NOTHING RETURNING, which says which rows are new.
            with transaction.atomic():
                _copy_write(cursor, f"COPY {table} ({', '.join(names)}) FROM STDIN", payload)
            return set(frame["idempotency_key"])
        except psycopg.errors.UniqueViolation:
            pass
        stage = f"stage_{table}"
        definition = ", ".join(f"{name} {kind}" for name, kind in EVENT_INSERT_COLUMNS.items())
        select = ", ".join(f"{name}::jsonb" if name in JSON_COLUMNS else name for name in names)
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} ({definition}) ON COMMIT DELETE ROWS"
        )
        _copy_write(cursor, f"COPY {stage} ({', '.join(names)}) FROM STDIN", payload)
        cursor.execute(
            f"INSERT INTO {table} ({', '.join(names)}) "  # noqa: S608 (fixed identifiers)
            f"SELECT {select} FROM {stage} ORDER BY contact_id "
            f"{_on_conflict(EVENT_CONFLICT)} RETURNING idempotency_key"
        )
        new = {key for (key,) in cursor.fetchall()}
        cursor.execute(f"TRUNCATE {stage}")
    return new
