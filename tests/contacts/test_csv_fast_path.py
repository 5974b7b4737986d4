"""The events CSV import reads plain lines in blocks with pandas' C parser and every other line
with the careful per-line reader. Whatever a file holds, the stored rows, the counts and the
reject file (line numbers, reasons, cells) are those of the careful reader alone."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from contacts.models import Event
from contacts.services import csv_import as csv_import_module
from contacts.services.csv_blocks import plain_block_rows
from contacts.services.csv_import import _UTF8_SEQUENCE, csv_import
from contacts.services.event_batch import iso_utc_nanoseconds
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db

HEADER = "external_id,type,timestamp,idempotency_key,amount,category"


def hostile_events_file(path: Path, *, line_end: bytes = b"\n", encoding: str = "utf-8") -> None:
    """Good lines around every kind of line the fast path must leave to the careful reader."""
    lines: list[bytes] = [HEADER.encode()]
    for i in range(60):
        lines.append(f"C-{i % 7},page_view,2026-03-01T10:{i % 60:02d}:00Z,k{i},,".encode())
    hostile = [
        'C-1,page_view,"2026-03-01T10:00:00Z",q1,,',  # quoted, well formed
        'C-1,page_view,2026-03-01T10:00:00Z,"q2 left open,,',  # a quote left open
        "C-1,page_view,2026-03-01T10:00:00Z,x1,,,extra",  # too many fields
        "C-1,page_view,2026-03-01T10:00:00Z,x2",  # too few
        "",  # blank
        "   ",  # whitespace only
        ",,,,,",  # empty cells
        "C-2,purchase,2026-03-01T11:00:00+01:00,p1,12.5,Chaussures",
        "C-2,purchase,2026-03-01T11:00:00+01:00,p2,douze,shoes",  # bad amount
        "C-2,page_view,0001-01-01T00:00:00Z,y1,,",  # year 1
        "C-2,page_view,2026-02-30T00:00:00Z,y2,,",  # no such day
        "C-2,page_view,2026-03-01 10:00:00.5-05:30,y3,,",
        "C-2,page_view,2026-03-01T10:00:00,y4,,",  # no offset
        "C-3,page_view,2026-03-01T10:00:00Z,k3,,",  # a key repeated from above
        "C-3,page_view,2026-03-01T10:00:00Z,\x00nul,,",
        " C-4 ,page_view, 2026-03-01T10:00:00Z ,spaced,,",
        "C-5,Achat,2026-03-01T10:00:00Z,p3,3,beauté",
    ]
    for i, line in enumerate(hostile):
        lines.append(line.encode(encoding))
        lines.extend(
            f"C-{j % 7},page_view,2026-03-02T10:{j % 60:02d}:00Z,h{i}-{j},,".encode()
            for j in range(i % 4)
        )
    lines.append("C-6,page_view,2026-03-01T10:00:00Z,latin,,Été".encode("latin-1"))
    lines.append(b"C-6,page_view,2026-03-01T10:00:00Z,k59,,")  # repeated, next chunk
    lines.extend(
        f"C-{i % 7},email_open,2026-03-03T10:{i % 60:02d}:00Z,t{i},,".encode() for i in range(300)
    )
    path.write_bytes(line_end.join(lines) + line_end)


def imported(path: Path, tmp_path: Path, *, source: str, chunk_size: int, encoding: str = ""):
    rejects = tmp_path / f"{source}-rejects.csv"
    counts = csv_import(
        kind="events",
        path=path,
        source=source,
        rejects_path=rejects,
        chunk_size=chunk_size,
        encoding=encoding,
    )
    rows = sorted(
        Event.objects.filter(source=source).values_list(
            "contact__external_id", "type", "occurred_at", "idempotency_key", "properties"
        )
    )
    return counts.as_dict(), rows, rejects.read_text(encoding="utf-8")


@pytest.mark.parametrize("line_end", [b"\n", b"\r\n"])
@pytest.mark.parametrize("chunk_size", [7, 100_000])
def test_fast_path_stores_and_rejects_exactly_what_the_careful_reader_does(
    tmp_path, monkeypatch, line_end, chunk_size
):
    for i in range(7):
        ContactFactory(external_id=f"C-{i}")
    path = tmp_path / "events.csv"
    hostile_events_file(path, line_end=line_end)
    vouched = []

    def spy(data, **kwargs):
        block = plain_block_rows(data, **kwargs)
        vouched.append(block.lines)
        return block

    monkeypatch.setattr(csv_import_module, "plain_block_rows", spy)
    fast = imported(path, tmp_path, source="fast", chunk_size=chunk_size)
    assert sum(vouched) > 200  # most lines took the fast path
    monkeypatch.setattr(csv_import_module, "plain_block_encoding", lambda encoding: "")
    careful = imported(path, tmp_path, source="careful", chunk_size=chunk_size)

    assert fast == careful
    counts, rows, rejects = fast
    assert counts["rejected"] >= 10 and counts["created"] > 100 and counts["duplicates"] == 2
    assert "A quote is left open" in rejects and "Not valid utf-8 text" in rejects
    assert ("C-4", "page_view") in {(r[0], r[1]) for r in rows if r[3] == "spaced"}


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252"])
def test_fast_path_matches_the_careful_reader_in_a_legacy_file(tmp_path, monkeypatch, encoding):
    for i in range(7):
        ContactFactory(external_id=f"C-{i}")
    path = tmp_path / "events.csv"
    hostile_events_file(path, encoding="latin-1")
    with path.open("ab") as fh:
        fh.write("C-1,page_view,2026-03-04T10:00:00Z,utf8,,Vêtements\n".encode())
        fh.write("C-1,page_view,2026-03-04T10:00:00Z,cp,,Cœur\n".encode("cp1252"))

    fast = imported(path, tmp_path, source="fast", chunk_size=50, encoding=encoding)
    monkeypatch.setattr(csv_import_module, "plain_block_encoding", lambda encoding: "")
    careful = imported(path, tmp_path, source="careful", chunk_size=50, encoding=encoding)

    assert fast == careful
    counts, rows, rejects = fast
    assert "UTF-8 text in a" in rejects
    assert {r[4].get("category") for r in rows if r[3] in ("latin", "cp")} >= {"Été"}


def test_plain_block_stops_before_the_first_line_it_cannot_vouch_for():
    data = b'a,b,c\nd,e,f\ng,"h",i\nj,k,l\n'
    block = plain_block_rows(
        data,
        encoding="utf-8",
        delimiter=",",
        width=3,
        utf8_sequence=_UTF8_SEQUENCE,
        max_line=1000,
    )
    assert block.size == len(b"a,b,c\nd,e,f\n") and block.lines == 2
    assert [list(column) for column in block.cells] == [["a", "d"], ["b", "e"], ["c", "f"]]

    irregular = b"a,b,c\n d , 007 ,\nx,y\n"
    block = plain_block_rows(
        irregular,
        encoding="utf-8",
        delimiter=",",
        width=3,
        utf8_sequence=_UTF8_SEQUENCE,
        max_line=1000,
    )
    assert block.lines == 2 and [column[1] for column in block.cells] == [" d ", " 007 ", ""]


def test_vectorised_timestamps_agree_with_fromisoformat():
    rng = random.Random(7)
    values = [
        "2026-03-01T10:00:00Z",
        "2026-03-01 10:00:00.5-05:30",
        "2024-02-29T23:59:59.999999+23:59",
        "2025-02-29T00:00:00Z",
        "0001-01-01T00:00:00Z",
        "2026-03-01T10:00:00",
        "2026-03-01T24:00:00Z",
        "٢٠٢٦-03-01T10:00:00Z",
        "2026-03-01T10:00:00+0100",
        "2026-03-01T10:00:00.1234567Z",
    ]
    for _ in range(3000):
        stamp = (
            f"{rng.choice([1969, 1970, 2000, 2024, 2026, 2201]):04d}-{rng.randint(0, 13):02d}-"
            f"{rng.randint(0, 32):02d}{rng.choice('T t')}{rng.randint(0, 24):02d}:"
            f"{rng.randint(0, 60):02d}:{rng.randint(0, 60):02d}"
            f"{rng.choice(['', '.', '.5', '.123456'])}"
            f"{rng.choice(['Z', '+01:00', '-05:30', '+24:00', 'z', ''])}"
        )
        values.append(stamp)
    stamps = np.empty(len(values), dtype=object)
    stamps[:] = values
    nanoseconds, shaped = iso_utc_nanoseconds(stamps)
    assert shaped.sum() > 100
    for value, ns, ok in zip(values, nanoseconds, shaped, strict=True):
        if not ok:
            continue
        moment = datetime.fromisoformat(value)
        assert moment.tzinfo is not None, value
        assert pd.Timestamp(moment.astimezone(UTC)).value == ns, value


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_fast_path_matches_the_careful_reader_on_postgresql(tmp_path, monkeypatch):
    """The chunks are stored by the background writer through COPY there."""
    for i in range(7):
        ContactFactory(external_id=f"C-{i}")
    path = tmp_path / "events.csv"
    hostile_events_file(path, line_end=b"\r\n")

    fast = imported(path, tmp_path, source="fast", chunk_size=7)
    monkeypatch.setattr(csv_import_module, "plain_block_encoding", lambda encoding: "")
    careful = imported(path, tmp_path, source="careful", chunk_size=7)

    assert fast == careful
    assert fast[0]["created"] > 100 and fast[0]["rejected"] >= 10
