"""fit_clv end to end on SQLite: contract, scores stored, time units, bad input, objectors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from io import StringIO

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from consent.services import consent_record
from contacts.models import Contact, Event
from segments.scoring.models import ContactScore, ModelKind, ScoringModel
from segments.scoring.services import scoring_population
from segments.scoring.sql import rfm_summary
from tests.factories import ContactFactory, EventFactory
from tests.scoring.conftest import load_customers

pytestmark = pytest.mark.django_db


def fit_json(*args: str) -> dict:
    out = StringIO()
    call_command("fit_clv", "--json", *args, stdout=out)
    return json.loads(out.getvalue())


def test_fit_clv_json_prints_the_contract_and_stores_every_customers_scores(customers):
    ids, sim = customers
    payload = fit_json()
    assert set(payload) == {"bgnbd", "gamma_gamma", "log_likelihood", "customers"}
    assert set(payload["bgnbd"]) == {"r", "alpha", "a", "b"}
    assert set(payload["gamma_gamma"]) == {"p", "q", "gamma"}
    assert payload["customers"] == 600
    assert payload["log_likelihood"] < 0
    scores = ContactScore.objects.filter(contact_id__in=ids.tolist())
    assert scores.count() == 600
    assert not scores.filter(clv__isnull=True).exists()
    assert all(0 <= s.p_alive <= 1 for s in scores)
    model = ScoringModel.objects.get(kind=ModelKind.CLV, active=True)
    assert model.scored_contacts == 600
    assert model.parameters["bgnbd"]["r"] == pytest.approx(payload["bgnbd"]["r"])
    # The fit is close to the simulated truth (600 customers: loose, factor 2).
    assert 0.25 < payload["bgnbd"]["r"] < 1.0
    assert 10 < payload["bgnbd"]["alpha"] < 40


def test_week_unit_rescales_alpha_only(customers):
    days = fit_json("--time-unit", "day")
    weeks = fit_json("--time-unit", "week")
    assert weeks["bgnbd"]["alpha"] == pytest.approx(days["bgnbd"]["alpha"] / 7, rel=1e-3)
    for name in ("r", "a", "b"):
        assert weeks["bgnbd"][name] == pytest.approx(days["bgnbd"][name], rel=1e-3)
    assert weeks["log_likelihood"] != days["log_likelihood"]
    assert ScoringModel.objects.filter(kind=ModelKind.CLV, active=True).count() == 1
    assert ScoringModel.objects.filter(kind=ModelKind.CLV).count() == 2


def test_a_loyal_recent_buyer_outranks_a_long_silent_one(customers):
    ids, sim = customers
    fit_json()
    recent = np.flatnonzero((sim.x >= 4) & (sim.T - sim.t_x < 15))
    silent = np.flatnonzero((sim.x >= 4) & (sim.T - sim.t_x > 150))
    assert len(recent) and len(silent)
    score = dict(ContactScore.objects.values_list("contact_id", "p_alive"))
    assert np.mean([score[ids[i]] for i in recent]) > np.mean([score[ids[i]] for i in silent])


def test_rfm_summary_counts_distinct_purchase_days_and_mean_repeat_spend(db):
    cal = datetime(2026, 3, 1, tzinfo=UTC)
    day0 = datetime(2026, 1, 1, 9, tzinfo=UTC)
    buyer = ContactFactory()
    for when, amount in [
        (day0, 10),
        (day0 + timedelta(hours=5), 5),  # same day: one purchase day of 15
        (day0 + timedelta(days=10), 20),
        (day0 + timedelta(days=30), 40),
        (cal + timedelta(days=3), 99),  # after the calibration end: holdout
    ]:
        EventFactory(
            contact=buyer, type="purchase", occurred_at=when, properties={"amount": amount}
        )
    EventFactory(contact=buyer, type="page_view", occurred_at=day0 + timedelta(days=40))
    late = ContactFactory()
    EventFactory(contact=late, type="purchase", occurred_at=cal + timedelta(days=1))
    summary = rfm_summary(
        eligible=scoring_population(), calibration_end=cal, holdout_end=cal + timedelta(days=10)
    )
    assert summary.contact_id.tolist() == [buyer.pk]
    assert summary.x.tolist() == [2]
    assert summary.t_x.tolist() == [30]
    assert summary.T[0] == pytest.approx(59.0)  # 2026-01-01 00:00 → 2026-03-01
    assert summary.m[0] == pytest.approx(30.0)  # (20 + 40) / 2, first day left out
    assert summary.holdout_x.tolist() == [1]


def test_rfm_summary_matches_a_hand_count_on_random_histories(db):
    # Purchases on random days and hours (several per day, some without an amount, some on the
    # calibration day itself and after it): every customer's summary equals a direct count.
    rng = np.random.default_rng(8)
    cal = datetime(2026, 3, 1, 12, tzinfo=UTC)
    holdout_end = cal + timedelta(days=20)
    contacts = [ContactFactory() for _ in range(40)]
    expected = {}
    for contact in contacts:
        purchases = []
        for _ in range(rng.integers(0, 7)):
            when = cal + timedelta(
                days=int(rng.integers(-60, 15)), hours=int(rng.integers(-12, 12))
            )
            amount = None if rng.random() < 0.2 else float(rng.integers(1, 100))
            purchases.append((when, amount))
            EventFactory(
                contact=contact,
                type="purchase",
                occurred_at=when,
                properties={} if amount is None else {"amount": amount},
            )
        before = {}
        for when, amount in purchases:
            if when < cal:
                day = when.date()
                total = before.get(day)
                before[day] = (
                    total if amount is None else (amount if total is None else total + amount)
                )
        if not before:
            continue
        days = sorted(before)
        repeat = [before[d] for d in days[1:] if before[d] is not None]
        after = {w.date() for w, _a in purchases if cal <= w < holdout_end}
        first = datetime.combine(days[0], datetime.min.time(), tzinfo=UTC)
        expected[contact.pk] = (
            len(days) - 1,
            (days[-1] - days[0]).days,
            (cal - first).total_seconds() / 86_400,
            sum(repeat) / len(repeat) if repeat else None,
            len(after),
        )
    summary = rfm_summary(
        eligible=scoring_population(), calibration_end=cal, holdout_end=holdout_end
    )
    assert summary.contact_id.tolist() == sorted(expected)
    for i, pk in enumerate(summary.contact_id):
        x, t_x, T, m, holdout = expected[pk]
        assert (summary.x[i], summary.t_x[i], summary.holdout_x[i]) == (x, t_x, holdout)
        assert summary.T[i] == pytest.approx(T)
        assert (np.isnan(summary.m[i]) and m is None) or summary.m[i] == pytest.approx(m)


def test_holdout_check_compares_predicted_and_actual_purchases(customers, now):
    fit_json("--calibration-end", (now - timedelta(days=90)).isoformat())
    model = ScoringModel.objects.get(kind=ModelKind.CLV, active=True)
    holdout = model.report["holdout"]
    assert holdout["holdout_days"] == pytest.approx(90, abs=0.01)
    assert holdout["actual_total"] > 0
    # The model predicts the holdout total within 30 % on data drawn from the model.
    assert holdout["predicted_total"] == pytest.approx(holdout["actual_total"], rel=0.3)
    # Customers who first bought during the holdout are scored too (scores use all history).
    assert model.scored_contacts >= model.training_rows


def test_too_little_history_is_refused_and_existing_scores_are_kept(db, now, settings):
    ids, _sim = load_customers(n=120, seed=3, now=now)
    settings.SCORING_CLV_MIN_CUSTOMERS = 100
    fit_json()
    before = dict(ContactScore.objects.values_list("contact_id", "clv"))
    settings.SCORING_CLV_MIN_CUSTOMERS = 500
    with pytest.raises(CommandError, match="Too little history: 120 customers"):
        call_command("fit_clv")
    assert dict(ContactScore.objects.values_list("contact_id", "clv")) == before
    assert ScoringModel.objects.filter(kind=ModelKind.CLV).count() == 1


def test_calibration_end_outside_the_data_is_refused(customers, now):
    with pytest.raises(CommandError, match="in the future"):
        call_command("fit_clv", "--calibration-end", (now + timedelta(days=5)).isoformat())
    with pytest.raises(CommandError, match="before the first purchase"):
        call_command("fit_clv", "--calibration-end", "2001-01-01")
    with pytest.raises(CommandError, match="not an ISO date"):
        call_command("fit_clv", "--calibration-end", "last tuesday")
    assert not ContactScore.objects.exists()


def test_no_repeat_buyers_is_refused(db, now, settings):
    settings.SCORING_CLV_MIN_CUSTOMERS = 10
    for i in range(20):
        EventFactory(
            contact=ContactFactory(),
            type="purchase",
            occurred_at=now - timedelta(days=30 + i),
            properties={"amount": 10 + i},
        )
    with pytest.raises(CommandError, match="repeat buyers"):
        call_command("fit_clv")
    assert not ScoringModel.objects.exists()


def test_profiling_objectors_are_neither_fitted_nor_scored(customers, now):
    ids, _sim = customers
    fit_json()
    objector = Contact.objects.get(pk=ids[0])
    assert ContactScore.objects.get(contact=objector).clv is not None
    consent_record(
        contact=objector, purpose="profiling", channel="any", granted=False, source="admin", at=now
    )
    payload = fit_json()
    assert payload["customers"] == 599
    row = ContactScore.objects.get(contact=objector)
    assert row.clv is None and row.p_alive is None and row.clv_model is None
    assert ContactScore.objects.filter(clv__isnull=False).count() == 599


def test_purchases_without_a_numeric_amount_still_count_as_purchases(customers, now):
    ids, _sim = customers
    Event.objects.filter(contact_id=ids[1]).update(properties={"amount": "n/a"})
    payload = fit_json()
    assert payload["customers"] == 600
    assert ContactScore.objects.get(contact_id=ids[1]).clv >= 0
