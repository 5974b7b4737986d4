"""Compiled rule SQL, reused across instants and contacts (the real-time path).

Building a rule's query through the ORM costs about a millisecond per segment: more than
running it for one contact. :func:`compiled_rule` therefore turns a rule into a
:class:`CompiledRule` once: the SQL text of "contacts matching the rule among the given
contacts", each parameter classified as a constant, the compute instant shifted by a fixed
duration (``within_days`` windows, relative dates), or the contact id. Rendering it for another
``now`` and contact only adapts those parameters.

Soundness: only rules whose every leaf type is registered with ``cacheable=True`` are cached
(the compiler reads nothing but the condition, ``ctx.now`` and ``ctx.contact_ids``), and the
classification is *checked*: the rule is compiled at three probe instants centuries apart
(different weekdays, months and times of day) and three probe contact ids; a rule whose SQL text
differs between them, or with a parameter that is neither the same constant, nor the probe
instant plus one fixed duration, nor the probe contact, is not cached — callers then compile
afresh (:func:`rule_sql_for_contact` does it for them). Entries are keyed by the rule's content,
the database vendor and the registry generation, so an edited rule never meets a stale entry,
in any process; the cache is a bounded per-process memo, never a source of truth.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connection

from segments.rules.registry import condition_type, registry_generation
from segments.rules.tree import rule_compile, rule_leaves

PROBE_INSTANTS = (
    datetime(1901, 2, 3, 4, 5, 6, 789_000, tzinfo=UTC),
    datetime(2876, 11, 29, 21, 52, 43, 210_000, tzinfo=UTC),
    datetime(2411, 7, 17, 13, 31, 17, 500_000, tzinfo=UTC),
)
PROBE_CONTACTS = (-(10**15) - 1, -(10**15) - 7, -(10**15) - 13)
CACHE_SIZE = 1024

CONSTANT, INSTANT, CONTACT = "constant", "instant", "contact"


@dataclass(frozen=True)
class CompiledRule:
    """``sql`` selects the ids of the contacts matching the rule among one contact (``None``:
    the rule matches nobody); ``slots`` say how to fill each parameter."""

    sql: str | None
    slots: tuple[tuple[str, Any], ...]

    def render(self, *, now: datetime, contact_id: int) -> tuple[str | None, list]:
        if self.sql is None:
            return None, []
        adapt = connection.ops.adapt_datetimefield_value
        params = []
        for kind, value in self.slots:
            if kind == CONSTANT:
                params.append(value)
            elif kind == INSTANT:
                params.append(adapt(now + value))
            else:
                params.append(contact_id)
        return self.sql, params


_CACHE: OrderedDict[tuple, CompiledRule | None] = OrderedDict()
_LOCK = threading.Lock()


def _match_sql(rule: dict, *, now: datetime, contact_id: int) -> tuple[str | None, tuple]:
    from contacts.models import Contact

    q = rule_compile(rule, now=now, contact_ids=(contact_id,))
    query = Contact.objects.filter(q).filter(pk=contact_id).order_by().values("pk").query
    try:
        return query.sql_with_params()
    except EmptyResultSet:
        return None, ()


def _as_instant(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _slot(values: list[Any], adapt: Callable[[datetime], Any]) -> tuple[str, Any] | None:
    first = values[0]
    if all(type(v) is type(first) and v == first for v in values):
        return CONSTANT, first
    if all(type(v) is int and v == c for v, c in zip(values, PROBE_CONTACTS, strict=True)):
        return CONTACT, None
    moment = _as_instant(first)
    if moment is None:
        return None
    offset: timedelta = moment - PROBE_INSTANTS[0]
    if all(
        type(v) is type(first) and v == adapt(probe + offset)
        for v, probe in zip(values, PROBE_INSTANTS, strict=True)
    ):
        return INSTANT, offset
    return None


def _build(rule: dict) -> CompiledRule | None:
    compiled = [
        _match_sql(rule, now=now, contact_id=contact)
        for now, contact in zip(PROBE_INSTANTS, PROBE_CONTACTS, strict=True)
    ]
    texts = {sql for sql, _params in compiled}
    if len(texts) != 1:
        return None
    sql = compiled[0][0]
    if sql is None:
        return CompiledRule(sql=None, slots=())
    if len({len(params) for _sql, params in compiled}) != 1:
        return None
    adapt = connection.ops.adapt_datetimefield_value
    slots = []
    for values in zip(*(params for _sql, params in compiled), strict=True):
        slot = _slot(list(values), adapt)
        if slot is None:
            return None
        slots.append(slot)
    return CompiledRule(sql=sql, slots=tuple(slots))


def rule_is_cacheable(rule: dict) -> bool:
    for leaf, _path in rule_leaves(rule):
        ctype = condition_type(leaf["type"])
        if ctype is None or not ctype.cacheable:
            return False
    return True


def compiled_rule(rule: dict) -> CompiledRule | None:
    """The reusable compilation of a *validated* rule, or None when it cannot be reused
    (a leaf type that is not cacheable, or parameters that fail the probe check)."""
    key = (
        connection.vendor,
        registry_generation(),
        json.dumps(rule, sort_keys=True, separators=(",", ":")),
    )
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    built = _build(rule) if rule_is_cacheable(rule) else None
    with _LOCK:
        _CACHE[key] = built
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return built


def rule_sql_for_contact(rule: dict, *, now: datetime, contact_id: int) -> tuple[str | None, list]:
    """SQL and parameters selecting ``contact_id`` when it matches the validated ``rule`` at
    ``now`` (no row otherwise); ``(None, [])`` when the rule matches nobody. Reuses the compiled
    form when there is one, compiles afresh otherwise — both give the same rows."""
    compiled = compiled_rule(rule)
    if compiled is not None:
        return compiled.render(now=now, contact_id=contact_id)
    sql, params = _match_sql(rule, now=now, contact_id=contact_id)
    return sql, list(params)


def compiled_rules_clear() -> None:
    """Forget every compiled rule of this process (tests)."""
    with _LOCK:
        _CACHE.clear()
