"""Propensity models on seed_demo data with a time split; bad input; live features untouched."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from segments.models import ContactFeatures
from segments.scoring.models import ContactScore, ModelKind, ScoringModel
from segments.services import features_refresh

pytestmark = pytest.mark.django_db


def seed(seed: int, contacts: int = 2_500) -> None:
    call_command(
        "seed_demo", contacts=contacts, events_per_contact=20, seed=seed, stdout=StringIO()
    )
    features_refresh()


def train(*args: str) -> str:
    out = StringIO()
    call_command("train_propensity", *args, stdout=out)
    return out.getvalue()


@pytest.mark.parametrize("demo_seed", [1, 2, 3])
def test_churn_model_ranks_held_out_churners_well_above_chance(demo_seed):
    seed(demo_seed)
    live_before = ContactFeatures.objects.order_by("pk").values_list("pk", "as_of")[:50]
    live_before = list(live_before)
    output = train("--target", "churn", "--horizon", "90")
    model = ScoringModel.objects.get(kind=ModelKind.CHURN, active=True)
    assert f"AUC {model.auc:.4f}" in output and f"Brier {model.brier:.4f}" in output
    assert model.auc > 0.75, model.parameters
    assert model.brier < 0.25
    # Customers are scored, with probabilities; the live feature table was not touched.
    assert ContactScore.objects.filter(churn__isnull=False).count() == model.scored_contacts > 0
    assert list(ContactFeatures.objects.order_by("pk").values_list("pk", "as_of")[:50]) == (
        live_before
    )
    assert len(model.report["importances"]) > 0
    assert len(model.report["calibration"]["predicted"]) > 0


def test_purchase_model_ranks_next_month_buyers_well_above_chance():
    seed(4)
    output = train("--target", "purchase", "--horizon", "30")
    model = ScoringModel.objects.get(kind=ModelKind.PURCHASE, active=True)
    assert "AUC" in output
    assert model.auc > 0.7, model.parameters
    scores = ContactScore.objects.filter(purchase_30d__isnull=False)
    assert scores.count() == model.scored_contacts
    assert all(0 <= s.purchase_30d <= 1 for s in scores[:100])


def test_held_out_period_in_the_future_is_refused(db):
    seed(5, contacts=300)
    as_of = (timezone.now() - timedelta(days=10)).date().isoformat()
    with pytest.raises(CommandError, match="ends after today"):
        train("--target", "churn", "--as-of", as_of, "--horizon", "90")
    assert not ScoringModel.objects.exists()


def test_too_few_contacts_is_refused_and_scores_are_kept(db, settings):
    seed(6, contacts=300)
    settings.SCORING_MIN_TRAINING_ROWS = 100_000
    with pytest.raises(CommandError, match="Too little history"):
        train("--target", "purchase")
    assert not ContactScore.objects.exists()
