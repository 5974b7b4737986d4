"""Rule trees: groups (``all`` / ``any`` / ``not``) over registered leaf conditions.

A rule is a JSON object, either a group ``{"all": [...]}``, ``{"any": [...]}``, ``{"not": node}``
or a leaf ``{"type": "<registered type>", ...}``. An empty ``all`` matches every contact, an
empty ``any`` none. The functions here walk the tree and delegate leaves to the registry.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from django.db.models import Q
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from segments.rules.registry import (
    NO_DEPENDENCIES,
    CompileContext,
    Dependencies,
    ReferenceContact,
    RuleError,
    ValidationContext,
    condition_type,
    condition_types,
)

if TYPE_CHECKING:
    from segments.rules.shared_events import SharedEventScan

MAX_DEPTH = 8
MAX_LEAVES = 100
# Bounds on the raw JSON, checked before anything else reads it: values of every kind counted
# (so a 100,000-item list is refused whatever condition holds it) and nesting of lists/objects.
MAX_RULE_VALUES = 10_000
MAX_JSON_NESTING = 40
GROUP_KEYS = ("all", "any", "not")
# An explicit "every contact" (an empty Q would stay empty when negated).
MATCH_ALL = Q(pk__isnull=False)


def _child_path(path: str, key: str, index: int | None = None) -> str:
    step = key if index is None else f"{key}[{index}]"
    return step if path == "root" else f"{path}.{step}"


def rule_size_check(rule: object) -> None:
    """Refuse a rule whose JSON is too large or too deeply nested (no recursion: any input)."""
    count = 0
    stack: list[tuple[object, int]] = [(rule, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_RULE_VALUES:
            raise RuleError(
                _("a rule holds at most %(n)s values (lists included); this one holds more.")
                % {"n": f"{MAX_RULE_VALUES:,}".replace(",", " ")}
            )
        if isinstance(node, dict | list):
            if depth > MAX_JSON_NESTING:
                raise RuleError(
                    _("the rule's JSON is nested more than %(n)d levels deep.")
                    % {"n": MAX_JSON_NESTING}
                )
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)


def rule_validate(rule: object, *, segment_id: int | None = None) -> dict:
    """Return the normalised rule tree, or raise RuleError naming the faulty condition.

    Sizes are bounded (``rule_size_check``, ``MAX_DEPTH`` groups, ``MAX_LEAVES`` conditions)
    and every value is range-checked, so a rule that validates also compiles and runs."""
    rule_size_check(rule)
    leaves = [0]

    def walk(node: object, path: str, depth: int) -> dict:
        if depth > MAX_DEPTH:
            raise RuleError(
                _("groups are nested more than %(n)d levels deep.") % {"n": MAX_DEPTH}, path=path
            )
        if not isinstance(node, dict):
            raise RuleError(_("expected a JSON object."), path=path)
        group_keys = [k for k in GROUP_KEYS if k in node]
        if group_keys:
            if len(node) != 1:
                raise RuleError(_("a group has exactly one key: “all”, “any” or “not”."), path=path)
            key = group_keys[0]
            if key == "not":
                return {"not": walk(node["not"], _child_path(path, "not"), depth + 1)}
            children = node[key]
            if not isinstance(children, list):
                raise RuleError(_("“%(key)s” must be a list.") % {"key": key}, path=path)
            return {
                key: [
                    walk(child, _child_path(path, key, i), depth + 1)
                    for i, child in enumerate(children)
                ]
            }
        type_name = node.get("type")
        if not isinstance(type_name, str) or not type_name:
            raise RuleError(
                _("a condition needs a “type” (one of: %(types)s), or use a group.")
                % {"types": ", ".join(t.name for t in condition_types())},
                path=path,
            )
        ctype = condition_type(type_name)
        if ctype is None:
            raise RuleError(
                _("unknown condition type “%(type)s” (known: %(types)s).")
                % {"type": type_name, "types": ", ".join(t.name for t in condition_types())},
                path=path,
            )
        leaves[0] += 1
        if leaves[0] > MAX_LEAVES:
            raise RuleError(_("a rule has at most %(n)d conditions.") % {"n": MAX_LEAVES})
        try:
            normalised = ctype.validator(node, ValidationContext(path=path, segment_id=segment_id))
        except TypeError:  # e.g. {"field": {}}: a name that is an object or a list
            raise RuleError(
                _(
                    "a value of this condition has the wrong type (an object or list where a "
                    "name or number is expected)."
                ),
                path=path,
            ) from None
        return {**normalised, "type": type_name}

    return walk(rule, "root", 0)


def rule_matches_everyone(rule: dict) -> bool:
    """Does the validated rule select every contact whatever the data (``{"all": []}``, a
    ``not`` of an empty ``any``…)? Leaves count as restricting."""

    def everyone(node: dict) -> bool:
        if "all" in node:
            return all(everyone(child) for child in node["all"])
        if "any" in node:
            return any(everyone(child) for child in node["any"])
        if "not" in node:
            return nobody(node["not"])
        return False

    def nobody(node: dict) -> bool:
        if "all" in node:
            return any(nobody(child) for child in node["all"])
        if "any" in node:
            return all(nobody(child) for child in node["any"])
        if "not" in node:
            return everyone(node["not"])
        return False

    return everyone(rule)


def rule_compile(
    rule: dict,
    *,
    now: datetime,
    contact_ids: tuple[int, ...] | None = None,
    shared_events: SharedEventScan | None = None,
) -> Q:
    """Compile a *validated* rule to a two-valued ``Q`` on ``contacts.Contact``.

    With ``contact_ids`` the query is only valid for those contacts (real-time re-evaluation).
    With ``shared_events`` (PostgreSQL) event conditions read the scan's temporary table, which
    must be materialised before the query runs (see ``segments.rules.shared_events``).
    """
    ctx = CompileContext(now=now, contact_ids=contact_ids, shared_events=shared_events)

    def walk(node: dict) -> Q:
        if "all" in node:
            if not node["all"]:
                return MATCH_ALL
            q = Q()
            for child in node["all"]:
                q &= walk(child)
            return q
        if "any" in node:
            if not node["any"]:
                return Q(pk__in=[])
            q = Q(pk__in=[])
            for child in node["any"]:
                q |= walk(child)
            return q
        if "not" in node:
            return ~walk(node["not"])
        return condition_type(node["type"]).compiler(node, ctx)

    return walk(rule)


def rule_evaluate_reference(rule: dict, contact: ReferenceContact, *, now: datetime) -> bool:
    """The slow Python evaluation of a validated rule for one contact (the SQL's oracle)."""
    if "all" in rule:
        return all(rule_evaluate_reference(c, contact, now=now) for c in rule["all"])
    if "any" in rule:
        return any(rule_evaluate_reference(c, contact, now=now) for c in rule["any"])
    if "not" in rule:
        return not rule_evaluate_reference(rule["not"], contact, now=now)
    return bool(condition_type(rule["type"]).reference_evaluator(rule, contact, now))


def rule_describe(rule: dict) -> str:
    """Plain-language sentence of a validated rule, in the active language."""

    def walk(node: dict, top: bool) -> str:
        if "all" in node or "any" in node:
            key = "all" if "all" in node else "any"
            children = node[key]
            if not children:
                return gettext("all contacts") if key == "all" else gettext("no contact")
            joiner = gettext(" and ") if key == "all" else gettext(" or ")
            text = joiner.join(walk(c, False) for c in children)
            return text if top or len(children) == 1 else f"({text})"
        if "not" in node:
            return gettext("not %(rule)s") % {"rule": walk(node["not"], False)}
        ctype = condition_type(node.get("type"))
        if ctype is None:  # stored before its plug-in was removed: the segment fails to compute
            return gettext("unknown condition “%(type)s”") % {"type": node.get("type")}
        return str(ctype.describer(node))

    text = walk(rule, True)
    return gettext("Contacts: %(rule)s") % {"rule": text}


def rule_dependencies(rule: dict) -> Dependencies:
    """What can change the rule's result. A stored leaf whose type is no longer registered
    (its plug-in removed) depends on anything: it fails alone when its segment is computed."""
    deps = NO_DEPENDENCIES
    for leaf, _path in rule_leaves(rule):
        ctype = condition_type(leaf.get("type"))
        deps = deps | (ctype.dependencies(leaf) if ctype else Dependencies(event_types=None))
    return deps


def rule_leaves(rule: dict, path: str = "root") -> Iterator[tuple[dict, str]]:
    for key in ("all", "any"):
        if key in rule:
            for i, child in enumerate(rule[key]):
                yield from rule_leaves(child, _child_path(path, key, i))
            return
    if "not" in rule:
        yield from rule_leaves(rule["not"], _child_path(path, "not"))
        return
    yield rule, path


@dataclass(frozen=True)
class ExplainLine:
    path: str
    depth: int
    text: str
    value: str
    passed: bool
    is_group: bool


def rule_explain(rule: dict, contact: ReferenceContact, *, now: datetime) -> list[ExplainLine]:
    """Each node of the rule with the contact's value and whether it holds, in tree order."""
    lines: list[ExplainLine] = []

    def walk(node: dict, path: str, depth: int) -> None:
        passed = rule_evaluate_reference(node, contact, now=now)
        if "all" in node or "any" in node:
            key = "all" if "all" in node else "any"
            label = gettext("All of:") if key == "all" else gettext("Any of:")
            lines.append(ExplainLine(path, depth, label, "", passed, True))
            for i, child in enumerate(node[key]):
                walk(child, _child_path(path, key, i), depth + 1)
            return
        if "not" in node:
            lines.append(ExplainLine(path, depth, gettext("Not:"), "", passed, True))
            walk(node["not"], _child_path(path, "not"), depth + 1)
            return
        ctype = condition_type(node["type"])
        value = ctype.explainer(node, contact, now) if ctype.explainer else ""
        lines.append(ExplainLine(path, depth, str(ctype.describer(node)), value, passed, False))

    walk(rule, "root", 0)
    return lines
