"""Plain blocks of a CSV file read by pandas' C parser: the fast path of the events CSV import.

Contract: :func:`plain_block_rows` takes bytes that start at a record boundary and returns the
cells of its longest run of leading lines that it can vouch for: lines the careful per-line
reader (``contacts.services.csv_import._lines``) reads as exactly one record of ``width`` fields,
each field the text between two delimiters. A vouched line holds no quote character (so no
quoted field, no record spanning lines), no NUL, no lone CR, no byte the file's encoding refuses,
no UTF-8 sequence in a Windows-1252/Latin-1 file, no byte-order mark in a ``utf-8-sig`` file,
exactly ``width - 1`` delimiters, and is not blank. Every other line is left to the careful
reader, which gives it its reject reason; the caller then comes back here after it.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

# Encodings whose delimiters, quotes and line ends are the ASCII bytes (so the checks below
# may look at bytes), and that the careful reader decodes one line at a time to the same text.
_UTF8 = {"utf-8", "utf-8-sig"}
_SINGLE_BYTE = {"cp1252", "iso8859-1", "iso8859-15"}
_LONE_CR = re.compile(rb"\r(?!\n)")
_BOM = b"\xef\xbb\xbf"


@dataclass
class PlainBlock:
    """``size`` bytes (whole lines) read as ``lines`` records; ``cells``: one object array of
    strings per column."""

    size: int = 0
    lines: int = 0
    cells: list[np.ndarray] = field(default_factory=list)


def plain_block_encoding(encoding: str) -> str:
    """The codec name the fast path reads ``encoding`` as, or ``""`` when it never applies."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        return ""
    return name if name in _UTF8 | _SINGLE_BYTE else ""


def _first_offence(data: bytes, *, encoding: str, utf8_sequence: re.Pattern) -> int:
    """Byte offset of the first byte a plain line may not hold (``len(data)`` when none)."""
    end = len(data)
    for probe in (b'"', b"\x00"):
        found = data.find(probe, 0, end)
        if found >= 0:
            end = found
    if data.find(b"\r", 0, end) >= 0 and (lone := _LONE_CR.search(data, 0, end)):
        end = lone.start()
    if encoding == "utf-8-sig" and (bom := data.find(_BOM, 0, end)) >= 0:
        end = bom
    if not data[:end].isascii():
        if encoding not in _UTF8 and (mixed := utf8_sequence.search(data, 0, end)):
            end = mixed.start()
        try:
            data[:end].decode("utf-8" if encoding in _UTF8 else encoding)
        except UnicodeDecodeError as exc:
            end = exc.start
    return end


def _first_long_line(data: bytes, *, max_line: int) -> int:
    """Byte offset of the first line longer than ``max_line`` bytes with its LF."""
    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == ord("\n")) + 1
    if len(ends) == 0 or ends[-1] != len(data):
        ends = np.append(ends, len(data))
    starts = np.concatenate(([0], ends[:-1]))
    long = ends - starts > max_line
    return int(starts[np.argmax(long)]) if long.any() else len(data)


def _first_irregular_line(body: bytes, *, delimiter: bytes, width: int) -> int:
    """Byte offset of the first line of ``body`` (LF lines) that is blank or does not hold
    exactly ``width - 1`` delimiters; ``len(body)`` when none."""
    data = np.frombuffer(body, dtype=np.uint8)
    ends = np.flatnonzero(data == ord("\n"))
    if not body.endswith(b"\n"):
        ends = np.append(ends, len(body))
    starts = np.concatenate(([0], ends[:-1] + 1))
    seen = np.concatenate(([0], np.cumsum(data == delimiter[0])))
    irregular = (seen[ends] - seen[starts] != width - 1) | (ends == starts)
    return int(starts[np.argmax(irregular)]) if irregular.any() else len(body)


def _parse(body: bytes, *, delimiter: str, width: int, lines: int) -> list[np.ndarray] | None:
    """The cells of ``body`` (UTF-8, LF lines), or ``None`` when pandas does not read it as
    ``lines`` rows of ``width`` fields."""
    try:
        frame = pd.read_csv(
            io.BytesIO(body),
            sep=delimiter,
            header=None,
            dtype=object,
            na_filter=False,
            quoting=csv.QUOTE_NONE,
            skip_blank_lines=True,
            engine="c",
            encoding="utf-8",
        )
    except Exception:  # noqa: BLE001 — whatever stops the C parser, the careful reader reads the lines
        return None
    if frame.shape != (lines, width):
        return None
    return [frame.iloc[:, column].to_numpy(dtype=object) for column in range(width)]


def plain_block_rows(
    data: bytes,
    *,
    encoding: str,
    delimiter: str,
    width: int,
    utf8_sequence: re.Pattern,
    max_line: int,
) -> PlainBlock:
    """See the module docstring. ``data``: whole lines (the last one may lack its LF at the end
    of the file); ``encoding``: a name :func:`plain_block_encoding` accepted; ``utf8_sequence``:
    the pattern that marks UTF-8 text in a single-byte file; ``max_line``: the longest line
    (with its line end) the careful reader takes."""
    if width < 2 or len(delimiter) != 1 or not delimiter.isascii() or delimiter in '"\r\n':
        return PlainBlock()
    end = _first_offence(data, encoding=encoding, utf8_sequence=utf8_sequence)
    if end > max_line:
        end = min(end, _first_long_line(data, max_line=max_line))
    if end < len(data):
        end = data.rfind(b"\n", 0, end) + 1
    if end == 0:
        return PlainBlock()
    size = end
    body = data[:end]
    if b"\r" in body:
        body = body.replace(b"\r\n", b"\n")
    separator = delimiter.encode("ascii")
    for _attempt in range(2):
        lines = body.count(b"\n") + (0 if body.endswith(b"\n") else 1)
        regular = body.count(separator) == (width - 1) * lines
        text = body if encoding in _UTF8 or body.isascii() else body.decode(encoding).encode()
        cells = _parse(text, delimiter=delimiter, width=width, lines=lines) if regular else None
        if cells is not None:
            return PlainBlock(size=size, lines=lines, cells=cells)
        cut = _first_irregular_line(body, delimiter=separator, width=width)
        if cut == 0 or cut == len(body):
            return PlainBlock()
        # The same lines in the file's own bytes (CRLF kept) end where the cut falls.
        size = nth_line_end(data, body.count(b"\n", 0, cut))
        body = body[:cut]
    return PlainBlock()


def nth_line_end(data: bytes, count: int) -> int:
    """Offset just after the ``count``-th LF of ``data``."""
    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == ord("\n"))
    return int(ends[count - 1]) + 1
