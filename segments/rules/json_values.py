"""Typed reads of a top-level key of a JSON column, identical on PostgreSQL and SQLite.

Each expression yields the key's value when it has the wanted JSON type, else SQL NULL, so a
string ``"12"`` never compares as the number 12 on one backend and not on the other. The key is
always a query parameter (and validated as an identifier upstream), never spliced into SQL.
"""

from __future__ import annotations

import re

from django.db.models import BooleanField, CharField, Expression, FloatField, Func, Value

KEY_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$")

_PG_TYPES = {"number": "number", "string": "string", "boolean": "boolean"}
_SQLITE_TYPES = {
    "number": "('integer', 'real')",
    "string": "('text')",
    "boolean": "('true', 'false')",
}


class JSONKeyValue(Func):
    """``column[key]`` as a number, string or boolean (``kind``), NULL when of another type."""

    def __init__(self, column: str | Expression, key: str, kind: str) -> None:
        if not KEY_PATTERN.match(key):
            raise ValueError(f"invalid JSON key {key!r}")
        if kind not in _PG_TYPES:
            raise ValueError(f"unknown JSON kind {kind!r}")
        self.key = key
        self.kind = kind
        output = {"number": FloatField(), "string": CharField(), "boolean": BooleanField()}[kind]
        super().__init__(column, output_field=output)

    def as_postgresql(self, compiler, connection, **extra):
        column, params = compiler.compile(self.source_expressions[0])
        cast = {"number": "::double precision", "string": "", "boolean": "::boolean"}[self.kind]
        sql = f"(CASE WHEN jsonb_typeof({column} -> %s) = %s THEN ({column} ->> %s){cast} END)"
        return sql, (*params, self.key, _PG_TYPES[self.kind], *params, self.key)

    def as_sqlite(self, compiler, connection, **extra):
        column, params = compiler.compile(self.source_expressions[0])
        path = f'$."{self.key}"'
        value = f"json_extract({column}, %s)"
        if self.kind == "boolean":
            value = f"(json_type({column}, %s) = 'true')"
        sql = f"(CASE WHEN json_type({column}, %s) IN {_SQLITE_TYPES[self.kind]} THEN {value} END)"
        return sql, (*params, path, *params, path)

    def as_sql(self, compiler, connection, **extra):  # pragma: no cover - other backends
        raise NotImplementedError(
            f"JSON key reads are implemented for PostgreSQL and SQLite, not {connection.vendor}"
        )


class JSONKeyPresent(Func):
    """True when ``column`` has ``key`` with a non-null value (never NULL itself)."""

    output_field = BooleanField()

    def __init__(self, column: str | Expression, key: str) -> None:
        if not KEY_PATTERN.match(key):
            raise ValueError(f"invalid JSON key {key!r}")
        self.key = key
        super().__init__(column, Value(key))

    def as_postgresql(self, compiler, connection, **extra):
        column, params = compiler.compile(self.source_expressions[0])
        sql = f"(coalesce(jsonb_typeof({column} -> %s), 'null') <> 'null')"
        return sql, (*params, self.key)

    def as_sqlite(self, compiler, connection, **extra):
        column, params = compiler.compile(self.source_expressions[0])
        sql = f"(coalesce(json_type({column}, %s), 'null') <> 'null')"
        return sql, (*params, f'$."{self.key}"')

    def as_sql(self, compiler, connection, **extra):  # pragma: no cover - other backends
        raise NotImplementedError(
            f"JSON key reads are implemented for PostgreSQL and SQLite, not {connection.vendor}"
        )
