"""One scan of the events for every event condition of a computation pass (PostgreSQL).

Compiled alone, each event condition is its own subquery over ``contacts_event`` (one index
scan and one heap pass per condition). When the segments of one dependency level are computed
together (``segments.memberships.membership_diff_level``), their event conditions register here
instead: :meth:`SharedEventScan.materialize` reads the union of their events once (the OR of
their filters, so the ``(type, occurred_at)`` index serves every window in one bitmap scan),
groups them by contact with one ``FILTER``-ed aggregate per condition, and keeps one bit per
condition in a temporary table; each condition then compiles to "contact id in the rows with
my bit set". A contact's bit is set exactly when the stand-alone subquery would list it (it has
at least one event passing the condition's filters — with a numeric property for non-count
aggregates — and the aggregate passes the predicate), so results are identical.

SQL is built from fixed identifiers and operators; values are parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import reduce
from operator import or_

from django.db.models import Count, Q
from django.db.models.expressions import RawSQL
from django.db.models.fields import BigIntegerField

MARKS_TABLE = "segments_event_marks"
MAX_CONDITIONS = 62  # one bit each in a bigint

SQL_OPS = {"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


@dataclass
class _Condition:
    where: Q  # on contacts.Event
    measure: object | None  # aggregate expression (None: "has a matching event")
    op: str | None
    value: object


@dataclass
class SharedEventScan:
    """Collects event conditions while rules are compiled, then computes them in one pass."""

    conditions: list[_Condition] = field(default_factory=list)

    def add(self, *, where: Q, measure=None, op: str | None = None, value=None) -> Q | None:
        """Register a condition: the contacts having at least one event matching ``where``
        (on ``contacts.Event``) and, with ``measure``, whose aggregate over those events
        satisfies ``op``/``value`` (``between`` and ``outside``: a ``[low, high]`` pair). Returns the ``Q``
        on ``contacts.Contact`` selecting them, or None when the pass is full (compile the
        condition on its own then)."""
        if len(self.conditions) >= MAX_CONDITIONS:
            return None
        bit = 1 << len(self.conditions)
        self.conditions.append(_Condition(where=where, measure=measure, op=op, value=value))
        return Q(
            pk__in=RawSQL(
                f"SELECT contact_id FROM {MARKS_TABLE} WHERE bits & %s <> 0",  # noqa: S608
                [bit],
                output_field=BigIntegerField(),
            )
        )

    def materialize(self, cursor) -> None:
        """Create the temporary table the registered conditions read (call before running
        the compiled rules, in the same transaction)."""
        from contacts.models import Event

        cursor.execute(f"DROP TABLE IF EXISTS {MARKS_TABLE}")
        if not self.conditions:
            cursor.execute(f"CREATE TEMP TABLE {MARKS_TABLE} (contact_id bigint, bits bigint)")
            return
        annotations = {}
        for i, cond in enumerate(self.conditions):
            annotations[f"n{i}"] = Count("id", filter=cond.where)
            if cond.measure is not None:
                annotations[f"m{i}"] = cond.measure
        inner = (
            Event.objects.order_by()
            .filter(reduce(or_, (c.where for c in self.conditions)))
            .values("contact_id")
            .annotate(**annotations)
            .values("contact_id", *annotations)
        )
        inner_sql, inner_params = inner.query.sql_with_params()
        columns = ", ".join(["contact_id", *annotations])
        parts, params = [], []
        for i, cond in enumerate(self.conditions):
            test = f"e.n{i} > 0"
            if cond.measure is not None:
                if cond.op == "between":
                    test += f" AND e.m{i} >= %s AND e.m{i} <= %s"
                    params += [cond.value[0], cond.value[1]]
                elif cond.op == "outside":
                    test += f" AND (e.m{i} < %s OR e.m{i} > %s)"
                    params += [cond.value[0], cond.value[1]]
                else:
                    test += f" AND e.m{i} {SQL_OPS[cond.op]} %s"
                    params.append(cond.value)
            parts.append(f"(CASE WHEN {test} THEN {1 << i} ELSE 0 END)::bigint")
        bits = " | ".join(parts)
        cursor.execute(
            f"CREATE TEMP TABLE {MARKS_TABLE} AS "  # noqa: S608
            f"SELECT contact_id, bits FROM (SELECT e.contact_id, {bits} AS bits "
            f"FROM ({inner_sql}) AS e ({columns})) AS b WHERE bits <> 0",
            [*params, *inner_params],  # the bit tests come first in the text
        )
        cursor.execute(f"ANALYZE {MARKS_TABLE}")

    def drop(self, cursor) -> None:
        cursor.execute(f"DROP TABLE IF EXISTS {MARKS_TABLE}")
