"""Built-in condition types: field, feature, attribute, event, segment (and consent when the
consent app exposes ``contactable``). Each compiles to a two-valued ``Q`` on Contact."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db.models import Avg, Count, Exists, Max, Min, OuterRef, Q, Sum, Value
from django.db.models.functions import Coalesce
from django.db.models.lookups import IsNull
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from segments.rules.json_values import KEY_PATTERN, JSONKeyPresent, JSONKeyValue
from segments.rules.operators import (
    NO_VALUE_OPS,
    OPERATORS,
    column_q,
    expression_q,
    moment_validate,
    operand_describe,
    operand_validate,
    parse_moment,
    python_compare,
)
from segments.rules.registry import (
    CompileContext,
    Dependencies,
    ReferenceContact,
    ValidationContext,
    register_condition,
)

# --- contact fields --------------------------------------------------------------------------

CONTACT_FIELDS: dict[str, tuple[str, Any]] = {
    "external_id": ("string", _("external ID")),
    "email": ("string", _("email")),
    "phone": ("string", _("phone")),
    "first_name": ("string", _("first name")),
    "last_name": ("string", _("last name")),
    "locale": ("string", _("locale")),
    "timezone": ("string", _("time zone")),
    "country": ("string", _("country")),
    "city": ("string", _("city")),
    "birth_year": ("number", _("birth year")),
    "created_at": ("datetime", _("sign-up date")),
    "is_anonymous": ("boolean", _("anonymous profile")),
}

FEATURES: dict[str, tuple[str, Any]] = {
    "recency_days": ("number", _("days since last purchase")),
    "frequency_90d": ("number", _("purchases in the last 90 days")),
    "frequency_365d": ("number", _("purchases in the last 365 days")),
    "monetary_total": ("number", _("total spent")),
    "avg_basket": ("number", _("average basket")),
    "mean_interpurchase_days": ("number", _("mean days between purchases")),
    "engagement_score": ("number", _("engagement score")),
    "last_activity_at": ("datetime", _("last activity")),
    "preferred_channel": ("string", _("preferred channel")),
    "days_since_signup": ("number", _("days since sign-up")),
}

# Whole-number columns (compared without a cast, see ``column_q``).
INTEGER_FIELDS = frozenset({"birth_year"})
INTEGER_FEATURES = frozenset(
    {"recency_days", "frequency_90d", "frequency_365d", "days_since_signup"}
)


def _leaf_op_value(condition: dict, kind: str, ctx: ValidationContext) -> dict:
    op = condition.get("op")
    value = operand_validate(kind, op, condition.get("value"), ctx)
    out: dict[str, Any] = {"op": op}
    if op not in NO_VALUE_OPS:
        out["value"] = value
    return out


def _field_validate(condition: dict, ctx: ValidationContext) -> dict:
    name = condition.get("field")
    if name not in CONTACT_FIELDS:
        raise ctx.error(
            _("unknown field “%(field)s” (known: %(known)s).")
            % {"field": name, "known": ", ".join(CONTACT_FIELDS)}
        )
    return {"field": name, **_leaf_op_value(condition, CONTACT_FIELDS[name][0], ctx)}


def _field_compile(condition: dict, ctx: CompileContext) -> Q:
    name = condition["field"]
    return column_q(
        name,
        CONTACT_FIELDS[name][0],
        condition["op"],
        condition.get("value"),
        ctx.now,
        integer=name in INTEGER_FIELDS,
    )


def _field_evaluate(condition: dict, contact: ReferenceContact, now: datetime) -> bool:
    kind = CONTACT_FIELDS[condition["field"]][0]
    actual = getattr(contact.contact, condition["field"])
    return python_compare(actual, kind, condition["op"], condition.get("value"), now)


def _field_describe(condition: dict) -> str:
    label = CONTACT_FIELDS[condition["field"]][1]
    return f"{label} {operand_describe(condition['op'], condition.get('value'))}"


def _field_explain(condition: dict, contact: ReferenceContact, now: datetime) -> str:
    return _shown(getattr(contact.contact, condition["field"]))


def _shown(value: Any) -> str:
    if value is None or value == "":
        return gettext("(not set)")
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


# --- features --------------------------------------------------------------------------------


def _feature_validate(condition: dict, ctx: ValidationContext) -> dict:
    name = condition.get("feature")
    if name not in FEATURES:
        raise ctx.error(
            _("unknown feature “%(feature)s” (known: %(known)s).")
            % {"feature": name, "known": ", ".join(FEATURES)}
        )
    return {"feature": name, **_leaf_op_value(condition, FEATURES[name][0], ctx)}


def _feature_compile(condition: dict, ctx: CompileContext) -> Q:
    """Features are read through the contact's one-to-one join: every feature condition of a
    rule shares one join (one pass over the feature table), and a contact without a feature row
    has NULL values, which satisfy only ``is_not_set`` (``column_q`` is two-valued)."""
    name = condition["feature"]
    return column_q(
        f"features__{name}",
        FEATURES[name][0],
        condition["op"],
        condition.get("value"),
        ctx.now,
        integer=name in INTEGER_FEATURES,
    )


def _feature_value(condition: dict, contact: ReferenceContact) -> Any:
    if contact.features is None:
        return None
    return getattr(contact.features, condition["feature"])


def _feature_evaluate(condition: dict, contact: ReferenceContact, now: datetime) -> bool:
    kind = FEATURES[condition["feature"]][0]
    return python_compare(
        _feature_value(condition, contact), kind, condition["op"], condition.get("value"), now
    )


def _feature_describe(condition: dict) -> str:
    label = FEATURES[condition["feature"]][1]
    return f"{label} {operand_describe(condition['op'], condition.get('value'))}"


def _feature_dependencies(condition: dict) -> Dependencies:
    from segments.features import feature_event_types

    return Dependencies(event_types=feature_event_types(condition["feature"]))


# --- JSON values (attributes, event properties) ----------------------------------------------


def _json_kind(op: str, value: Any) -> str:
    if op in ("gt", "gte", "lt", "lte", "between"):
        return "number"
    if op in ("is_true", "is_false"):
        return "boolean"
    probe = value[0] if isinstance(value, list) and value else value
    if isinstance(probe, bool):
        return "boolean"
    if isinstance(probe, int | float):
        return "number"
    return "string"


def _json_validate(condition: dict, key_name: str, ctx: ValidationContext) -> dict:
    key = condition.get(key_name)
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        raise ctx.error(
            _("“%(name)s” must be a key made of letters, digits, “_” or “-” (got “%(key)s”).")
            % {"name": key_name, "key": key}
        )
    op = condition.get("op")
    if op in ("is_set", "is_not_set"):
        return {key_name: key, "op": op}
    kind = _json_kind(op, condition.get("value"))
    if kind == "boolean" and op == "eq" and isinstance(condition.get("value"), bool):
        op = "is_true" if condition["value"] else "is_false"
    return {key_name: key, **_leaf_op_value({**condition, "op": op}, kind, ctx)}


def _json_q(column: str, key: str, condition: dict, now: datetime) -> Q:
    op = condition["op"]
    if op in ("is_set", "is_not_set"):
        present = Q(JSONKeyPresent(column, key))
        return present if op == "is_set" else ~present
    kind = _json_kind(op, condition.get("value"))
    return expression_q(JSONKeyValue(column, key, kind), op, condition.get("value"), now)


def _json_python(data: Any, key: str, condition: dict, now: datetime) -> bool:
    op = condition["op"]
    raw = data.get(key) if isinstance(data, dict) else None
    if op in ("is_set", "is_not_set"):
        return (raw is not None) == (op == "is_set")
    kind = _json_kind(op, condition.get("value"))
    typed = {
        "number": isinstance(raw, int | float) and not isinstance(raw, bool),
        "string": isinstance(raw, str),
        "boolean": isinstance(raw, bool),
    }[kind]
    actual = (float(raw) if kind == "number" else raw) if typed else None
    # In JSON an empty string is a value (on contact columns "" means "not set").
    return python_compare(actual, kind, op, condition.get("value"), now, empty_is_unset=False)


def _attribute_validate(condition: dict, ctx: ValidationContext) -> dict:
    return _json_validate(condition, "key", ctx)


def _attribute_compile(condition: dict, ctx: CompileContext) -> Q:
    return _json_q("attributes", condition["key"], condition, ctx.now)


def _attribute_evaluate(condition: dict, contact: ReferenceContact, now: datetime) -> bool:
    return _json_python(contact.contact.attributes, condition["key"], condition, now)


def _attribute_describe(condition: dict) -> str:
    return gettext("attribute “%(key)s” %(op)s") % {
        "key": condition["key"],
        "op": operand_describe(condition["op"], condition.get("value")),
    }


def _attribute_explain(condition: dict, contact: ReferenceContact, now: datetime) -> str:
    attributes = contact.contact.attributes or {}
    return _shown(attributes.get(condition["key"]))


# --- event aggregates ------------------------------------------------------------------------

AGGREGATES = ("count", "sum", "avg", "min", "max")
AGGREGATE_OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "between")
EVENT_TYPE_PATTERN = KEY_PATTERN


def _event_validate(condition: dict, ctx: ValidationContext) -> dict:
    event_type = condition.get("event_type")
    if not isinstance(event_type, str) or not EVENT_TYPE_PATTERN.match(event_type):
        raise ctx.error(_("“event_type” must name an event type, e.g. “purchase”."))
    out: dict[str, Any] = {"event_type": event_type}
    aggregate = condition.get("aggregate", "count")
    if aggregate not in AGGREGATES:
        raise ctx.error(
            _("unknown aggregate “%(agg)s” (use one of: %(known)s).")
            % {"agg": aggregate, "known": ", ".join(AGGREGATES)}
        )
    out["aggregate"] = aggregate
    if aggregate != "count":
        prop = condition.get("property")
        if not isinstance(prop, str) or not KEY_PATTERN.match(prop):
            raise ctx.error(
                _("aggregate “%(agg)s” needs a numeric “property”, e.g. “amount”.")
                % {"agg": aggregate}
            )
        out["property"] = prop
    op = condition.get("op", "gte")
    if op not in AGGREGATE_OPS:
        raise ctx.error(
            _("operator “%(op)s” does not apply to an event aggregate (use one of: %(ops)s).")
            % {"op": op, "ops": ", ".join(AGGREGATE_OPS)}
        )
    out["op"] = op
    out["value"] = operand_validate("number", op, condition.get("value", 1), ctx)
    where = condition.get("where", [])
    if not isinstance(where, list):
        raise ctx.error(_("“where” must be a list of property filters."))
    filters = []
    for i, item in enumerate(where):
        sub = ValidationContext(path=f"{ctx.path}.where[{i}]", segment_id=ctx.segment_id)
        if not isinstance(item, dict):
            raise sub.error(_("expected a JSON object."))
        filters.append(_json_validate(item, "property", sub))
    if filters:
        out["where"] = filters
    if "within_days" in condition:
        days = condition["within_days"]
        if not (isinstance(days, int) and not isinstance(days, bool) and 1 <= days <= 36_500):
            raise ctx.error(_("“within_days” needs a whole number of days (1 to 36500)."))
        out["within_days"] = days
    for bound in ("since", "until"):
        if bound in condition:
            out[bound] = moment_validate(condition[bound], ctx, bound=bound)
    if "within_days" in out and ("since" in out or "until" in out):
        raise ctx.error(_("use either “within_days” or “since”/“until”, not both."))
    if (
        "since" in out
        and "until" in out
        and parse_moment(out["since"]) >= parse_moment(out["until"])
    ):
        raise ctx.error(_("“since” must be before “until”."))
    return out


def _event_window(condition: dict, now: datetime) -> tuple[datetime | None, datetime]:
    """(lower bound exclusive or None, upper bound inclusive)."""
    until = now
    if "until" in condition:
        until = min(now, parse_moment(condition["until"]))
    since = None
    if "within_days" in condition:
        since = now - timedelta(days=condition["within_days"])
    elif "since" in condition:
        since = parse_moment(condition["since"])
    return since, until


def _aggregate_holds_for_nothing(condition: dict) -> bool:
    """Does a contact without matching events satisfy the condition (count/sum = 0)?"""
    if condition["aggregate"] not in ("count", "sum"):
        return False
    return python_compare(0, "number", condition["op"], condition["value"], datetime.min)


NEGATED = {"eq": "ne", "ne": "eq", "gt": "lte", "gte": "lt", "lt": "gte", "lte": "gt"}


def _event_compile(condition: dict, ctx: CompileContext) -> Q:
    from contacts.models import Event

    since, _until = _event_window(condition, ctx.now)
    # occurred_at <= min(now, until) as two bounds: each parameter is either ``now`` or a
    # constant, whatever ``now`` is (what lets the compiled SQL be reused, see rules.compiled).
    where = Q(type=condition["event_type"], occurred_at__lte=ctx.now)
    if "until" in condition:
        where &= Q(occurred_at__lte=parse_moment(condition["until"]))
    if ctx.contact_ids is not None:
        where &= Q(contact_id__in=ctx.contact_ids)
    if since is not None:
        where &= Q(occurred_at__gt=since)
    for item in condition.get("where", []):
        where &= _json_q("properties", item["property"], item, ctx.now)
    shared = ctx.shared_events if ctx.contact_ids is None else None
    events = Event.objects.filter(where)
    aggregate, op, value = condition["aggregate"], condition["op"], condition["value"]
    # A count with no property filter reads only type, time and contact: in a shared pass it
    # is answered from the (type, occurred_at) INCLUDE (contact_id) index, without the heap.
    index_only = aggregate == "count" and not condition.get("where")
    if aggregate == "count" and ((op == "gte" and value <= 1) or (op == "gt" and value < 1)):
        if (op == "gte" and value <= 0) or (op == "gt" and value < 0):
            return Q(pk__isnull=False)  # every contact
        if shared is not None and (q := shared.add(where=where, index_only=index_only)) is not None:
            return q
        return Q(Exists(events.filter(contact_id=OuterRef("pk"))))
    if aggregate == "count" and (
        (op == "lt" and 0 < value <= 1) or (op in ("eq", "lte") and value == 0)
    ):
        if shared is not None and (q := shared.add(where=where, index_only=index_only)) is not None:
            return ~q
        return ~Q(Exists(events.filter(contact_id=OuterRef("pk"))))
    if aggregate == "count":
        measure = Count("id")
    else:
        amount = JSONKeyValue("properties", condition["property"], "number")
        where &= Q(IsNull(amount, False))
        events = events.filter(Q(IsNull(amount, False)))
        measure = {"sum": Sum, "avg": Avg, "min": Min, "max": Max}[aggregate](amount)
        if aggregate == "sum":
            measure = Coalesce(measure, Value(0.0))
    holds_for_nothing = _aggregate_holds_for_nothing(condition)
    if shared is not None:
        # The same sets as below: contacts with a matching event whose measure fails
        # (holds for nothing) or passes the predicate.
        shared_measure = _filtered(measure, where)
        if holds_for_nothing:
            negated = ("outside", value) if op == "between" else (NEGATED[op], value)
            q = shared.add(
                where=where,
                measure=shared_measure,
                op=negated[0],
                value=negated[1],
                index_only=index_only,
            )
            if q is not None:
                return ~q
        else:
            q = shared.add(
                where=where, measure=shared_measure, op=op, value=value, index_only=index_only
            )
            if q is not None:
                return q
    grouped = events.values("contact_id").annotate(measure=measure)
    if holds_for_nothing:
        # Members = no events, or events whose measure satisfies the predicate.
        if op == "between":
            failing = Q(measure__lt=value[0]) | Q(measure__gt=value[1])
        else:
            failing = Q(**{f"measure__{_lookup(NEGATED[op])}": value})
        return ~Q(pk__in=grouped.filter(failing).values("contact_id"))
    if op == "between":
        passing = Q(measure__gte=value[0], measure__lte=value[1])
    else:
        passing = Q(**{f"measure__{_lookup(op)}": value}) if op != "ne" else ~Q(measure=value)
    return Q(pk__in=grouped.filter(passing).values("contact_id"))


def _filtered(measure, where: Q):
    """``measure`` restricted to the events matching ``where`` (an aggregate ``FILTER``)."""
    if isinstance(measure, Coalesce):
        return Coalesce(_filtered(measure.source_expressions[0], where), Value(0.0))
    return type(measure)(*measure.source_expressions, filter=where)


def _lookup(op: str) -> str:
    return {"eq": "exact", "ne": "exact", "gt": "gt", "gte": "gte", "lt": "lt", "lte": "lte"}[op]


def _matching_events(condition: dict, contact: ReferenceContact, now: datetime) -> list:
    since, until = _event_window(condition, now)
    out = []
    for event in contact.events:
        if event.type != condition["event_type"] or event.occurred_at > until:
            continue
        if since is not None and event.occurred_at <= since:
            continue
        if all(
            _json_python(event.properties, item["property"], item, now)
            for item in condition.get("where", [])
        ):
            out.append(event)
    return out


def _event_measure(condition: dict, contact: ReferenceContact, now: datetime) -> float | None:
    events = _matching_events(condition, contact, now)
    if condition["aggregate"] == "count":
        return len(events)
    amounts = []
    for event in events:
        raw = (event.properties or {}).get(condition["property"])
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            amounts.append(float(raw))
    if condition["aggregate"] == "sum":
        return sum(amounts)
    if not amounts:
        return None
    return {"avg": lambda a: sum(a) / len(a), "min": min, "max": max}[condition["aggregate"]](
        amounts
    )


def _event_evaluate(condition: dict, contact: ReferenceContact, now: datetime) -> bool:
    measure = _event_measure(condition, contact, now)
    return python_compare(measure, "number", condition["op"], condition["value"], now)


COUNT_PHRASES = {
    "eq": _("exactly %(n)s"),
    "ne": _("not exactly %(n)s"),
    "gt": _("more than %(n)s"),
    "gte": _("at least %(n)s"),
    "lt": _("fewer than %(n)s"),
    "lte": _("at most %(n)s"),
}
AGGREGATE_LABELS = {
    "sum": _("total"),
    "avg": _("average"),
    "min": _("minimum"),
    "max": _("maximum"),
}


def _event_describe(condition: dict) -> str:
    where = ""
    if condition.get("where"):
        where = (
            " ("
            + gettext(", ").join(
                f"{item['property']} {operand_describe(item['op'], item.get('value'))}"
                for item in condition["where"]
            )
            + ")"
        )
    window = ""
    if "within_days" in condition:
        window = " " + gettext("in the last %(days)s days") % {"days": condition["within_days"]}
    elif "since" in condition or "until" in condition:
        window = " " + gettext("between %(since)s and %(until)s") % {
            "since": condition.get("since", "…"),
            "until": condition.get("until", gettext("now")),
        }
    event = f"“{condition['event_type']}”"
    if condition["aggregate"] == "count":
        if condition["op"] == "between":
            amount = gettext("between %(low)s and %(high)s") % {
                "low": condition["value"][0],
                "high": condition["value"][1],
            }
        else:
            amount = COUNT_PHRASES[condition["op"]] % {"n": condition["value"]}
        return gettext("%(amount)s %(event)s event(s)%(where)s%(window)s") % {
            "amount": amount,
            "event": event,
            "where": where,
            "window": window,
        }
    return gettext("%(agg)s of %(prop)s over %(event)s events%(where)s%(window)s %(op)s") % {
        "agg": AGGREGATE_LABELS[condition["aggregate"]],
        "prop": condition["property"],
        "event": event,
        "where": where,
        "window": window,
        "op": operand_describe(condition["op"], condition["value"]),
    }


def _event_explain(condition: dict, contact: ReferenceContact, now: datetime) -> str:
    measure = _event_measure(condition, contact, now)
    if condition["aggregate"] == "count":
        return gettext("%(n)s matching event(s)") % {"n": measure}
    return _shown(measure)


def _event_dependencies(condition: dict) -> Dependencies:
    return Dependencies(event_types=frozenset({condition["event_type"]}))


# --- membership of another segment -----------------------------------------------------------


def _segment_validate(condition: dict, ctx: ValidationContext) -> dict:
    from segments.models import Segment

    target = condition.get("segment")
    if not isinstance(target, int) or isinstance(target, bool) or not 0 < target < 2**31:
        raise ctx.error(_("“segment” must be the id of a segment."))
    if ctx.segment_id is not None and target == ctx.segment_id:
        raise ctx.error(_("a segment cannot refer to itself."))
    if not Segment.objects.filter(pk=target).exists():
        raise ctx.error(_("segment %(id)s does not exist.") % {"id": target})
    return {"segment": target}


def _segment_compile(condition: dict, ctx: CompileContext) -> Q:
    from segments.models import SegmentMembership

    return Q(
        Exists(
            SegmentMembership.objects.filter(
                segment_id=condition["segment"], contact_id=OuterRef("pk"), exited_at__isnull=True
            )
        )
    )


def _segment_evaluate(condition: dict, contact: ReferenceContact, now: datetime) -> bool:
    return condition["segment"] in contact.memberships


def _segment_describe(condition: dict) -> str:
    from segments.models import Segment

    name = Segment.objects.filter(pk=condition["segment"]).values_list("name", flat=True).first()
    return gettext("member of segment “%(name)s”") % {"name": name or condition["segment"]}


def _segment_dependencies(condition: dict) -> Dependencies:
    return Dependencies(segments=frozenset({condition["segment"]}))


def _segment_explain(condition: dict, contact: ReferenceContact, now: datetime) -> str:
    return (
        gettext("member")
        if condition["segment"] in contact.memberships
        else gettext("not a member")
    )


# --- registration ----------------------------------------------------------------------------


def _kind_choices(mapping: dict[str, tuple[str, Any]]) -> list[dict]:
    return [
        {"name": name, "label": str(label), "kind": kind, "ops": list(OPERATORS[kind])}
        for name, (kind, label) in mapping.items()
    ]


def register_builtin_conditions() -> None:
    register_condition(
        "field",
        _field_compile,
        _field_validate,
        _field_describe,
        _field_evaluate,
        explainer=_field_explain,
        label=_("Contact field"),
        builder={"subject": "field", "choices": _kind_choices(CONTACT_FIELDS)},
        cacheable=True,
    )
    register_condition(
        "feature",
        _feature_compile,
        _feature_validate,
        _feature_describe,
        _feature_evaluate,
        dependencies=_feature_dependencies,
        explainer=lambda c, contact, now: _shown(_feature_value(c, contact)),
        label=_("Behavioural feature"),
        builder={"subject": "feature", "choices": _kind_choices(FEATURES)},
        cacheable=True,
    )
    register_condition(
        "attribute",
        _attribute_compile,
        _attribute_validate,
        _attribute_describe,
        _attribute_evaluate,
        explainer=_attribute_explain,
        label=_("Custom attribute"),
        builder={"subject": "key", "free": True},
        cacheable=True,
    )
    register_condition(
        "event",
        _event_compile,
        _event_validate,
        _event_describe,
        _event_evaluate,
        dependencies=_event_dependencies,
        explainer=_event_explain,
        label=_("Events"),
        builder={"event": True, "aggregates": list(AGGREGATES), "ops": list(AGGREGATE_OPS)},
        cacheable=True,
    )
    register_condition(
        "segment",
        _segment_compile,
        _segment_validate,
        _segment_describe,
        _segment_evaluate,
        dependencies=_segment_dependencies,
        explainer=_segment_explain,
        label=_("Member of segment"),
        builder={"segment": True},
        cacheable=True,
    )
