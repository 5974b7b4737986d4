"""``INSERT … SELECT … ON CONFLICT DO NOTHING`` compiled by the ORM (SQLite and PostgreSQL).

Identifiers come from model metadata only; values travel as query parameters. Used to write
enrollments and workflow outbox rows in one statement, with the unique constraints of those
tables deciding what is a duplicate (so a repeated sweep or trigger inserts nothing twice).
"""

from __future__ import annotations

import uuid

from django.db import connection
from django.db.models import Model, QuerySet


def insert_select(
    model: type[Model], columns: dict, queryset: QuerySet, *, conflict_target: str = ""
) -> int:
    """Insert one row of ``model`` per row of ``queryset``; ``columns`` maps field names of
    ``model`` to expressions over ``queryset``'s model. Rows that would break a unique
    constraint are skipped — only that of ``conflict_target`` (SQL: the columns and, for a
    partial unique index, its ``WHERE``; fixed text) when given, which spares PostgreSQL a
    pre-check of every other unique index per row. Returns how many rows were inserted."""
    aliases = {f"ins_{name}": expr for name, expr in columns.items()}
    select = queryset.annotate(**aliases).order_by().values_list(*aliases)
    sql, params = select.query.sql_with_params()
    meta = model._meta
    quote = connection.ops.quote_name
    names = ", ".join(quote(meta.get_field(name).column) for name in columns)
    source = quote(f"journeys_src_{uuid.uuid4().hex[:16]}")
    with connection.cursor() as cursor:
        # The rows are computed into a temporary table first: the SELECT (and its subqueries
        # reading the target table) sees the table as it was, and PostgreSQL cannot pick a plan
        # that rescans the rows this statement is inserting, once per row (quadratic). The
        # WHERE lets SQLite parse ON CONFLICT after a SELECT.
        cursor.execute(f"CREATE TEMPORARY TABLE {source} AS {sql}", params)
        try:
            cursor.execute(
                f"INSERT INTO {quote(meta.db_table)} ({names}) "  # noqa: S608 (identifiers from metadata)
                f"SELECT * FROM {source} WHERE 1 = 1 ON CONFLICT {conflict_target} DO NOTHING"
            )
            return max(cursor.rowcount, 0)
        finally:
            cursor.execute(f"DROP TABLE {source}")
