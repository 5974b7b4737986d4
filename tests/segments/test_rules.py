from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db.models import Q

from segments.rules import (
    RuleError,
    register_condition,
    rule_dependencies,
    rule_describe,
    rule_validate,
    unregister_condition,
)
from segments.selectors import segment_members
from segments.services import segment_create, segments_compute
from tests.factories import ContactFactory


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"type": "nope"}, "Condition root: unknown condition type “nope”"),
        (
            {"all": [{"type": "field", "field": "colour", "op": "eq", "value": "x"}]},
            "Condition all[0]: unknown field “colour”",
        ),
        (
            {
                "any": [
                    {
                        "not": {
                            "type": "feature",
                            "feature": "recency_days",
                            "op": "starts_with",
                            "value": "1",
                        }
                    }
                ]
            },
            "Condition any[0].not: operator “starts_with” does not apply to a number",
        ),
        (
            {"type": "event", "event_type": "purchase", "since": "2026-13-01"},
            "“since”: “2026-13-01” is not a valid date",
        ),
        (
            {"type": "event", "event_type": "purchase", "aggregate": "sum"},
            "aggregate “sum” needs a numeric “property”",
        ),
        (
            {"type": "feature", "feature": "frequency_90d", "op": "between", "value": [5, 1]},
            "smaller number first",
        ),
        (
            {"type": "attribute", "key": "a b", "op": "eq", "value": 1},
            "“key” must be a key made of letters",
        ),
        ({"all": {"type": "field"}}, "“all” must be a list"),
        ({"all": [], "any": []}, "a group has exactly one key"),
        ({"type": "segment", "segment": 99999}, "segment 99999 does not exist"),
    ],
)
def test_invalid_rules_are_refused_with_the_faulty_condition(db, rule, message):
    with pytest.raises(RuleError, match=message.replace("[", r"\[").replace("]", r"\]")):
        rule_validate(rule)


def test_rule_in_plain_language_reads_like_the_seed_article(db):
    rule = rule_validate(
        {
            "all": [
                {
                    "type": "event",
                    "event_type": "purchase",
                    "op": "gte",
                    "value": 2,
                    "within_days": 30,
                },
                {"type": "event", "event_type": "email_open", "within_days": 14},
            ]
        }
    )
    assert rule_describe(rule) == (
        "Contacts: at least 2 “purchase” event(s) in the last 30 days and "
        "at least 1 “email_open” event(s) in the last 14 days"
    )


def test_dependencies_name_the_event_types_a_rule_reacts_to(db):
    rule = rule_validate(
        {
            "any": [
                {"type": "feature", "feature": "monetary_total", "op": "gt", "value": 1},
                {"type": "event", "event_type": "email_click"},
            ]
        }
    )
    deps = rule_dependencies(rule)
    assert deps.event_types == {"purchase", "email_click"}
    assert deps.reacts_to({"purchase"}) and not deps.reacts_to({"page_view"})


def test_a_plugin_condition_type_plugs_into_validation_sql_and_reference(db):
    """How segments/ml adds {"type": "cluster", ...}: no change to the rule engine."""

    def validate(condition, ctx):
        if condition.get("letter") not in ("a", "b"):
            raise ctx.error("letter must be a or b")
        return {"letter": condition["letter"]}

    register_condition(
        "initial",
        lambda c, ctx: Q(first_name__istartswith=c["letter"]),
        validate,
        lambda c: f"first name starts with {c['letter']}",
        lambda c, contact, now: contact.contact.first_name.lower().startswith(c["letter"]),
    )
    try:
        anna, bob = ContactFactory(first_name="Anna"), ContactFactory(first_name="Bob")
        with pytest.raises(RuleError, match="Condition root: letter must be a or b"):
            rule_validate({"type": "initial", "letter": "z"})
        segment = segment_create(name="A-names", rule={"not": {"type": "initial", "letter": "a"}})
        segments_compute(now=datetime(2026, 6, 1, tzinfo=UTC))
        assert list(segment_members(segment)) == [bob]
        assert anna not in segment_members(segment)
        assert rule_describe(segment.rule) == "Contacts: not first name starts with a"
    finally:
        unregister_condition("initial")


def test_plain_language_and_errors_are_in_french_for_marketers(db):
    from django.utils import translation

    rule = rule_validate({"type": "feature", "feature": "recency_days", "op": "lte", "value": 30})
    with translation.override("fr"):
        assert rule_describe(rule) == "Contacts : jours depuis le dernier achat est au plus 30"
        with pytest.raises(RuleError, match="champ inconnu « colour »"):
            rule_validate({"type": "field", "field": "colour", "op": "eq", "value": "x"})
