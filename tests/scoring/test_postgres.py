"""The PostgreSQL paths: RFM SQL dialect, COPY-based score upsert, cohort SQL, rule conditions."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command

from contacts.models import Contact
from segments.rules import rule_compile, rule_validate
from segments.scoring.models import ContactScore, ModelKind, ScoringModel
from segments.scoring.selectors import cohort_table
from segments.scoring.services import scoring_population
from segments.scoring.sql import rfm_summary
from tests.factories import ContactFactory, EventFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def test_fit_clv_on_postgres_writes_scores_with_copy_and_clears_stale_rows(customers, now):
    ids, _sim = customers
    out = io.StringIO()
    call_command("fit_clv", "--json", "--time-unit", "week", stdout=out)
    payload = json.loads(out.getvalue())
    assert payload["customers"] == 600
    assert ContactScore.objects.filter(clv__isnull=False).count() == 600
    # A second fit replaces (not doubles) the rows and leaves one active model.
    Contact.objects.filter(pk=ids[0]).delete()
    call_command("fit_clv", stdout=io.StringIO())
    assert ContactScore.objects.count() == 599
    assert ScoringModel.objects.filter(kind=ModelKind.CLV, active=True).count() == 1
    top = ContactScore.objects.order_by("-clv").first()
    assert top.clv_top == pytest.approx(1 / 599)


def test_rfm_summary_dialect_matches_hand_counts(db):
    cal = datetime(2026, 3, 1, tzinfo=UTC)
    day0 = datetime(2026, 1, 1, 9, tzinfo=UTC)
    buyer = ContactFactory()
    for when, amount in [
        (day0, 10),
        (day0 + timedelta(hours=5), 5),
        (day0 + timedelta(days=10), 20),
        (day0 + timedelta(days=30), 40),
        (cal + timedelta(days=3), 99),
    ]:
        EventFactory(
            contact=buyer, type="purchase", occurred_at=when, properties={"amount": amount}
        )
    summary = rfm_summary(
        eligible=scoring_population(), calibration_end=cal, holdout_end=cal + timedelta(days=10)
    )
    assert summary.x.tolist() == [2] and summary.t_x.tolist() == [30]
    assert summary.T[0] == pytest.approx(59.0) and summary.m[0] == pytest.approx(30.0)
    assert summary.holdout_x.tolist() == [1]


def test_cohorts_and_conditions_on_postgres(db):
    march = ContactFactory(external_id="m", created_at=datetime(2026, 3, 31, 23, 30, tzinfo=UTC))
    EventFactory(
        contact=march,
        type="purchase",
        occurred_at=datetime(2026, 4, 2, tzinfo=UTC),
        properties={"amount": 12.5},
    )
    table = cohort_table(by="signup", months=3, now=datetime(2026, 4, 20, tzinfo=UTC))
    assert table.cohorts == ["2026-03"] and table.retention[0][:2] == [0.0, 1.0]
    assert table.cumulative_value[0][:2] == [0.0, 12.5]
    now = datetime(2026, 5, 1, tzinfo=UTC)
    for rule, expected in [
        ({"type": "cohort", "cohort": "2026-03"}, {"m"}),
        ({"type": "cohort", "cohort": "2026-04", "by": "first_purchase"}, {"m"}),
        ({"type": "score", "score": "clv", "top_percent": 10}, set()),
    ]:
        q = rule_compile(rule_validate(rule), now=now)
        assert set(Contact.objects.filter(q).values_list("external_id", flat=True)) == expected


def test_churn_propensity_on_postgres_leaves_live_features_unchanged(db):
    from segments.models import ContactFeatures
    from segments.services import features_refresh

    call_command("seed_demo", contacts=2_000, events_per_contact=20, seed=9, stdout=io.StringIO())
    features_refresh()
    before = list(ContactFeatures.objects.order_by("pk").values_list("pk", "as_of", "recency_days"))
    out = io.StringIO()
    call_command("train_propensity", "--target", "churn", stdout=out)
    model = ScoringModel.objects.get(kind=ModelKind.CHURN, active=True)
    assert model.auc > 0.75
    assert f"AUC {model.auc:.4f}" in out.getvalue()
    after = list(ContactFeatures.objects.order_by("pk").values_list("pk", "as_of", "recency_days"))
    assert after == before
    assert ContactScore.objects.filter(churn__isnull=False).count() == model.scored_contacts


def test_binary_copy_score_write_stores_missing_values_as_null(db):
    import numpy as np
    from django.utils import timezone

    from segments.scoring.services import scores_write

    contacts = [ContactFactory() for _ in range(3)]
    now = timezone.now()
    model = ScoringModel.objects.create(
        kind=ModelKind.CHURN, version=1, created_at=now, reference_date=now, horizon_days=90
    )
    written = scores_write(
        model=model,
        contact_ids=np.array([c.pk for c in contacts]),
        columns={
            "churn": np.array([0.25, np.nan, 0.75]),
            "churn_top": np.array([1.0, np.nan, 0.5]),
        },
        now=now,
    )
    assert written == 3
    stored = dict(ContactScore.objects.values_list("contact_id", "churn"))
    assert stored == {contacts[0].pk: 0.25, contacts[1].pk: None, contacts[2].pk: 0.75}
    assert ContactScore.objects.filter(churn_model=model).count() == 3


def test_cohort_period_bound_on_postgres(db):
    """The same checks on the partitioned events table (months before the period pruned)."""
    from tests.scoring.test_pages import (
        test_purchases_before_the_period_count_only_for_the_first_purchase_month as check,
    )

    check()
