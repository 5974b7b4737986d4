"""PostgreSQL binary ``COPY`` straight to and from numpy, for the millions of rows of the ML
feature snapshot and assignments and of the scores (segments.ml, segments.scoring).

Both directions use fixed-width rows (every field present, ``NaN`` standing for a missing
float), so a whole block of rows is one ``numpy`` structured array: no Python object per row
and no text parsing or formatting. Format: https://www.postgresql.org/docs/current/sql-copy.html
(binary format: 19-byte header, then per row an int16 field count and, per field, an int32
length and the big-endian value; an int16 −1 ends the stream).
"""

from __future__ import annotations

import io

import numpy as np

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
BLOCK_ROWS = 100_000


def _row_dtype(fields: list[tuple[str, str]]) -> np.dtype:
    """``fields`` = [(name, big-endian numpy type)] → the dtype of one binary COPY row."""
    layout: list[tuple[str, str]] = [("count", ">i2")]
    for name, kind in fields:
        layout += [(f"{name}__len", ">i4"), (name, kind)]
    return np.dtype(layout)


def copy_out_float_matrix(
    cursor, select_sql: str, n_columns: int, params: list | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Run ``COPY (select_sql) TO STDOUT (FORMAT binary)`` (with ``params``) and return
    ``(ids, values)``.

    ``select_sql`` must yield one ``bigint`` id then ``n_columns`` non-NULL ``float8`` columns
    (write ``coalesce(col, 'NaN')`` for nullable ones); built only from fixed identifiers.
    Returns int64 ids and a C-contiguous float64 ``(rows, n_columns)`` matrix, in the query's
    order. ``cursor`` is a psycopg 3 cursor.
    """
    dtype = _row_dtype([("id", ">i8")] + [(f"c{j}", ">f8") for j in range(n_columns)])
    block_bytes = BLOCK_ROWS * dtype.itemsize
    blocks: list[np.ndarray] = []
    buffer = io.BytesIO()  # each row arrives as its own message: copied here, freed at once
    sql = f"COPY ({select_sql}) TO STDOUT (FORMAT binary)"
    with cursor.copy(sql, params) as copy:
        for data in copy:
            buffer.write(data)
            if buffer.tell() >= block_bytes + len(HEADER):
                pending = _strip_header(buffer.getvalue(), first=not blocks)
                whole = len(pending) // dtype.itemsize * dtype.itemsize
                blocks.append(_decode(pending[:whole], dtype, n_columns))
                buffer = io.BytesIO()
                buffer.write(pending[whole:])
    pending = _strip_header(buffer.getvalue(), first=not blocks)
    if pending.endswith(TRAILER) and len(pending) % dtype.itemsize == len(TRAILER):
        pending = pending[: -len(TRAILER)]
    if len(pending) % dtype.itemsize:
        raise ValueError("truncated PostgreSQL binary COPY stream")
    if pending:
        blocks.append(_decode(pending, dtype, n_columns))
    if not blocks:
        return np.zeros(0, np.int64), np.zeros((0, n_columns))
    ids = np.concatenate([b[0] for b in blocks])
    values = np.concatenate([b[1] for b in blocks]) if len(blocks) > 1 else blocks[0][1]
    return ids, np.ascontiguousarray(values)


def _strip_header(data: bytes, *, first: bool) -> bytes:
    if not first:
        return data
    if data[:11] != HEADER[:11]:
        raise ValueError("not a PostgreSQL binary COPY stream")
    extension = int.from_bytes(data[15:19], "big")
    return data[len(HEADER) + extension :]


def _decode(raw: bytes, dtype: np.dtype, n_columns: int) -> tuple[np.ndarray, np.ndarray]:
    rows = np.frombuffer(raw, dtype=dtype)  # a view: ``raw`` stays alive through ``rows``
    if (rows["count"] != n_columns + 1).any() or (rows["id__len"] != 8).any():
        raise ValueError("unexpected row layout in binary COPY stream (NULL or wrong type)")
    values = np.empty((len(rows), n_columns), dtype=np.float64)
    for j in range(n_columns):
        if (rows[f"c{j}__len"] != 8).any():
            raise ValueError("unexpected row layout in binary COPY stream (NULL or wrong type)")
        values[:, j] = rows[f"c{j}"]
    return rows["id"].astype(np.int64), values


def copy_in_rows(cursor, table_sql: str, columns: list[tuple[str, np.ndarray]]) -> int:
    """``COPY table_sql FROM STDIN (FORMAT binary)`` the equal-length fixed-width ``columns``
    (``[(numpy big-endian type, values)]``, e.g. ``(">i8", ids)`` for ``bigint``, ``(">i2", …)``
    for ``smallint``, ``(">f8", …)`` for ``float8`` — NaN travels as the float NaN), in blocks. ``table_sql`` is ``table (col, …)`` from fixed identifiers.
    Returns the number of rows written."""
    n = len(columns[0][1])
    dtype = _row_dtype([(f"c{j}", kind) for j, (kind, _values) in enumerate(columns)])
    with cursor.copy(f"COPY {table_sql} FROM STDIN (FORMAT binary)") as copy:
        copy.write(HEADER)
        for start in range(0, n, BLOCK_ROWS):
            stop = min(start + BLOCK_ROWS, n)
            block = np.empty(stop - start, dtype=dtype)
            block["count"] = len(columns)
            for j, (kind, values) in enumerate(columns):
                block[f"c{j}__len"] = np.dtype(kind).itemsize
                block[f"c{j}"] = values[start:stop]
            copy.write(block.tobytes())
        copy.write(TRAILER)
    return n
