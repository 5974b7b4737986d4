"""Demo segments: the seed article's examples, created once when ``run_demo`` is ready."""

from __future__ import annotations

from datetime import datetime

from segments.models import Segment, SegmentFamily


def example_segments() -> list[dict]:
    """20 segments a marketer would build on the demo data (names are the seed article's)."""
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
            "name": "High-value recent buyers",
            "rule": {
                "all": [feature("recency_days", "lte", 30), feature("monetary_total", "gte", 500)]
            },
        },
        {
            "name": "At risk",
            "rule": {
                "all": [
                    feature("recency_days", "between", [90, 365]),
                    feature("frequency_365d", "gte", 2),
                ]
            },
        },
        {"name": "Lapsed", "rule": feature("recency_days", "gt", 365)},
        {
            "name": "Never bought",
            "rule": {"type": "feature", "feature": "recency_days", "op": "is_not_set"},
        },
        {"name": "Bought twice in 30 days", "rule": events("purchase", 2, 30)},
        {"name": "Opened an email in 14 days", "rule": events("email_open", 1, 14)},
        {
            "name": "Shoes buyers (90 days)",
            "rule": events(
                "purchase", 1, 90, where=[{"property": "category", "op": "eq", "value": "shoes"}]
            ),
        },
        {"name": "Big basket", "rule": feature("avg_basket", "gte", 150)},
        {
            "name": "Engaged",
            # A membership condition: engaged contacts, except those already lapsed.
            "rule": {
                "all": [
                    feature("engagement_score", "gte", 5),
                    {"not": {"type": "segment", "segment": "Lapsed"}},
                ]
            },
        },
        {
            "name": "Cart abandoners",
            "rule": {"all": [events("cart_updated", 1, 7), {"not": events("purchase", 1, 7)}]},
        },
        {
            "name": "Paris mobile",
            "rule": {
                "all": [
                    {"type": "field", "field": "city", "op": "eq", "value": "Paris"},
                    feature("preferred_channel", "eq", "app"),
                ]
            },
        },
        {"name": "New sign-ups", "rule": feature("days_since_signup", "lte", 30)},
        {
            "name": "Spent 300 in 90 days",
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
            "name": "Belgium and Switzerland",
            "rule": {"type": "field", "field": "country", "op": "in", "value": ["BE", "CH"]},
        },
        {"name": "Frequent", "rule": feature("frequency_365d", "gte", 6)},
        {
            "name": "Quiet for 60 days",
            "rule": feature("last_activity_at", "more_than_days_ago", 60),
        },
        # family: VIP > Churn risk > New > Others (membership-exclusive by priority)
        {
            "name": "Lifecycle: VIP",
            "family": "Lifecycle",
            "priority": 1,
            "rule": feature("monetary_total", "gte", 1000),
        },
        {
            "name": "Lifecycle: Churn risk",
            "family": "Lifecycle",
            "priority": 2,
            "rule": feature("recency_days", "gt", 120),
        },
        {
            "name": "Lifecycle: New",
            "family": "Lifecycle",
            "priority": 3,
            "rule": feature("days_since_signup", "lte", 60),
        },
        {"name": "Lifecycle: Others", "family": "Lifecycle", "priority": 4, "rule": {"all": []}},
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
    ids_by_name: dict[str, int] = {}
    for spec in example_segments():
        existing = Segment.objects.filter(name=spec["name"]).values_list("pk", flat=True).first()
        if existing is not None:
            ids_by_name[spec["name"]] = existing
            continue
        family = None
        if "family" in spec:
            family = SegmentFamily.objects.get_or_create(name=spec["family"])[0]
        created.append(
            segment_create(
                name=spec["name"],
                rule=example_rule(spec["rule"], ids_by_name),
                family=family,
                priority=spec.get("priority", 100),
            )
        )
        ids_by_name[spec["name"]] = created[-1].pk
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
