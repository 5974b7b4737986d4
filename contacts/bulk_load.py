"""Bulk loading of generated or imported rows: PostgreSQL ``COPY`` (psycopg 3), batched
``executemany`` on SQLite. Used by ``seed_demo`` and the benchmarks.

Contract: rows are written inside one transaction per call (all or nothing); contact ids are
allocated explicitly under a table lock so concurrent writers cannot collide.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from django.db import connection, transaction
from psycopg.copy import QueuedLibpqWriter

from contacts.demo import CATEGORIES, DEVICES, EVENT_TYPES, PERSONAS, DemoContacts, DemoEvents
from contacts.models import Contact, Event
from contacts.services.partitions import event_partitions_create

Progress = Callable[[str, int, int], None]

CONTACT_COLUMNS = (
    "id",
    "external_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "locale",
    "timezone",
    "country",
    "city",
    "birth_year",
    "attributes",
    "is_anonymous",
    "created_at",
    "updated_at",
)
EVENT_COLUMNS = (
    "contact_id",
    "type",
    "occurred_at",
    "received_at",
    "properties",
    "channel",
    "device",
    "country",
    "city",
    "source",
    "idempotency_key",
)
# Secondary indexes rebuilt once after very large PostgreSQL loads (faster than row-by-row upkeep).
EVENT_SECONDARY_INDEXES = ("event_contact_by_time", "event_type_by_time")
LARGE_LOAD_EVENTS = 2_000_000


def _utc_suffix() -> str:
    # SQLite stores Django's aware datetimes as naive UTC text; PostgreSQL gets an explicit offset.
    return "+00:00" if connection.vendor == "postgresql" else ""


def _timestamps(epoch_seconds: np.ndarray) -> np.ndarray:
    """UTC timestamps as text, formatted in C (pandas' tz-aware formatting is 10x slower)."""
    iso = np.datetime_as_string(np.asarray(epoch_seconds).astype("datetime64[s]"), unit="s")
    return np.char.replace(iso, "T", " ").astype(object) + _utc_suffix()


def _constant_timestamp(moment: datetime, n: int) -> np.ndarray:
    text = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") + _utc_suffix()
    return np.full(n, text, dtype=object)


def contacts_frame(contacts: DemoContacts, *, first_id: int, now: datetime) -> pd.DataFrame:
    persona_names = np.array([p.name for p in PERSONAS], dtype=object)
    attributes = '{"persona": "' + persona_names[contacts.persona] + '"}'
    n = len(contacts)
    return pd.DataFrame(
        {
            "id": np.arange(first_id, first_id + n),
            "external_id": contacts.external_id,
            "email": contacts.email,
            "phone": contacts.phone,
            "first_name": contacts.first_name,
            "last_name": contacts.last_name,
            "locale": contacts.locale,
            "timezone": contacts.timezone,
            "country": contacts.country,
            "city": contacts.city,
            "birth_year": contacts.birth_year,
            "attributes": attributes,
            "is_anonymous": np.zeros(n, dtype=bool),
            "created_at": _timestamps(contacts.created_at),
            "updated_at": _constant_timestamp(now, n),
        },
        columns=list(CONTACT_COLUMNS),
    )


def events_frame(
    events: DemoEvents, contacts: DemoContacts, *, first_id: int, seed: int, now: datetime
) -> pd.DataFrame:
    etype = np.array(EVENT_TYPES, dtype=object)[events.type]
    device = np.array(DEVICES, dtype=object)[events.device]
    is_purchase = events.type == 0
    properties = np.full(len(events), "{}", dtype=object)
    amount = pd.Series(events.amount[is_purchase]).astype(str).to_numpy(dtype=object)
    category = np.array(CATEGORIES, dtype=object)[events.category[is_purchase]]
    properties[is_purchase] = '{"amount": ' + amount + ', "category": "' + category + '"}'
    mobile = events.device == 1
    channel = np.select(
        [(events.type == 1) | (events.type == 2), events.type == 5, mobile],
        ["email", "app", "app"],
        default="web",
    ).astype(object)
    contact_index = events.contact
    keys = (
        pd.Series(contacts.external_id[contact_index]).to_numpy(dtype=object)
        + "-"
        + pd.Series(events.sequence).astype(str).to_numpy(dtype=object)
    )
    n = len(events)
    return pd.DataFrame(
        {
            "contact_id": contact_index + first_id,
            "type": etype,
            "occurred_at": _timestamps(events.occurred_at),
            "received_at": _constant_timestamp(now, n),
            "properties": properties,
            "channel": channel,
            "device": device,
            "country": contacts.country[contact_index],
            "city": contacts.city[contact_index],
            "source": f"seed_demo:{seed}",
            "idempotency_key": keys,
        },
        columns=list(EVENT_COLUMNS),
    )


class TableWriter:
    """Appends DataFrames to one table: one COPY stream on PostgreSQL, batched INSERTs on SQLite.

    On PostgreSQL a queued writer sends from a background thread, so the next chunk is
    formatted in Python while the server parses the previous one (both cores busy).
    """

    def __init__(self, cursor, table: str, columns: tuple[str, ...]):
        self.cursor, self.table, self.columns = cursor, table, columns
        self._copy_context = None
        self._copy = None

    def __enter__(self) -> TableWriter:
        if connection.vendor == "postgresql":
            sql = (
                f"COPY {self.table} ({', '.join(self.columns)}) "
                "FROM STDIN WITH (FORMAT csv, NULL '\\N')"
            )
            raw = self.cursor.cursor  # the psycopg cursor behind Django's wrapper
            self._copy_context = raw.copy(sql, writer=QueuedLibpqWriter(raw))
            self._copy = self._copy_context.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._copy_context is not None:
            self._copy_context.__exit__(*exc)

    def write(self, frame: pd.DataFrame) -> None:
        if self._copy is not None:
            buffer = io.StringIO()
            frame.to_csv(buffer, header=False, index=False, na_rep="\\N")
            self._copy.write(buffer.getvalue())
        else:
            _insert_frame(self.cursor, self.table, frame)


@contextmanager
def foreign_keys_checked_once(cursor, table: str) -> Iterator[None]:
    """For a very large load into ``table`` on PostgreSQL: its foreign keys are dropped for the
    load and added back after it, in the caller's transaction. Adding a foreign key validates
    every row in one join, where a kept constraint fires a trigger per inserted row (Django's
    are deferred to commit: ~20 µs a row, 200 s for 10M events). The table is locked for the
    load (ACCESS EXCLUSIVE); use it only for bulk loads (seed), never for live ingestion.
    Elsewhere (SQLite) it does nothing."""
    if connection.vendor != "postgresql":
        yield
        return
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype = 'f' ORDER BY conname",
        [table],
    )
    keys = cursor.fetchall()
    for name, _definition in keys:
        cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    yield
    for name, definition in keys:
        cursor.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')


def _insert_frame(cursor, table: str, frame: pd.DataFrame, batch_size: int = 20_000) -> None:
    columns = ", ".join(frame.columns)
    placeholders = ", ".join(["%s"] * len(frame.columns))
    sql = f"INSERT INTO {table} ({columns}) VALUES ({placeholders})"  # noqa: S608 (fixed identifiers)
    for column in frame.columns:
        if frame[column].dtype == bool:
            frame[column] = frame[column].astype(int)
    rows = frame.itertuples(index=False, name=None)
    while True:
        batch = [
            tuple(v.item() if isinstance(v, np.generic) else v for v in row)
            for _, row in zip(range(batch_size), rows, strict=False)
        ]
        if not batch:
            return
        cursor.executemany(sql, batch)


def load_population(
    *,
    contacts: DemoContacts,
    events: Iterable[DemoEvents],
    expected_events: int,
    seed: int,
    now: datetime,
    progress: Progress | None = None,
) -> np.ndarray:
    """Write ``contacts`` then ``events`` in one transaction; return the contact ids (in order)."""
    progress = progress or (lambda stage, done, total: None)
    contact_table = Contact._meta.db_table
    event_table = Event._meta.db_table
    postgres = connection.vendor == "postgresql"
    with transaction.atomic(), connection.cursor() as cursor:
        if postgres:
            # Django's foreign keys are DEFERRABLE INITIALLY DEFERRED: millions of deferred
            # checks would queue up until commit. Check each row as it arrives instead.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(f"LOCK TABLE {contact_table} IN SHARE ROW EXCLUSIVE MODE")
        cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {contact_table}")  # noqa: S608
        first_id = int(cursor.fetchone()[0]) + 1
        chunk = 100_000
        with TableWriter(cursor, contact_table, CONTACT_COLUMNS) as writer:
            for start in range(0, len(contacts), chunk):
                part = _slice_contacts(contacts, start, start + chunk)
                writer.write(contacts_frame(part, first_id=first_id + start, now=now))
                progress("contacts", min(start + chunk, len(contacts)), len(contacts))
        if postgres:
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)",
                [contact_table, first_id + len(contacts) - 1 if len(contacts) else first_id],
            )
        if postgres and len(contacts):
            # Past months get their partitions before the load (beat only creates months
            # ahead), so the history lands in month partitions, not in DEFAULT.
            oldest = datetime.fromtimestamp(int(contacts.active_from.min()), UTC)
            event_partitions_create(first=min(oldest, now), last=now)
        rebuild = postgres and expected_events >= LARGE_LOAD_EVENTS
        if rebuild:
            # Put back exactly what the migrations built (columns, INCLUDE, method), not a
            # hand-written copy of it. On a partitioned table the definition reads ``ON ONLY``
            # (parent alone); without it the index cascades to every partition again.
            cursor.execute(
                "SELECT indexname, indexdef FROM pg_indexes "
                "WHERE tablename = %s AND indexname = ANY(%s) ORDER BY indexname",
                [event_table, list(EVENT_SECONDARY_INDEXES)],
            )
            definitions = [
                (name, definition.replace(" ON ONLY ", " ON ", 1))
                for name, definition in cursor.fetchall()
            ]
            for name, _definition in definitions:
                cursor.execute(f'DROP INDEX IF EXISTS "{name}"')
        done = 0
        with (
            foreign_keys_checked_once(cursor, event_table) if rebuild else nullcontext(),
            TableWriter(cursor, event_table, EVENT_COLUMNS) as writer,
        ):
            for part in events:
                writer.write(events_frame(part, contacts, first_id=first_id, seed=seed, now=now))
                done += len(part)
                progress("events", done, expected_events)
        if rebuild:
            for done_indexes, (_name, definition) in enumerate(definitions):
                progress("indexes", done_indexes, len(definitions))
                cursor.execute(definition)
            progress("indexes", len(definitions), len(definitions))
        if postgres:
            cursor.execute(f"ANALYZE {contact_table}")
            cursor.execute(f"ANALYZE {event_table}")
    return np.arange(first_id, first_id + len(contacts))


def _slice_contacts(contacts: DemoContacts, start: int, stop: int) -> DemoContacts:
    return DemoContacts(
        **{name: getattr(contacts, name)[start:stop] for name in contacts.__dataclass_fields__}
    )
