"""CSV import of contacts and events: streamed, chunked through the same services as the API.

Contract: the file is read as a stream (never loaded whole); delimiter (``, ; tab |``) and
encoding (UTF-8 with or without BOM, else Windows-1252/Latin-1) are detected unless given; the
first line names the columns. Each chunk goes through :func:`contacts_upsert_bulk` or
:func:`events_record_bulk`, so normalisation, idempotency and signals are the API's. Every bad
line is written to the reject file with its line number and reason; good lines still land.
Re-running the same file stores nothing twice (events by ``(source, idempotency_key)``, contacts
by upsert).
"""

from __future__ import annotations

import csv
import io
import re
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection, connections, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from contacts.normalisation import InvalidValue, parse_number, zone_or_none
from contacts.selectors import AliasTables
from contacts.services.csv_blocks import (
    PlainBlock,
    nth_line_end,
    plain_block_encoding,
    plain_block_rows,
)
from contacts.services.event_batch import (
    events_clean_columns,
    events_ingested_send,
    events_prepare_rows,
    events_resolve_contacts,
    events_store_clean,
)
from contacts.services.ingest import (
    CONTACT_FIELDS,
    EVENT_FIELDS,
    ItemResult,
    contact_item_clean,
    contacts_upsert_bulk,
    event_item_clean,
)

KINDS = ("contacts", "events")
SAMPLE_BYTES = 256 * 1024
DELIMITERS = ",;\t|"
IGNORE = ""
_UNDECODABLE = re.compile("[\udc80-\udcff]")  # bytes kept by errors="surrogateescape"
# A well-formed multi-byte UTF-8 sequence: in a file that is not wholly UTF-8, the mark of
# UTF-8 lines mixed with Latin-1 ones (Latin-1 text almost never forms one).
_UTF8_SEQUENCE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)
LEGACY_ENCODINGS = ("cp1252", "latin-1", "latin1", "iso-8859-1", "iso-8859-15", "windows-1252")
# Bounds of one CSV record: a quoted cell may span lines (addresses…), but a quote left open
# must not swallow the rest of the file. A longer record is rejected, not read.
MAX_RECORD_LINES = 100
MAX_RECORD_CHARS = 4 * 1024 * 1024
csv.field_size_limit(max(csv.field_size_limit(), MAX_RECORD_CHARS))
QUOTE_LEFT_OPEN = gettext_lazy(
    'A quote is left open on this line (it ran into the next lines); close it or escape it as "".'
)
ImportProgress = Callable[[int, int], None]
CONTACTS_CHUNK = 5000
# Big chunks amortise per-chunk costs and walk the contact pages in fewer sweeps.
EVENTS_CHUNK = 100_000


class CsvImportError(ValueError):
    """The file cannot be imported at all (unreadable, no header, unknown column target)."""


@dataclass
class ImportCounts:
    lines: int = 0
    created: int = 0
    updated: int = 0
    duplicates: int = 0
    rejected: int = 0
    delimiter: str = ""
    encoding: str = ""
    # Header columns no field takes (empty name, or mapped to nothing): named in the summary.
    ignored_columns: list[str] = field(default_factory=list)
    # Columns Cible does not know as a field, kept as ``attributes.<name>``/``properties.<name>``.
    extra_columns: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {
            "lines": self.lines,
            "created": self.created,
            "updated": self.updated,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
        }


@dataclass
class CsvLayout:
    """How a file is read: detected (or given) encoding, delimiter, header and column targets."""

    encoding: str
    delimiter: str
    header: list[str]
    column_map: dict[str, str] = field(default_factory=dict)


def detect_encoding(sample: bytes) -> str:
    """``utf-8-sig`` / ``utf-8`` when the sample decodes as UTF-8 — or holds UTF-8 sequences
    beside undecodable bytes (a mixed file: its non-UTF-8 lines are then rejected) — else
    ``cp1252`` (a superset of Latin-1 for text; bytes cp1252 leaves undefined fall back to
    ``latin-1``)."""
    if sample.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    cut = sample.rfind(b"\n")
    body = sample if cut < 0 or len(sample) < SAMPLE_BYTES else sample[: cut + 1]
    try:
        body.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    if _UTF8_SEQUENCE.search(body):
        return "utf-8"  # mixed: the lines that are not UTF-8 are rejected, never guessed
    try:
        body.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError:
        return "latin-1"


def detect_delimiter(sample_text: str) -> str:
    lines = sample_text.splitlines()[:50]
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters=DELIMITERS).delimiter
    except csv.Error:
        header = lines[0] if lines else ""
        return max(DELIMITERS, key=header.count) if any(d in header for d in DELIMITERS) else ","


def default_column_map(kind: str, header: list[str]) -> dict[str, str]:
    """Columns named like a field map to it; every other column becomes a property (events) or
    an attribute (contacts)."""
    fields = EVENT_FIELDS if kind == "events" else CONTACT_FIELDS
    extra = "properties" if kind == "events" else "attributes"
    mapping = {}
    for column in header:
        name = column.strip().lower()
        if name in fields and name not in ("properties", "attributes"):
            mapping[column] = name
        elif name:
            mapping[column] = f"{extra}.{column.strip()}"
        else:
            mapping[column] = IGNORE
    return mapping


def column_targets(kind: str) -> list[str]:
    """Targets a column may be mapped to (besides ``properties.<name>`` / ``attributes.<name>``)."""
    fields = EVENT_FIELDS if kind == "events" else CONTACT_FIELDS
    return [f for f in fields if f not in ("properties", "attributes")]


def csv_layout(
    path: Path,
    *,
    kind: str,
    delimiter: str = "",
    encoding: str = "",
    column_map: dict[str, str] | None = None,
) -> CsvLayout:
    """Read the start of the file: encoding, delimiter, header; validate ``column_map``."""
    if kind not in KINDS:
        raise CsvImportError(_("Unknown import kind %(kind)s.") % {"kind": kind})
    with path.open("rb") as fh:
        sample = fh.read(SAMPLE_BYTES)
    if not sample.strip():
        raise CsvImportError(_("The file is empty."))
    encoding = encoding or detect_encoding(sample)
    try:
        text = sample.decode(encoding, errors="surrogateescape")
    except LookupError as exc:
        raise CsvImportError(_("Unknown encoding %(enc)s.") % {"enc": encoding}) from exc
    delimiter = delimiter or detect_delimiter(text)
    if delimiter == "\\t":
        delimiter = "\t"
    if len(delimiter) != 1:
        raise CsvImportError(_("The delimiter must be one character."))
    try:
        header = next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), [])
    except csv.Error as exc:
        raise CsvImportError(_("Unreadable CSV line: %(error)s") % {"error": exc}) from exc
    if not header or not any(h.strip() for h in header):
        raise CsvImportError(_("The first line must name the columns."))
    mapping = default_column_map(kind, header)
    if column_map:
        allowed = set(column_targets(kind))
        prefix = "properties." if kind == "events" else "attributes."
        for column, target in column_map.items():
            if column not in mapping:
                raise CsvImportError(_("No column %(col)s in the file.") % {"col": column})
            if target and target not in allowed and not target.startswith(prefix):
                raise CsvImportError(_("Unknown target %(t)s.") % {"t": target})
            mapping[column] = target
    return CsvLayout(encoding=encoding, delimiter=delimiter, header=header, column_map=mapping)


def csv_column_report(layout: CsvLayout) -> tuple[list[str], list[str]]:
    """``(ignored columns, columns kept as attributes/properties)`` of a file's header; a
    column without a name is called ``#<position>``."""
    ignored, extra = [], []
    for position, column in enumerate(layout.header, start=1):
        target = layout.column_map.get(column, IGNORE)
        name = column.strip() or f"#{position}"
        if not target:
            ignored.append(name)
        elif target.startswith(("attributes.", "properties.")):
            extra.append(name)
    return ignored, extra


def _count_lines(path: Path) -> int:
    count = returns = 0
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            count += block.count(b"\n")
            returns += block.count(b"\r") if not count else 0
    return count or returns  # a file of lone-CR lines (old Mac exports) counts its CRs


@dataclass
class _Line:
    number: int
    raw: list[str]
    item: dict[str, Any] | None
    error: str = ""


class _RecordTooLong(Exception):
    """A record spans more than ``MAX_RECORD_LINES`` lines or ``MAX_RECORD_CHARS`` characters."""


class _CarriageReturnLines:
    """A binary file whose lines end with a lone CR (old Mac exports), read as LF lines."""

    def __init__(self, fh: Any) -> None:
        self.fh, self.buffer = fh, b""

    def readline(self, limit: int) -> bytes:
        while b"\n" not in self.buffer and len(self.buffer) < limit:
            block = self.fh.read(1 << 16)
            if not block:
                break
            self.buffer += block.replace(b"\r", b"\n")
        cut = self.buffer.find(b"\n")
        end = cut + 1 if 0 <= cut < limit else min(limit, len(self.buffer))
        line, self.buffer = self.buffer[:end], self.buffer[end:]
        return line


class _PhysicalLines:
    """The decoded physical lines of a CSV file, fed to ``csv.reader``: each line is decoded on
    its own (so one line's encoding never garbles another's), numbered, kept with the record
    being read (``record``) so that a record found broken can give its following lines back
    (``give_back``), and bounded per record."""

    def __init__(self, fh: Any, encoding: str) -> None:
        self.fh, self.encoding = fh, encoding
        self.legacy = encoding.lower().replace("_", "-") in LEGACY_ENCODINGS
        self.number = 0
        self.pending: deque[tuple[int, bytes]] = deque()
        self.record: list[tuple[int, bytes]] = []
        self.chars = 0
        self.cr_only = False

    def start_record(self) -> None:
        self.record, self.chars = [], 0

    def give_back(self, lines: list[tuple[int, bytes]]) -> None:
        self.pending.extendleft(reversed(lines))

    def text(self, raw: bytes) -> str:
        return raw.decode(self.encoding, errors="surrogateescape")

    def utf8_in_legacy(self) -> bool:
        """A line of the record is UTF-8 text in a Windows-1252/Latin-1 file."""
        return self.legacy and any(
            not raw.isascii() and _UTF8_SEQUENCE.search(raw) for _n, raw in self.record
        )

    def __iter__(self) -> _PhysicalLines:
        return self

    def __next__(self) -> str:
        if len(self.record) >= MAX_RECORD_LINES:
            raise _RecordTooLong
        if self.pending:
            number, raw = self.pending.popleft()
        else:
            raw = self.fh.readline(MAX_RECORD_CHARS + 1)
            if not raw:
                raise StopIteration
            self.number += 1
            number = self.number
            if len(raw) > MAX_RECORD_CHARS and not raw.endswith(b"\n"):
                while (rest := self.fh.readline(1 << 20)) and not rest.endswith(b"\n"):
                    pass  # skip the rest of this overlong line
                self.record.append((number, raw[:200]))
                raise _RecordTooLong
        self.record.append((number, raw))
        self.chars += len(raw)
        if self.chars > MAX_RECORD_CHARS:
            raise _RecordTooLong
        return self.text(raw)


def _well_quoted(lines: _PhysicalLines, delimiter: str, width: int) -> bool:
    """Whether a record spanning several lines is one well-formed quoted record of ``width``
    fields (strict quoting), rather than a quote left open running into the next lines."""
    text = "".join(lines.text(raw) for _n, raw in lines.record)
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True))
    except csv.Error:
        return False
    return len(rows) == 1 and len(rows[0]) == width


def _lines(path: Path, layout: CsvLayout, *, kind: str, items: bool = True) -> Iterator[_Line]:
    """Rows of the file as items (targets applied, numbers parsed), with their line numbers.
    ``items=False``: a good row's item is left empty (``{}``) for the caller to build.

    A broken line is a reject of its own and never takes other lines with it: a quote left
    open (a record spanning several lines without the header's field count), an overlong
    record, a line in another encoding than the file's."""
    with _opened(path, layout) as (_fh, lines, reader):
        if reader is not None:
            yield from _records(lines, reader, layout, kind=kind, items=items)


@contextmanager
def _opened(path: Path, layout: CsvLayout) -> Iterator[tuple[Any, _PhysicalLines, Any]]:
    """``(binary file, its physical lines, csv reader)`` positioned after the header; the reader
    is ``None`` when the header itself cannot be read."""
    with path.open("rb") as fh:
        sample = fh.read(SAMPLE_BYTES)
        fh.seek(0)
        cr_only = b"\r" in sample and b"\n" not in sample
        lines = _PhysicalLines(_CarriageReturnLines(fh) if cr_only else fh, layout.encoding)
        lines.cr_only = cr_only
        reader = csv.reader(lines, delimiter=layout.delimiter)
        try:
            next(reader, None)  # the header (read by csv_layout)
        except (_RecordTooLong, csv.Error):
            reader = None
        yield fh, lines, reader


def _records(
    lines: _PhysicalLines, reader: Any, layout: CsvLayout, *, kind: str, items: bool
) -> Iterator[_Line]:
    """The records :func:`_lines` yields, read by ``reader`` from ``lines``; between two records
    the reader holds no state, so a caller may read plain lines from the file in between
    (:func:`_event_chunks`) when ``lines.pending`` is empty."""
    width = len(layout.header)
    targets = [layout.column_map.get(column, IGNORE) for column in layout.header]
    decimal_comma = layout.delimiter != ","
    nested = "properties" if kind == "events" else "attributes"
    numeric_nested = kind == "events"

    def broken(reason: Any) -> _Line:
        """The record's first line rejected; its other lines are read again."""
        record = lines.record or [(lines.number, b"")]
        lines.give_back(record[1:])
        text = lines.text(record[0][1]).rstrip("\r\n")
        raw = next(csv.reader([text], delimiter=layout.delimiter), [])
        return _Line(record[0][0], [cell[:1000] for cell in raw], None, str(reason))

    while True:
        lines.start_record()
        try:
            raw = next(reader)
        except StopIteration:
            return
        except _RecordTooLong:
            yield broken(
                QUOTE_LEFT_OPEN
                if len(lines.record) > 1
                else _("The line is longer than %(mb)d MB.")
                % {"mb": MAX_RECORD_CHARS // (1024 * 1024)}
            )
            continue
        except csv.Error as exc:
            yield broken(_("Unreadable CSV line: %(error)s") % {"error": exc})
            continue
        number = lines.record[0][0] if lines.record else lines.number
        if not raw or (len(raw) == 1 and not raw[0].strip()):
            continue
        if len(lines.record) > 1 and not _well_quoted(lines, layout.delimiter, width):
            yield broken(QUOTE_LEFT_OPEN)
            continue
        if len(raw) != width:
            yield _Line(
                number,
                raw,
                None,
                _("Expected %(n)d fields, found %(m)d.") % {"n": width, "m": len(raw)},
            )
            continue
        if lines.utf8_in_legacy():
            yield _Line(
                number,
                raw,
                None,
                _(
                    "This line is UTF-8 text in a %(enc)s file (mixed encodings are not "
                    "guessed); save the whole file as UTF-8."
                )
                % {"enc": layout.encoding},
            )
            continue
        if _UNDECODABLE.search("".join(raw)):
            yield _Line(
                number,
                raw,
                None,
                _(
                    "Not valid %(enc)s text; if the file mixes encodings, save it whole as "
                    "UTF-8, else set its encoding (e.g. --encoding latin-1)."
                )
                % {"enc": layout.encoding},
            )
            continue
        if not items:
            yield _Line(number, raw, {})
            continue
        yield _Line(number, raw, _item(raw, targets, nested, numeric_nested, decimal_comma))


def _item(
    raw: list[str], targets: list[str], nested: str, numeric_nested: bool, decimal_comma: bool
) -> dict[str, Any]:
    """The item a CSV row stands for: targets applied, nested cells (numbers parsed)."""
    item: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for target, value in zip(targets, raw, strict=True):
        if not target or value == "":
            continue
        if target.startswith(nested + "."):
            name = target[len(nested) + 1 :]
            extra[name] = (
                parse_number(value, decimal_comma=decimal_comma)
                if numeric_nested
                else value.strip()
            )
        else:
            item[target] = value
    if extra:
        item[nested] = extra
    return item


# The fast path reads plain lines in blocks (contacts.services.csv_blocks) of up to
# MIN_BLOCK_BYTES after a line it could not vouch for, growing fourfold while blocks are plain
# up to MAX_BLOCK_BYTES. The line it stopped at goes to the careful reader with the lines
# of its record; when the fast path then fails again at once, the careful reader takes
# twice as many lines the next time (a file quoted throughout costs few fast attempts).
MIN_BLOCK_BYTES = 64 * 1024
MAX_BLOCK_BYTES = 64 * 1024 * 1024
CAREFUL_WINDOW_MAX = 65_536


@dataclass
class _EventChunk:
    """Up to ``chunk_size`` records of an events file, in line order: the good ones as pieces
    (line numbers, one object array of cells per header column), the broken ones as lines."""

    numbers: list[np.ndarray] = field(default_factory=list)
    cells: list[list[np.ndarray]] = field(default_factory=list)
    careful: list[_Line] = field(default_factory=list)  # good lines not yet in a piece
    broken: list[_Line] = field(default_factory=list)
    records: int = 0
    last: int = 0  # number of the last physical line read

    def add_piece(self, numbers: np.ndarray, cells: list[np.ndarray]) -> None:
        self.close_careful()
        self.numbers.append(numbers)
        self.cells.append(cells)
        self.records += len(numbers)

    def add_line(self, line: _Line) -> None:
        (self.careful if line.item is not None else self.broken).append(line)
        self.records += 1

    def close_careful(self) -> None:
        if self.careful:
            good, self.careful = self.careful, []
            self.numbers.append(np.array([line.number for line in good], dtype=np.int64))
            self.cells.append(
                [_object_array(column) for column in zip(*(line.raw for line in good), strict=True)]
            )

    def columns(self, *, width: int) -> tuple[np.ndarray, list[np.ndarray]]:
        """``(line numbers, one array of cells per column)`` of the good records."""
        self.close_careful()
        if not self.numbers:
            return np.zeros(0, dtype=np.int64), [_object_array(()) for _ in range(width)]
        return np.concatenate(self.numbers), [
            np.concatenate([piece[column] for piece in self.cells]) for column in range(width)
        ]


def _object_array(values: Any) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _event_chunks(path: Path, layout: CsvLayout, *, chunk_size: int) -> Iterator[_EventChunk]:
    """The records of an events file in chunks of ``chunk_size``, read as :func:`_lines` reads
    them: plain lines in blocks by the C parser (:func:`plain_block_rows`), every other line by
    the careful reader, so the good records, the broken lines and their reasons are the same."""
    width = len(layout.header)
    encoding = plain_block_encoding(layout.encoding)
    with _opened(path, layout) as (fh, lines, reader):
        if reader is None:
            return
        careful = _records(lines, reader, layout, kind="events", items=False)
        fast = bool(encoding) and not lines.cr_only
        line_bytes, reach, window = 128, MIN_BLOCK_BYTES, 1
        chunk = _EventChunk()
        while True:
            if chunk.records >= chunk_size:
                yield chunk
                chunk = _EventChunk()
            if fast and not lines.pending:
                start = fh.tell()
                want = chunk_size - chunk.records
                asked = min(reach, max(4096, want * line_bytes))
                data = fh.read(asked)
                if not data:
                    break
                if len(data) == asked:  # not the end of the file: whole lines only
                    data = data[: data.rfind(b"\n") + 1]
                if data.count(b"\n") > want:
                    data = data[: nth_line_end(data, want)]
                block = (
                    plain_block_rows(
                        data,
                        encoding=encoding,
                        delimiter=layout.delimiter,
                        width=width,
                        utf8_sequence=_UTF8_SEQUENCE,
                        max_line=MAX_RECORD_CHARS,
                    )
                    if data
                    else PlainBlock()
                )
                fh.seek(start + block.size)
                if block.lines:
                    first = lines.number + 1
                    lines.number += block.lines
                    chunk.add_piece(np.arange(first, lines.number + 1), block.cells)
                    chunk.last = lines.number
                    line_bytes = max(1, block.size // block.lines + 1)
                    window = 1
                    if block.size == len(data):
                        reach = min(MAX_BLOCK_BYTES, 4 * reach)
                        continue
                reach = MIN_BLOCK_BYTES
            # The careful reader, up to a record boundary at least ``window`` lines on.
            stop = lines.number + window
            while (line := next(careful, None)) is not None:
                chunk.add_line(line)
                chunk.last = lines.number
                if chunk.records >= chunk_size or (lines.number >= stop and not lines.pending):
                    break
            if line is None:
                break
            window = min(2 * window, CAREFUL_WINDOW_MAX)
        if chunk.records:
            yield chunk


class _ChunkStore:
    """Runs the storing of event chunks one after another — on PostgreSQL, outside a
    transaction, in one background thread with its own connection, so that the next chunk is
    read, cleaned and its contacts resolved while the database stores the previous one.
    Chunks are still stored, committed and signalled strictly in file order, so a key repeated
    across chunks and contacts created by an earlier chunk behave as in a sequential import.
    Elsewhere (SQLite, or inside a caller's transaction, whose rows another connection could
    not see) each chunk is stored inline."""

    def __init__(self, *, background: bool) -> None:
        use_thread = (
            background and connection.vendor == "postgresql" and not connection.in_atomic_block
        )
        self.pool = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="csv-import-store")
            if use_thread
            else None
        )

    def submit(self, function: Callable[..., Any], **kwargs: Any) -> Future:
        if self.pool is not None:
            return self.pool.submit(function, **kwargs)
        done: Future = Future()
        try:
            done.set_result(function(**kwargs))
        except Exception as exc:
            done.set_exception(exc)
        return done

    def close(self) -> None:
        if self.pool is not None:
            self.pool.submit(connections.close_all).result()  # the thread's own connection
            self.pool.shutdown()


def csv_import(
    *,
    kind: str,
    path: Path,
    source: str,
    delimiter: str = "",
    encoding: str = "",
    default_timezone: str = "",
    column_map: dict[str, str] | None = None,
    rejects_path: Path | None = None,
    progress: ImportProgress | None = None,
    chunk_size: int | None = None,
) -> ImportCounts:
    """Import ``path`` (see module docstring); return the counts. Bad lines go to
    ``rejects_path`` as CSV ``line,reason,<original columns…>``."""
    if not source.strip():
        raise CsvImportError(_("A source name is required (events are idempotent per source)."))
    try:
        zone_or_none(default_timezone)
    except InvalidValue as exc:
        raise CsvImportError(str(exc)) from exc
    layout = csv_layout(
        path, kind=kind, delimiter=delimiter, encoding=encoding, column_map=column_map
    )
    total = max(0, _count_lines(path) - 1)
    counts = ImportCounts(delimiter=layout.delimiter, encoding=layout.encoding)
    counts.ignored_columns, counts.extra_columns = csv_column_report(layout)
    progress = progress or (lambda done, total: None)
    aliases = AliasTables.load()
    reject_file = rejects_path.open("w", encoding="utf-8", newline="") if rejects_path else None
    reject_writer = csv.writer(reject_file) if reject_file else None
    if reject_writer:
        reject_writer.writerow(["line", "reason", *layout.header])

    def reject(line: _Line, reason: str) -> None:
        counts.rejected += 1
        if reject_writer:
            raw = [cell.encode("utf-8", "replace").decode("utf-8") for cell in line.raw]
            reject_writer.writerow([line.number, reason, *raw])

    def flush(batch: list[_Line]) -> None:
        if not batch:
            return
        valid = [line for line in batch if line.item is not None]
        outcome = contacts_upsert_bulk(
            items=[line.item for line in valid],
            source=source,
            default_timezone=default_timezone,
        )
        results = {id(line): result for line, result in zip(valid, outcome.results, strict=True)}
        for line in batch:  # in line order, so the reject file reads top to bottom
            result = results.get(id(line))
            if result is None:
                reject(line, line.error)
            elif result.status == "rejected":
                reject(line, "; ".join(f"{k}: {v}" for k, v in result.errors.items()))
            elif result.status == "created":
                counts.created += 1
            elif result.status == "updated":
                counts.updated += 1
            else:
                counts.duplicates += 1
        counts.lines = batch[-1].number - 1
        progress(min(counts.lines, total), total)

    targets = [layout.column_map.get(column, IGNORE) for column in layout.header]
    decimal_comma = layout.delimiter != ","
    zone = zone_or_none(default_timezone or settings.CIBLE_INGEST_DEFAULT_TIMEZONE)

    def flush_events(chunk: _EventChunk) -> None:
        """Events: the chunk's cells as columns, cleaned and stored vectorised."""
        numbers, cells = chunk.columns(width=len(layout.header))
        if len(numbers):
            columns: dict[str, np.ndarray] = {}
            properties: dict[str, np.ndarray] = {}
            for target, values in zip(targets, cells, strict=True):
                if not target:
                    continue
                into, name = (
                    (properties, target.removeprefix("properties."))
                    if target.startswith("properties.")
                    else (columns, target)
                )
                if name in into:  # two columns mapped to one target: the later non-empty wins
                    values = np.where(values != "", values, into[name])
                into[name] = values

            def item_at(i: int) -> dict[str, Any]:
                return _item([c[i] for c in cells], targets, "properties", True, decimal_comma)

            now = timezone.now()
            cleaned = events_clean_columns(
                columns=columns,
                n=len(numbers),
                item_at=item_at,
                eligible=np.ones(len(numbers), dtype=bool),
                now=now,
                aliases=aliases,
                default_zone=zone,
                csv_properties=properties,
                decimal_comma=decimal_comma,
            )
            if store.pool is not None:  # done here while the writer stores the last chunk
                events_resolve_contacts(
                    batch=cleaned,
                    create_unknown=settings.CIBLE_INGEST_CREATE_UNKNOWN_CONTACTS,
                    now=now,
                )
                events_prepare_rows(batch=cleaned, source=source, now=now)
            stored = store.submit(
                events_store_clean,
                batch=cleaned,
                source=source,
                now=now,
                create_unknown=settings.CIBLE_INGEST_CREATE_UNKNOWN_CONTACTS,
                send_signal=False,  # sent below, by this thread, once the chunk is committed
            )
        else:
            stored = None
        # The previous chunk was being stored while this one was read and cleaned.
        finish_pending()
        pending.append((chunk, numbers, cells, stored))

    def finish_pending() -> None:
        if not pending:
            return
        chunk, numbers, cells, stored = pending.pop()
        rejects = [(line.number, line.raw, line.error) for line in chunk.broken]
        if stored is not None:
            outcome = stored.result()
            # After the chunk's commit (the writer's own connection); inside a caller's
            # transaction (inline path), after that transaction commits.
            transaction.on_commit(lambda: events_ingested_send(outcome, source=source))
            statuses = outcome.status
            counts.created += int((statuses == "created").sum())
            counts.duplicates += int((statuses == "duplicate").sum())
            for i in np.flatnonzero(statuses == "rejected"):
                errors = outcome.errors[i]
                reason = "; ".join(f"{k}: {v}" for k, v in errors.items())
                rejects.append((int(numbers[i]), [str(c[i]) for c in cells], reason))
        rejects.sort(key=lambda reject: reject[0])  # the reject file reads top to bottom
        for number, raw, reason in rejects:
            reject(_Line(number, raw, None), reason)
        counts.lines = chunk.last - 1
        progress(min(counts.lines, total), total)

    pending: list[tuple[_EventChunk, np.ndarray, list[np.ndarray], Future | None]] = []
    store = _ChunkStore(background=kind == "events")
    chunk_size = chunk_size or (EVENTS_CHUNK if kind == "events" else CONTACTS_CHUNK)
    try:
        if kind == "events":
            for chunk in _event_chunks(path, layout, chunk_size=chunk_size):
                flush_events(chunk)
        else:
            batch: list[_Line] = []
            for line in _lines(path, layout, kind=kind):
                batch.append(line)
                if len(batch) >= chunk_size:
                    flush(batch)
                    batch = []
            flush(batch)
        finish_pending()
    finally:
        store.close()
        if reject_file:
            reject_file.close()
    if counts.lines != total:
        progress(total, total)
    counts.lines = total
    return counts


@dataclass
class PreviewRow:
    line: int
    raw: list[str]
    cleaned: dict[str, Any]
    errors: dict[str, str]


def csv_preview(
    *,
    kind: str,
    path: Path,
    delimiter: str = "",
    encoding: str = "",
    default_timezone: str = "",
    column_map: dict[str, str] | None = None,
    rows: int = 10,
) -> tuple[CsvLayout, list[PreviewRow]]:
    """The layout and the first ``rows`` lines as they would be normalised (no writes)."""
    layout = csv_layout(
        path, kind=kind, delimiter=delimiter, encoding=encoding, column_map=column_map
    )
    aliases = AliasTables.load()
    now = timezone.now()
    zone = zone_or_none(default_timezone)
    preview: list[PreviewRow] = []
    for line in _lines(path, layout, kind=kind):
        if len(preview) >= rows:
            break
        if line.item is None:
            preview.append(PreviewRow(line.number, line.raw, {}, {"line": line.error}))
            continue
        if kind == "events":
            cleaned = event_item_clean(
                line.item,
                index=0,
                now=now,
                aliases=aliases,
                default_zone=zone,
                default_country=settings.CIBLE_DEFAULT_COUNTRY,
            )
            if isinstance(cleaned, ItemResult):
                preview.append(
                    PreviewRow(
                        line.number, line.raw, {}, {k: str(v) for k, v in cleaned.errors.items()}
                    )
                )
            else:
                values = {
                    cleaned.identity[0]: cleaned.identity[1],
                    "type": cleaned.type,
                    "timestamp": cleaned.occurred_at.isoformat(),
                    "idempotency_key": cleaned.idempotency_key,
                    "properties": cleaned.properties,
                }
                preview.append(PreviewRow(line.number, line.raw, values, {}))
        else:
            fields, errors = contact_item_clean(
                line.item,
                now=now,
                aliases=aliases,
                default_country=settings.CIBLE_DEFAULT_COUNTRY,
                default_zone=zone,
            )
            preview.append(
                PreviewRow(line.number, line.raw, fields, {k: str(v) for k, v in errors.items()})
            )
    return layout, preview


def import_job_execute(*, job_id: int) -> None:
    """Run a stored :class:`ImportJob` (admin upload): progress and counts are written to the row
    as chunks land; the reject file is attached; a failure marks the job failed with the reason.
    Safe to re-run after a crash: nothing is stored twice."""
    from django.core.files.base import ContentFile

    from contacts.models import ImportJob

    job = ImportJob.objects.get(pk=job_id)
    if job.status == ImportJob.Status.DONE:
        return
    ImportJob.objects.filter(pk=job.pk).update(
        status=ImportJob.Status.RUNNING, started_at=timezone.now(), error=""
    )

    def progress(done: int, total: int) -> None:
        ImportJob.objects.filter(pk=job.pk).update(processed_lines=done, total_lines=total)

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        rejects = Path(tmp) / f"rejects-{job.pk}.csv"
        try:
            counts = csv_import(
                kind=job.kind,
                path=Path(job.file.path),
                source=job.source,
                delimiter=job.delimiter,
                encoding=job.encoding,
                default_timezone=job.default_timezone,
                column_map=job.column_map or None,
                rejects_path=rejects,
                progress=progress,
            )
        except (CsvImportError, OSError) as exc:
            ImportJob.objects.filter(pk=job.pk).update(
                status=ImportJob.Status.FAILED, error=str(exc), finished_at=timezone.now()
            )
            return
        job.refresh_from_db()
        if counts.rejected:
            job.rejects_file.save(rejects.name, ContentFile(rejects.read_bytes()), save=False)
        job.status = ImportJob.Status.DONE
        job.created, job.updated = counts.created, counts.updated
        job.duplicates, job.rejected = counts.duplicates, counts.rejected
        job.delimiter, job.encoding = counts.delimiter, counts.encoding
        job.total_lines = job.processed_lines = counts.lines
        job.finished_at = timezone.now()
        job.save()
