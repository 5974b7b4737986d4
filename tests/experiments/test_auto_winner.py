"""Auto-winner: the winner reaches the remainder only when significant and guardrails hold."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings

from experiments.models import DecisionKind, DecisionLog, ExperimentStatus, Fallback, Metric
from experiments.services import (
    auto_winner_decide,
    variant_keys_for_contacts,
    winner_choose,
)
from experiments.tasks import decide_auto_winners
from tests.experiments.builders import T0, assign, events, make_contacts, make_experiment

pytestmark = pytest.mark.django_db
AFTER_WAIT = T0 + timedelta(hours=25)


def auto_experiment(control_clicks, b_clicks, n=2000, **fields):
    fields.setdefault("fallback", Fallback.CONTROL)
    experiment = make_experiment(
        primary_metric=Metric.CLICK,
        auto_winner=True,
        sample_share=0.2,
        decision_wait_hours=24,
        **fields,
    )
    a = assign(experiment, "A", n)
    b = assign(experiment, "B", n)
    events(a[:control_clicks], "email_click")
    events(b[:b_clicks], "email_click")
    return experiment, a, b


def test_significant_winner_is_sent_to_the_remainder_only():
    experiment, a, b = auto_experiment(200, 300)
    log = auto_winner_decide(experiment=experiment, now=AFTER_WAIT)
    experiment.refresh_from_db()
    assert log.kind == DecisionKind.WINNER and log.variant.key == "B"
    assert experiment.status == ExperimentStatus.ROLLING_OUT and experiment.winner.key == "B"
    click = next(c for c in log.numbers["comparisons"] if c["metric"] == "click")
    assert click["p_value_adjusted"] < 0.05 and click["verdict"] == "winner"
    assert "Variant B increases clicks" in log.reason
    remainder = make_contacts(50)
    keys = variant_keys_for_contacts(experiment=experiment, contact_ids=remainder + a[:5] + b[:5])
    assert all(keys[cid] == "B" for cid in remainder)
    assert all(keys[cid] is None for cid in a[:5] + b[:5])  # the test sample got its variant


def test_no_decision_before_the_wait_is_over():
    experiment, _a, _b = auto_experiment(200, 300)
    assert auto_winner_decide(experiment=experiment, now=T0 + timedelta(hours=23)) is None
    assert not DecisionLog.objects.exists()


def test_not_significant_falls_back_to_the_control():
    experiment, _a, _b = auto_experiment(200, 215)
    log = auto_winner_decide(experiment=experiment, now=AFTER_WAIT)
    assert log.kind == DecisionKind.FALLBACK_CONTROL and log.variant.key == "A"
    assert "No variant is significantly better" in log.reason
    remainder = make_contacts(10)
    experiment.refresh_from_db()
    keys = variant_keys_for_contacts(experiment=experiment, contact_ids=remainder)
    assert set(keys.values()) == {"A"}


def test_ask_fallback_sends_nothing_until_the_marketer_chooses():
    experiment, _a, _b = auto_experiment(200, 215, fallback=Fallback.ASK)
    log = auto_winner_decide(experiment=experiment, now=AFTER_WAIT)
    experiment.refresh_from_db()
    assert log.kind == DecisionKind.ASK_MARKETER and log.variant is None
    assert experiment.status == ExperimentStatus.AWAITING_DECISION
    remainder = make_contacts(10)
    assert set(
        variant_keys_for_contacts(experiment=experiment, contact_ids=remainder).values()
    ) == {None}
    manual = winner_choose(
        experiment=experiment, variant=experiment.variants.get(key="B"), decided_by="camille"
    )
    experiment.refresh_from_db()
    assert manual.kind == DecisionKind.MANUAL and manual.decided_by == "camille"
    assert set(
        variant_keys_for_contacts(experiment=experiment, contact_ids=remainder).values()
    ) == {"B"}


def test_guardrail_harm_blocks_the_winner():
    experiment, a, b = auto_experiment(200, 300)
    events(a[:10], "unsubscribe")
    events(b[:70], "unsubscribe")
    log = auto_winner_decide(experiment=experiment, now=AFTER_WAIT)
    assert log.kind == DecisionKind.BLOCKED_GUARDRAIL and log.variant.key == "A"
    assert "harms unsubscribes" in log.reason
    unsub = next(c for c in log.numbers["comparisons"] if c["metric"] == "unsubscribe")
    assert unsub["verdict"] == "loser"


def test_sample_ratio_mismatch_blocks_the_winner():
    experiment, _a, b = auto_experiment(200, 300)
    assign(experiment, "B", 400)  # B now has 2,400 recipients for 2,000 in A
    log = auto_winner_decide(experiment=experiment, now=AFTER_WAIT)
    assert log.kind == DecisionKind.FALLBACK_CONTROL
    assert log.numbers["srm_alert"] is True
    assert "Sample ratio mismatch" in log.reason


def test_a_decision_is_taken_once():
    experiment, _a, _b = auto_experiment(200, 300)
    assert auto_winner_decide(experiment=experiment, now=AFTER_WAIT) is not None
    assert auto_winner_decide(experiment=experiment, now=AFTER_WAIT + timedelta(hours=1)) is None
    assert DecisionLog.objects.count() == 1


def test_beat_task_decides_due_experiments():
    due, _a, _b = auto_experiment(200, 300, started_at=T0 - timedelta(days=30))
    auto_experiment(200, 300, started_at=None)  # never started: not due
    assert settings.CELERY_BEAT_SCHEDULE["experiments-auto-winner"]["task"] == (
        "experiments.tasks.decide_auto_winners"
    )
    assert decide_auto_winners() == 1
    assert DecisionLog.objects.get().experiment == due
