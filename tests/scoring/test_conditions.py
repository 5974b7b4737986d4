"""Scores and cohorts as segment rule conditions: SQL result = reference evaluator = intent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from contacts.models import Contact
from segments.rules import rule_compile, rule_validate
from segments.rules.registry import RuleError
from segments.rules.tree import rule_describe, rule_evaluate_reference
from segments.scoring.models import ContactScore
from segments.selectors import reference_contact
from segments.services import segment_create
from tests.factories import ContactFactory, EventFactory

pytestmark = pytest.mark.django_db


def members(rule: dict) -> set[str]:
    now = timezone.now()
    valid = rule_validate(rule)
    by_sql = set(
        Contact.objects.filter(rule_compile(valid, now=now)).values_list("external_id", flat=True)
    )
    by_reference = {
        c.external_id
        for c in Contact.objects.all()
        if rule_evaluate_reference(valid, reference_contact(c), now=now)
    }
    assert by_sql == by_reference
    return by_sql


@pytest.fixture
def scored(db):
    """Five contacts with scores (churn 0.1 … 0.9, CLV 10 … 500) and one never scored."""
    now = timezone.now()
    rows = [
        ("a", 0.1, 10.0),
        ("b", 0.3, 50.0),
        ("c", 0.5, 100.0),
        ("d", 0.7, 200.0),
        ("e", 0.9, 500.0),
    ]
    for i, (name, churn, clv) in enumerate(rows):
        contact = ContactFactory(external_id=name)
        ContactScore.objects.create(
            contact=contact,
            churn=churn,
            churn_top=(5 - i) / 5,
            clv=clv,
            clv_top=(5 - i) / 5,
            updated_at=now,
        )
    ContactFactory(external_id="unscored")


def test_churn_threshold_and_clv_top_percent_combine(scored):
    assert members({"type": "score", "score": "churn", "op": "gte", "value": 0.7}) == {"d", "e"}
    assert members({"type": "score", "score": "clv", "top_percent": 40}) == {"d", "e"}
    rule = {
        "all": [
            {"type": "score", "score": "churn", "op": "gte", "value": 0.5},
            {"type": "score", "score": "clv", "top_percent": 20},
        ]
    }
    assert members(rule) == {"e"}
    assert rule_describe(rule_validate(rule)).count("top 20 %") == 1


def test_unscored_contacts_match_only_is_not_set_and_negations(scored):
    assert members({"type": "score", "score": "churn", "op": "is_not_set"}) == {"unscored"}
    assert members({"not": {"type": "score", "score": "churn", "op": "gt", "value": 0.2}}) == {
        "a",
        "unscored",
    }


@pytest.mark.parametrize(
    "condition, message",
    [
        ({"type": "score", "score": "loyalty", "op": "gte", "value": 1}, "unknown score"),
        ({"type": "score", "score": "clv", "top_percent": 0}, "top_percent"),
        ({"type": "score", "score": "clv", "top_percent": 20, "op": "gte"}, "not both"),
        ({"type": "score", "score": "churn", "op": "contains", "value": "x"}, "operator"),
        ({"type": "cohort", "cohort": "March 2026"}, "YYYY-MM"),
        ({"type": "cohort", "cohort": "2026-03", "by": "birthday"}, "“by”"),
    ],
)
def test_invalid_conditions_are_refused_with_a_reason(condition, message):
    with pytest.raises(RuleError, match=message):
        rule_validate(condition)


def test_cohort_by_signup_and_by_first_purchase(db):
    march = datetime(2026, 3, 15, tzinfo=UTC)
    early = ContactFactory(external_id="early", created_at=datetime(2026, 2, 10, tzinfo=UTC))
    EventFactory(contact=early, type="purchase", occurred_at=march, properties={"amount": 5})
    EventFactory(contact=early, type="purchase", occurred_at=march - timedelta(days=40))
    new = ContactFactory(external_id="new", created_at=datetime(2026, 3, 2, tzinfo=UTC))
    EventFactory(contact=new, type="purchase", occurred_at=march, properties={"amount": 5})
    browser = ContactFactory(
        external_id="browser", created_at=datetime(2026, 3, 31, 23, tzinfo=UTC)
    )
    EventFactory(contact=browser, type="page_view", occurred_at=march)
    ContactFactory(external_id="april", created_at=datetime(2026, 4, 1, tzinfo=UTC))
    assert members({"type": "cohort", "cohort": "2026-03"}) == {"new", "browser"}
    assert members({"type": "cohort", "cohort": "2026-03", "by": "first_purchase"}) == {"new"}
    assert members({"type": "cohort", "cohort": "2026-01", "by": "first_purchase"}) == set()


def test_a_segment_on_scores_can_be_created(scored):
    segment = segment_create(
        name="À risque et précieux",
        rule={
            "all": [
                {"type": "score", "score": "churn", "op": "gte", "value": 0.7},
                {"type": "score", "score": "clv", "top_percent": 20},
            ]
        },
    )
    assert segment.pk


def test_descriptions_and_refusals_are_in_french_for_marketers():
    from django.utils import translation

    with translation.override("fr"):
        rule = rule_validate({"type": "score", "score": "clv", "top_percent": 20})
        assert "valeur client prédite (CLV) dans les 20 % les plus élevés" in rule_describe(rule)
        with pytest.raises(RuleError, match="doit être un mois écrit AAAA-MM"):
            rule_validate({"type": "cohort", "cohort": "mars"})
