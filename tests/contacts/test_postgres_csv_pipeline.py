"""On PostgreSQL, outside a transaction, CSV event chunks are stored by a background thread
while the next chunk is read and cleaned: the outcome must be the sequential import's."""

from __future__ import annotations

import csv
import threading

import psycopg
import pytest
from django.db import connection

from contacts.models import Contact, Event
from contacts.services import csv_import as csv_import_module
from contacts.services.csv_import import csv_import
from contacts.signals import events_ingested
from tests.factories import ContactFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_chunked_import_on_postgresql_matches_sequential_semantics(tmp_path, monkeypatch):
    assert connection.vendor == "postgresql"
    ContactFactory(external_id="C-1")
    lines = ["external_id,type,timestamp,idempotency_key,amount"]
    for i in range(25):  # five chunks of five lines
        lines.append(f"C-1,page_view,2026-03-01T10:{i:02d}:00Z,k-{i},")
    lines[3] = "NEW-1,page_view,2026-03-01T11:00:00Z,new-1,"  # unknown: created in chunk 1
    lines[8] = "NEW-1,page_view,2026-03-01T11:01:00Z,new-2,"  # same person, chunk 2
    lines[12] = "C-1,page_view,2026-03-01T10:01:00Z,k-1,"  # line of chunk 1 again: duplicate
    lines[17] = "C-1,purchase,2026-03-01T12:00:00Z,p-1,abc"  # rejected in chunk 4
    lines[24] = "C-1,page_view,pas une date,k-bad,"  # rejected in chunk 5
    path = tmp_path / "events.csv"
    path.write_text("\n".join(lines) + "\n")
    rejects = tmp_path / "rejects.csv"
    progress: list[int] = []
    threads: set[str] = set()

    signalled: list[tuple[str, list[int]]] = []

    def seen(done: int, total: int) -> None:
        progress.append(done)
        threads.add(threading.current_thread().name)

    stored_by: set[str] = set()
    store = csv_import_module.events_store_clean

    def ingested(sender, *, contact_ids, **kwargs) -> None:
        # sent after commit: another connection already sees the chunk's rows
        with psycopg.connect(**connection.get_connection_params()) as other:
            (visible,) = other.execute(
                "SELECT count(*) FROM contacts_event WHERE source = 'shop' AND contact_id = ANY(%s)",
                [list(contact_ids)],
            ).fetchone()
        signalled.append((threading.current_thread().name, visible))

    def spied_store(**kwargs):
        stored_by.add(threading.current_thread().name)
        return store(**kwargs)

    monkeypatch.setattr(csv_import_module, "events_store_clean", spied_store)
    events_ingested.connect(ingested, dispatch_uid="test-csv-pipeline")
    try:
        counts = csv_import(
            kind="events",
            path=path,
            source="shop",
            rejects_path=rejects,
            chunk_size=5,
            progress=seen,
        )
    finally:
        events_ingested.disconnect(dispatch_uid="test-csv-pipeline")

    assert counts.as_dict() == {
        "lines": 25,
        "created": 22,
        "updated": 0,
        "duplicates": 1,
        "rejected": 2,
    }
    assert Event.objects.filter(source="shop").count() == 22
    assert Contact.objects.filter(external_id="NEW-1").count() == 1
    new = Contact.objects.get(external_id="NEW-1")
    assert set(new.events.values_list("idempotency_key", flat=True)) == {"new-1", "new-2"}
    with rejects.open() as fh:
        rows = list(csv.reader(fh))
    assert [row[0] for row in rows[1:]] == ["18", "25"]  # file order, line numbers kept
    assert rows[1][1].startswith("properties:") and rows[2][1].startswith("timestamp:")
    assert progress == sorted(progress) and progress[-1] == 25
    assert threads == {threading.main_thread().name}  # progress is reported by the caller's thread
    # The chunks were stored by the background writer, and signalled once each, after commit,
    # from the caller's thread.
    assert stored_by and threading.main_thread().name not in stored_by
    assert len(signalled) == 5
    assert {name for name, _visible in signalled} == {threading.main_thread().name}
    assert all(visible > 0 for _name, visible in signalled)


def test_chunked_import_rerun_on_postgresql_stores_nothing_twice(tmp_path):
    ContactFactory(external_id="C-1")
    lines = ["external_id,type,timestamp,idempotency_key"]
    lines += [f"C-1,page_view,2026-03-01T10:{i:02d}:00Z,k-{i}" for i in range(12)]
    path = tmp_path / "events.csv"
    path.write_text("\n".join(lines) + "\n")
    first = csv_import(kind="events", path=path, source="shop", chunk_size=5)
    again = csv_import(kind="events", path=path, source="shop", chunk_size=5)
    assert (first.created, first.duplicates) == (12, 0)
    assert (again.created, again.duplicates) == (0, 12)
    assert Event.objects.filter(source="shop").count() == 12
