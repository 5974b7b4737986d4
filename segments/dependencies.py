"""The segment-on-segment dependency graph, effective rules of priority families, compute order.

A family segment's *effective* rule is its own rule and-not the rules of the segments above it in
the family (lower priority number, then lower id), so exclusivity needs no stored state of the
siblings. Segment conditions read the *stored* memberships of the referenced segment, so the
referenced segment is computed first (topological order); a cycle is refused at save time.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _

from segments.rules import Dependencies, RuleError, rule_dependencies


@dataclass(frozen=True)
class SegmentSpec:
    """What the graph needs to know of a segment (saved or being edited)."""

    id: int
    name: str
    rule: dict
    family_id: int | None
    priority: int
    is_active: bool = True


def spec_of(segment) -> SegmentSpec:
    return SegmentSpec(
        id=segment.pk,
        name=segment.name,
        rule=segment.rule,
        family_id=segment.family_id,
        priority=segment.priority,
        is_active=segment.is_active,
    )


def higher_siblings(spec: SegmentSpec, specs: Iterable[SegmentSpec]) -> list[SegmentSpec]:
    """Active segments of the same family that take precedence over ``spec``."""
    if spec.family_id is None:
        return []
    return sorted(
        (
            s
            for s in specs
            if s.family_id == spec.family_id
            and s.id != spec.id
            and s.is_active
            and (s.priority, s.id) < (spec.priority, spec.id)
        ),
        key=lambda s: (s.priority, s.id),
    )


def effective_rule(spec: SegmentSpec, specs: Iterable[SegmentSpec]) -> dict:
    above = higher_siblings(spec, list(specs))
    if not above:
        return spec.rule
    return {"all": [spec.rule, *({"not": s.rule} for s in above)]}


def effective_dependencies(spec: SegmentSpec, specs: list[SegmentSpec]) -> Dependencies:
    return rule_dependencies(effective_rule(spec, specs))


def dependency_graph(specs: list[SegmentSpec]) -> dict[int, frozenset[int]]:
    return {s.id: effective_dependencies(s, specs).segments for s in specs}


def find_cycle(graph: dict[int, frozenset[int]]) -> list[int] | None:
    """A cycle as a list of ids (first = last), or None."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(graph, white)
    stack: list[int] = []

    def visit(node: int) -> list[int] | None:
        colour[node] = grey
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if colour.get(nxt, black) == grey:
                return stack[stack.index(nxt) :] + [nxt]
            if colour.get(nxt) == white:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        colour[node] = black
        return None

    for node in sorted(graph):
        if colour[node] == white:
            found = visit(node)
            if found:
                return found
    return None


def cycle_check(specs: list[SegmentSpec]) -> None:
    """Raise RuleError naming the segments of a dependency cycle, if any."""
    cycle = find_cycle(dependency_graph(specs))
    if cycle:
        names = {s.id: s.name for s in specs}
        path = " → ".join(names.get(i, str(i)) for i in cycle)
        raise RuleError(
            _("segments would depend on each other in a cycle: %(path)s.") % {"path": path}
        )


def compute_order(specs: list[SegmentSpec]) -> list[SegmentSpec]:
    """Active segments, each after the segments it reads (stable by id otherwise)."""
    graph = dependency_graph(specs)
    by_id = {s.id: s for s in specs}
    done: set[int] = set()
    order: list[SegmentSpec] = []

    def place(node: int, seen: frozenset[int]) -> None:
        if node in done or node in seen or node not in by_id:
            return
        for dep in sorted(graph.get(node, ())):
            place(dep, seen | {node})
        done.add(node)
        order.append(by_id[node])

    for spec in sorted(specs, key=lambda s: s.id):
        place(spec.id, frozenset())
    return [s for s in order if s.is_active]


def compute_levels(order: list[SegmentSpec], specs: list[SegmentSpec]) -> list[list[SegmentSpec]]:
    """Split a compute order into batches whose members do not read each other: a segment
    goes one batch after the last segment of ``order`` it reads."""
    level: dict[int, int] = {}
    for spec in order:
        deps = effective_dependencies(spec, specs).segments
        level[spec.id] = 1 + max((level[d] for d in deps if d in level), default=-1)
    batches: dict[int, list[SegmentSpec]] = {}
    for spec in order:
        batches.setdefault(level[spec.id], []).append(spec)
    return [batches[k] for k in sorted(batches)]


@dataclass(frozen=True)
class ReevaluationPlan:
    """What the real-time path re-evaluates: batches of ``(segment id, effective rule)`` where a
    batch only reads memberships of earlier batches (or of segments not re-evaluated)."""

    levels: tuple[tuple[tuple[int, dict], ...], ...]

    @property
    def segment_ids(self) -> list[int]:
        return sorted(sid for level in self.levels for sid, _rule in level)


_PLANS: dict[tuple, ReevaluationPlan] = {}
_PLANS_SIZE = 256


def reevaluation_plan(
    specs: list[SegmentSpec], event_types: frozenset[str] | None
) -> ReevaluationPlan:
    """The active segments that can depend on ``event_types`` (all when None), plus those
    reading them, in dependency batches with their effective rules.

    Memoised per process on the content of ``specs`` (rules, families, priorities, activity),
    the event types, the condition-type registry and the feature settings, so an edited segment
    gets a new plan at once, in every process."""
    from django.conf import settings

    from segments.rules.registry import registry_generation

    key = (
        tuple(
            (s.id, s.family_id, s.priority, s.is_active, json.dumps(s.rule, sort_keys=True))
            for s in sorted(specs, key=lambda s: s.id)
        ),
        event_types,
        registry_generation(),
        settings.CIBLE_PURCHASE_EVENT_TYPE,
        tuple(sorted(settings.SEGMENTS_ENGAGEMENT_WEIGHTS)),
    )
    plan = _PLANS.get(key)
    if plan is None:
        plan = _plan_build(specs, event_types)
        if len(_PLANS) >= _PLANS_SIZE:
            _PLANS.clear()
        _PLANS[key] = plan
    return plan


def _plan_build(specs: list[SegmentSpec], event_types: frozenset[str] | None) -> ReevaluationPlan:
    active = [s for s in specs if s.is_active]
    deps = {s.id: effective_dependencies(s, active) for s in active}
    affected = {
        s.id for s in active if event_types is None or deps[s.id].reacts_to(set(event_types))
    }
    grew = True
    while grew:
        grew = False
        for s in active:
            if s.id not in affected and deps[s.id].segments & affected:
                affected.add(s.id)
                grew = True
    level: dict[int, int] = {}
    batches: dict[int, list[tuple[int, dict]]] = {}
    for spec in compute_order(active):
        if spec.id not in affected:
            continue
        level[spec.id] = 1 + max(
            (level[d] for d in deps[spec.id].segments if d in level), default=-1
        )
        batches.setdefault(level[spec.id], []).append((spec.id, effective_rule(spec, active)))
    return ReevaluationPlan(levels=tuple(tuple(batches[k]) for k in sorted(batches)))
