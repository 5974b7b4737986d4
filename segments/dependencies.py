"""The segment-on-segment dependency graph, effective rules of priority families, compute order.

A family segment's *effective* rule is its own rule and-not the rules of the segments above it in
the family (lower priority number, then lower id), so exclusivity needs no stored state of the
siblings. Segment conditions read the *stored* memberships of the referenced segment, so the
referenced segment is computed first (topological order); a cycle is refused at save time.
"""

from __future__ import annotations

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
