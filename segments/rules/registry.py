"""The condition-type registry: every leaf of a rule tree names a registered type.

Built-in types (``field``, ``feature``, ``attribute``, ``event``, ``segment``, ``consent``) are
registered by ``segments.rules.conditions``; other apps add theirs (``cluster`` from
segments/ml, ``score`` from scoring) by calling :func:`register_condition` from their
``AppConfig.ready``, without touching this package.

Contract of the callables a type registers (``condition`` is the JSON dict of the leaf):

- ``validator(condition, ctx: ValidationContext) -> dict``: return the normalised condition or
  raise :class:`RuleError` (``ctx.error(message)`` names the faulty condition's path).
- ``compiler(condition, ctx: CompileContext) -> Q``: a ``Q`` on ``contacts.Contact`` that is
  *two-valued* (never SQL NULL), so that negation is exact. No raw SQL from user strings.
- ``describer(condition) -> str``: the plain-language sentence (translatable).
- ``reference_evaluator(condition, contact: ReferenceContact, now) -> bool``: the slow Python
  truth the property test compares the SQL against.
- ``dependencies(condition) -> Dependencies`` (optional): event types and segments whose change
  can change the result; default: none (re-evaluated by the scheduled compute only).
- ``explainer(condition, contact: ReferenceContact, now) -> str`` (optional): the contact's value
  shown by "why is this contact in this segment?".
- ``builder`` (optional): JSON-serialisable description the admin rule builder uses to render a
  form for this type (see ``segments/static/segments/rule_builder.js``); without it the builder
  offers a JSON box for the condition.
- ``cacheable`` (optional, default False): the compiler reads nothing but the condition,
  ``ctx.now`` and ``ctx.contact_ids`` (no database row, no setting), builds the same SQL text
  for every instant, and derives instants only as ``ctx.now`` ± a fixed duration. Rules made
  of such leaves are compiled once and reused by the real-time path
  (``segments.rules.compiled``); a type that reads the database at compile time (e.g. a model
  version, a purpose's legal basis) must leave it False.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class RuleError(ValueError):
    """An invalid rule tree; ``path`` locates the faulty node (e.g. ``all[1].any[0]``)."""

    def __init__(self, message: str, *, path: str = "") -> None:
        self.path = path
        self.bare_message = str(message)
        if path:
            message = _("Condition %(path)s: %(message)s") % {"path": path, "message": message}
        super().__init__(str(message))


@dataclass(frozen=True)
class Dependencies:
    """What can change a rule's result: ``event_types`` None means any event type."""

    event_types: frozenset[str] | None = frozenset()
    segments: frozenset[int] = frozenset()

    def __or__(self, other: Dependencies) -> Dependencies:
        if self.event_types is None or other.event_types is None:
            types = None
        else:
            types = self.event_types | other.event_types
        return Dependencies(event_types=types, segments=self.segments | other.segments)

    def reacts_to(self, event_types: set[str] | frozenset[str]) -> bool:
        if self.event_types is None:
            return bool(event_types)
        return bool(self.event_types & set(event_types))


NO_DEPENDENCIES = Dependencies()


@dataclass
class ValidationContext:
    path: str
    segment_id: int | None = None  # the segment being edited (None when new)

    def error(self, message: str) -> RuleError:
        return RuleError(message, path=self.path)


@dataclass(frozen=True)
class CompileContext:
    """``contact_ids``: when set, only these contacts will be looked at (real-time path); a
    compiler may restrict its subqueries to them — the result for other contacts is undefined.
    ``shared_events``: a ``segments.rules.shared_events.SharedEventScan`` when the compiled
    rules run together in one pass (event conditions then share one scan of the events)."""

    now: datetime
    contact_ids: tuple[int, ...] | None = None
    shared_events: Any = None


@dataclass
class ReferenceContact:
    """Everything the Python reference evaluator may look at for one contact."""

    contact: Any  # contacts.models.Contact
    features: Any | None  # segments.models.ContactFeatures or None
    events: list[Any]  # contacts.models.Event rows of the contact
    memberships: set[int]  # ids of segments the contact is an open member of
    extra: dict[str, Any] = field(default_factory=dict)  # cache for plug-in evaluators


@dataclass(frozen=True)
class ConditionType:
    name: str
    label: str
    compiler: Callable[[dict, CompileContext], Q]
    validator: Callable[[dict, ValidationContext], dict]
    describer: Callable[[dict], str]
    reference_evaluator: Callable[[dict, ReferenceContact, datetime], bool]
    dependencies: Callable[[dict], Dependencies] = lambda condition: NO_DEPENDENCIES
    explainer: Callable[[dict, ReferenceContact, datetime], str] | None = None
    builder: dict | None = None
    cacheable: bool = False


_REGISTRY: dict[str, ConditionType] = {}
# Bumped whenever a type is (un)registered: compiled rules keyed by it never outlive a change.
_GENERATION = [0]


def register_condition(
    type_name: str,
    compiler: Callable[[dict, CompileContext], Q],
    validator: Callable[[dict, ValidationContext], dict],
    describer: Callable[[dict], str],
    reference_evaluator: Callable[[dict, ReferenceContact, datetime], bool],
    *,
    dependencies: Callable[[dict], Dependencies] | None = None,
    explainer: Callable[[dict, ReferenceContact, datetime], str] | None = None,
    label: str | None = None,
    builder: dict | None = None,
    cacheable: bool = False,
) -> ConditionType:
    """Register (or replace) the condition type ``type_name``; returns the registered type."""
    if not type_name or not type_name.replace("_", "").isalnum():
        raise ValueError(f"condition type name must be alphanumeric/underscore: {type_name!r}")
    condition_type = ConditionType(
        name=type_name,
        label=label or type_name,
        compiler=compiler,
        validator=validator,
        describer=describer,
        reference_evaluator=reference_evaluator,
        dependencies=dependencies or (lambda condition: NO_DEPENDENCIES),
        explainer=explainer,
        builder=builder,
        cacheable=cacheable,
    )
    _REGISTRY[type_name] = condition_type
    _GENERATION[0] += 1
    return condition_type


def unregister_condition(type_name: str) -> None:
    """Remove a type (tests and plug-ins being unloaded)."""
    _REGISTRY.pop(type_name, None)
    _GENERATION[0] += 1


def registry_generation() -> int:
    """Changes whenever the set of registered types changes (cache keys use it)."""
    return _GENERATION[0]


def condition_type(type_name: str) -> ConditionType | None:
    return _REGISTRY.get(type_name)


def condition_types() -> list[ConditionType]:
    return sorted(_REGISTRY.values(), key=lambda t: t.name)
