"""Demo segments: the seed article's examples, created once when ``run_demo`` is ready."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from segments.models import Segment, SegmentFamily


def example_segments() -> list[dict]:
    """20 segments a marketer would build on the demo data (names are the seed article's,
    translated: the demo's segments are named in the installation's language)."""
    feature = lambda name, op, value: {"type": "feature", "feature": name, "op": op, "value": value}  # noqa: E731
    events = lambda t, n, days, **kw: {  # noqa: E731
        "type": "event",
        "event_type": t,
        "op": "gte",
        "value": n,
        "within_days": days,
        **kw,
    }
    return [
        {
            "name": _("High-value recent buyers"),
            "rule": {
                "all": [feature("recency_days", "lte", 30), feature("monetary_total", "gte", 500)]
            },
        },
        {
            "name": _("At risk"),
            "rule": {
                "all": [
                    feature("recency_days", "between", [90, 365]),
                    feature("frequency_365d", "gte", 2),
                ]
            },
        },
        {"name": _("Lapsed"), "rule": feature("recency_days", "gt", 365)},
        {
            "name": _("Never bought"),
            "rule": {"type": "feature", "feature": "recency_days", "op": "is_not_set"},
        },
        {"name": _("Bought twice in 30 days"), "rule": events("purchase", 2, 30)},
        {"name": _("Opened an email in 14 days"), "rule": events("email_open", 1, 14)},
        {
            "name": _("Shoes buyers (90 days)"),
            "rule": events(
                "purchase", 1, 90, where=[{"property": "category", "op": "eq", "value": "shoes"}]
            ),
        },
        {"name": _("Big basket"), "rule": feature("avg_basket", "gte", 150)},
        {
            "name": _("Engaged"),
            # A membership condition: engaged contacts, except those already lapsed.
            "rule": {
                "all": [
                    feature("engagement_score", "gte", 5),
                    {"not": {"type": "segment", "segment": "Lapsed"}},
                ]
            },
        },
        {
            "name": _("Cart abandoners"),
            "rule": {"all": [events("cart_updated", 1, 7), {"not": events("purchase", 1, 7)}]},
        },
        {
            "name": _("Paris mobile"),
            "rule": {
                "all": [
                    {"type": "field", "field": "city", "op": "eq", "value": "Paris"},
                    feature("preferred_channel", "eq", "app"),
                ]
            },
        },
        {"name": _("New sign-ups"), "rule": feature("days_since_signup", "lte", 30)},
        {
            "name": _("Spent 300 in 90 days"),
            "rule": {
                "type": "event",
                "event_type": "purchase",
                "aggregate": "sum",
                "property": "amount",
                "op": "gte",
                "value": 300,
                "within_days": 90,
            },
        },
        {
            "name": _("Belgium and Switzerland"),
            "rule": {"type": "field", "field": "country", "op": "in", "value": ["BE", "CH"]},
        },
        {"name": _("Frequent"), "rule": feature("frequency_365d", "gte", 6)},
        {
            "name": _("Quiet for 60 days"),
            "rule": feature("last_activity_at", "more_than_days_ago", 60),
        },
        # family: VIP > Churn risk > New > Others (membership-exclusive by priority)
        {
            "name": _("Lifecycle: VIP"),
            "family": _("Lifecycle"),
            "priority": 1,
            "rule": feature("monetary_total", "gte", 1000),
        },
        {
            "name": _("Lifecycle: Churn risk"),
            "family": _("Lifecycle"),
            "priority": 2,
            "rule": feature("recency_days", "gt", 120),
        },
        {
            "name": _("Lifecycle: New"),
            "family": _("Lifecycle"),
            "priority": 3,
            "rule": feature("days_since_signup", "lte", 60),
        },
        {
            "name": _("Lifecycle: Others"),
            "family": _("Lifecycle"),
            "priority": 4,
            "rule": {"all": []},
        },
    ]


def example_rule(rule: dict, ids_by_name: dict[str, int]) -> dict:
    """``rule`` with segment conditions naming an example segment (``"segment": "Lapsed"``)
    turned into that segment's id, as the rule format wants."""
    if "all" in rule or "any" in rule:
        key = "all" if "all" in rule else "any"
        return {key: [example_rule(child, ids_by_name) for child in rule[key]]}
    if "not" in rule:
        return {"not": example_rule(rule["not"], ids_by_name)}
    if rule.get("type") == "segment" and isinstance(rule.get("segment"), str):
        return {**rule, "segment": ids_by_name[rule["segment"]]}
    return rule


def example_segments_create() -> list[Segment]:
    """Create the example segments that do not exist yet (by name), in example order, without
    computing them. Segment conditions name an earlier example; existing ones are reused."""
    from segments.services import segment_create

    created = []
    ids_by_name: dict[str, int] = {}  # by English name, as the example rules name them
    for spec in example_segments():
        with translation.override("en"):
            key = str(spec["name"])
        with translation.override(settings.LANGUAGE_CODE):
            name = str(spec["name"])
            family_name = str(spec["family"]) if "family" in spec else None
        existing = Segment.objects.filter(name=name).values_list("pk", flat=True).first()
        if existing is not None:
            ids_by_name[key] = existing
            continue
        family = None
        if family_name:
            family = SegmentFamily.objects.get_or_create(name=family_name)[0]
        created.append(
            segment_create(
                name=name,
                rule=example_rule(spec["rule"], ids_by_name),
                family=family,
                priority=spec.get("priority", 100),
            )
        )
        ids_by_name[key] = created[-1].pk
    return created


def demo_segments_create(*, now: datetime) -> list[Segment]:
    """Create the example segments that do not exist yet (by name), refresh features and
    compute them. Idempotent: a second call creates nothing."""
    from segments.services import features_refresh, segments_compute

    created = example_segments_create()
    if created:
        features_refresh(as_of=now)
        segments_compute(now=now)
    return created
