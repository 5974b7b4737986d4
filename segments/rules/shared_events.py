"""One scan of the events for every event condition of a computation pass (PostgreSQL).

Compiled alone, each event condition is its own subquery over ``contacts_event`` (one index
scan and one heap pass per condition). When the segments of one dependency level are computed
together (``segments.memberships.membership_diff_level``), their event conditions register here
instead: :meth:`SharedEventScan.materialize` reads the union of the events of the conditions
that need event properties once (the OR of their filters, so the ``(type, occurred_at)`` index
serves every window in one bitmap scan), groups them by contact with one ``FILTER``-ed aggregate
per condition, answers each plain count of one type in a window from that index alone (it
includes ``contact_id``: an index-only scan, no heap page), and keeps one bit per condition in a
temporary table; each condition then compiles to "contact id in the rows with my bit set". A contact's bit is set exactly when the stand-alone subquery would list it (it has
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
    # Reads no event column but type, occurred_at and contact_id (a count, no property
    # filter): served by an index-only scan of ``event_type_by_time``, apart from the heap pass.
    index_only: bool = False


@dataclass
class SharedEventScan:
    """Collects event conditions while rules are compiled, then computes them in one pass."""

    conditions: list[_Condition] = field(default_factory=list)

    def add(
        self,
        *,
        where: Q,
        measure=None,
        op: str | None = None,
        value=None,
        index_only: bool = False,
    ) -> Q | None:
        """Register a condition: the contacts having at least one event matching ``where``
        (on ``contacts.Event``) and, with ``measure``, whose aggregate over those events
        satisfies ``op``/``value`` (``between`` and ``outside``: a ``[low, high]`` pair).
        ``index_only``: ``where`` reads only the event's type, time and contact and
        ``measure`` is None or the count of those events (then it is counted as ``count(*)``
        from the index alone). Returns the ``Q`` on ``contacts.Contact`` selecting them, or
        None when the pass is full (compile the condition on its own then)."""
        if len(self.conditions) >= MAX_CONDITIONS:
            return None
        bit = 1 << len(self.conditions)
        self.conditions.append(
            _Condition(where=where, measure=measure, op=op, value=value, index_only=index_only)
        )
        return Q(
            pk__in=RawSQL(
                f"SELECT contact_id FROM {MARKS_TABLE} WHERE bits & %s <> 0",  # noqa: S608
                [bit],
                output_field=BigIntegerField(),
            )
        )

    def materialize(self, cursor) -> None:
        """Create the temporary table the registered conditions read (call before running
        the compiled rules, in the same transaction).

        Conditions reading event properties share one pass over the heap (the OR of their
        filters, one ``FILTER``-ed aggregate each). A count of events of one type in a window
        (``index_only``) is read from the ``(type, occurred_at) INCLUDE (contact_id)`` index
        alone: its own range of the index, no heap page — the events of a window are spread
        over the whole table when it is stored in contact order, so the heap pass costs one
        random page read per event where the index range is read in order. A contact may
        have a row per part; the compiled conditions ask whether any row has their bit."""
        cursor.execute(f"DROP TABLE IF EXISTS {MARKS_TABLE}")
        heap = [(i, c) for i, c in enumerate(self.conditions) if not c.index_only]
        if heap:
            # Its own statement, so the heap pass keeps its parallel workers (under a
            # Parallel Append it would be one worker's job while the others read the indexes).
            sql, params = self._heap_pass(heap)
            cursor.execute(f"CREATE TEMP TABLE {MARKS_TABLE} AS {sql}", params)  # noqa: S608
        else:
            cursor.execute(f"CREATE TEMP TABLE {MARKS_TABLE} (contact_id bigint, bits bigint)")
        # A contact may have one row per part: readers test "some row has my bit".
        for i, cond in enumerate(self.conditions):
            if cond.index_only:
                sql, params = self._index_pass(i, cond)
                cursor.execute(f"INSERT INTO {MARKS_TABLE} (contact_id, bits) {sql}", params)  # noqa: S608
        cursor.execute(f"ANALYZE {MARKS_TABLE}")

    @staticmethod
    def _test(cond: _Condition, column: str) -> tuple[str, list[object]]:
        """SQL comparing ``column`` (the condition's measure) with its operand."""
        if cond.op == "between":
            return f"{column} >= %s AND {column} <= %s", [cond.value[0], cond.value[1]]
        if cond.op == "outside":
            return f"({column} < %s OR {column} > %s)", [cond.value[0], cond.value[1]]
        return f"{column} {SQL_OPS[cond.op]} %s", [cond.value]

    def _heap_pass(self, heap: list[tuple[int, _Condition]]) -> tuple[str, list[object]]:
        """One scan of the events matching any of ``heap``'s filters; (contact_id, bits)."""
        from contacts.models import Event

        annotations = {}
        for i, cond in heap:
            annotations[f"n{i}"] = Count("id", filter=cond.where)
            if cond.measure is not None:
                annotations[f"m{i}"] = cond.measure
        inner = (
            Event.objects.order_by()
            .filter(reduce(or_, (c.where for _i, c in heap)))
            .values("contact_id")
            .annotate(**annotations)
            .values("contact_id", *annotations)
        )
        inner_sql, inner_params = inner.query.sql_with_params()
        columns = ", ".join(["contact_id", *annotations])
        tests, params = [], []
        for i, cond in heap:
            test = f"e.n{i} > 0"
            if cond.measure is not None:
                sql, values = self._test(cond, f"e.m{i}")
                test += f" AND {sql}"
                params += values
            tests.append(f"(CASE WHEN {test} THEN {1 << i} ELSE 0 END)::bigint")
        bits = " | ".join(tests)
        sql = (
            f"SELECT contact_id, bits FROM (SELECT e.contact_id, {bits} AS bits "  # noqa: S608
            f"FROM ({inner_sql}) AS e ({columns})) AS b WHERE bits <> 0"
        )
        return sql, [*params, *inner_params]  # the bit tests come first in the text

    def _index_pass(self, i: int, cond: _Condition) -> tuple[str, list[object]]:
        """The contacts passing an ``index_only`` condition, with its bit; (contact_id, bits)."""
        from contacts.models import Event

        counted = (
            Event.objects.order_by()
            .filter(cond.where)
            .values("contact_id")
            .annotate(n=Count("*"))
            .values("contact_id", "n")
        )
        inner_sql, inner_params = counted.query.sql_with_params()
        test, params = ("TRUE", []) if cond.measure is None else self._test(cond, "c.n")
        sql = (
            f"SELECT c.contact_id, {1 << i}::bigint FROM ({inner_sql}) AS c (contact_id, n) "  # noqa: S608
            f"WHERE {test}"
        )
        return sql, [*inner_params, *params]

    def drop(self, cursor) -> None:
        cursor.execute(f"DROP TABLE IF EXISTS {MARKS_TABLE}")
