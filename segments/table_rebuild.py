"""Rebuilding a derived table by ``CREATE TABLE AS`` and swapping it in (PostgreSQL).

A derived table that a refresh rewrites entirely (the contact features, the ML feature
snapshot) is built fresh by one ``CREATE TABLE AS`` — which PostgreSQL runs with parallel
workers (an ``INSERT … SELECT`` never is), with no index to maintain row by row and no dead
rows left behind —, given the live table's NOT NULLs, defaults and CHECKs and its primary key
(one sort), then swapped in under the original names, in the caller's transaction. Readers of
the live table wait only for the swap, never for the build, and never see a partial table.

Only a table whose schema is exactly what the rebuild recreates qualifies
(:func:`rebuildable_schema`): one primary key on ``contact_id`` and nothing else — no other
index or constraint, no table referencing it, no grants or storage options. Callers keep a
row-by-row path for any other schema. Identifiers are fixed by the callers or read from the
catalog; values are parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class RebuildableSchema:
    table: str
    primary_key: str  # constraint name
    columns: tuple[str, ...]  # in the live table's order
    column_types: dict[str, str]  # name → format_type(), e.g. "integer", "character varying(8)"
    not_null: tuple[str, ...]
    defaults: tuple[tuple[str, str], ...]  # (column, expression)
    checks: tuple[tuple[str, str], ...]  # (constraint name, definition)


def rebuildable_schema(cursor, *, table: str, columns: Sequence[str]) -> RebuildableSchema | None:
    """The schema of ``table`` when the rebuild can recreate it exactly: its only index is the
    primary key on ``contact_id``, no other constraint but CHECKs, no table references it, no
    grants or storage options, and its columns are exactly ``columns`` (any order). None
    otherwise."""
    cursor.execute(
        """
        SELECT
            (SELECT count(*) FROM pg_index WHERE indrelid = t.oid),
            (SELECT count(*) FROM pg_constraint WHERE confrelid = t.oid),
            t.relacl IS NULL AND t.reloptions IS NULL AND t.relkind = 'r',
            (SELECT conname FROM pg_constraint WHERE conrelid = t.oid AND contype = 'p'),
            (SELECT count(*) FROM pg_constraint
             WHERE conrelid = t.oid AND contype NOT IN ('p', 'c')),
            (SELECT array_agg(a.attname::text) FROM pg_constraint p
             JOIN pg_attribute a ON a.attrelid = p.conrelid AND a.attnum = ANY(p.conkey)
             WHERE p.conrelid = t.oid AND p.contype = 'p')
        FROM pg_class t WHERE t.oid = %s::regclass
        """,
        [table],
    )
    indexes, referenced_by, plain, pk, others, pk_columns = cursor.fetchone()
    if indexes != 1 or referenced_by or not plain or pk is None or others:
        return None
    if pk_columns != ["contact_id"]:
        return None
    cursor.execute(
        """
        SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_get_expr(d.adbin, d.adrelid)
        FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum
        """,
        [table],
    )
    attributes = cursor.fetchall()
    names = [name for name, *_ in attributes]
    if sorted(names) != sorted(columns) or len(names) != len(set(columns)):
        return None  # a column the refresh does not fill: keep the row-by-row path
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype = 'c' ORDER BY conname",
        [table],
    )
    checks = tuple(cursor.fetchall())
    return RebuildableSchema(
        table=table,
        primary_key=pk,
        columns=tuple(names),
        column_types={name: kind for name, kind, *_ in attributes},
        not_null=tuple(
            name for name, _, not_null, _ in attributes if not_null and name != "contact_id"
        ),
        defaults=tuple(
            (name, default) for name, _, _, default in attributes if default is not None
        ),
        checks=checks,
    )


def table_rebuild(
    cursor,
    *,
    schema: RebuildableSchema,
    select_sql: str,
    select_columns: Sequence[str],
    params: dict[str, object] | Sequence[object],
    before_swap=None,
) -> int:
    """Replace ``schema.table`` by the rows of ``select_sql`` (whose output columns are
    ``select_columns``, in order), cast to the live table's column types; returns the rows
    written. ``before_swap(cursor, new_table)`` runs after the new table is built and keyed,
    while the live one still holds the old rows (e.g. to count what disappears)."""
    table = schema.table
    rebuild = f"{table}_rebuild"
    cursor.execute(f"DROP TABLE IF EXISTS {rebuild}")
    casts = ", ".join(
        f'x."{name}"::{schema.column_types[name]} AS "{name}"' for name in schema.columns
    )
    aliases = ", ".join(f'"{name}"' for name in select_columns)
    cursor.execute(
        f"CREATE TABLE {rebuild} AS SELECT {casts} FROM ({select_sql}) x({aliases})",  # noqa: S608
        params,
    )
    written = cursor.rowcount
    temporary_pk = f"{rebuild}_pkey"
    # One ALTER: one pass checks the NOT NULLs and CHECKs, one sort builds the primary key.
    alterations = [f'ALTER COLUMN "{name}" SET NOT NULL' for name in schema.not_null]
    alterations += [f'ALTER COLUMN "{n}" SET DEFAULT {d}' for n, d in schema.defaults]
    alterations += [f'ADD CONSTRAINT "{n}" {d}' for n, d in schema.checks]
    alterations.append(f"ADD CONSTRAINT {temporary_pk} PRIMARY KEY (contact_id)")
    cursor.execute(f"ALTER TABLE {rebuild} {', '.join(alterations)}")
    if before_swap is not None:
        before_swap(cursor, rebuild)
    # No foreign key on or to the table (checked), so no deferred check can be pending.
    cursor.execute(f"DROP TABLE {table}")
    cursor.execute(f"ALTER TABLE {rebuild} RENAME TO {table}")
    cursor.execute(
        f'ALTER TABLE {table} RENAME CONSTRAINT {temporary_pk} TO "{schema.primary_key}"'
    )
    cursor.execute(f"ANALYZE {table}")
    return written
