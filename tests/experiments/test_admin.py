"""Admin: experiments link to their results, plan the sample size, start and pick a winner."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from experiments.models import DecisionKind, ExperimentStatus
from tests.experiments.builders import make_experiment

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser("admin", "admin@example.fr", "pw"))
    return client


def test_change_page_links_to_results_and_plans_the_sample(admin_client):
    experiment = make_experiment(baseline_rate=0.1, minimum_detectable_effect=0.2)
    html = admin_client.get(
        f"/admin/experiments/experiment/{experiment.pk}/change/", HTTP_ACCEPT_LANGUAGE="en"
    ).content.decode()
    assert f"/experiments/{experiment.pk}/results/" in html
    assert "3,835 contacts per variant" in html


def test_start_action_refuses_an_experiment_without_control(admin_client):
    ok = make_experiment(status=ExperimentStatus.DRAFT, started_at=None)
    broken = make_experiment(
        status=ExperimentStatus.DRAFT,
        started_at=None,
        arms=(("A", 1, False, False), ("B", 1, False, False)),
    )
    response = admin_client.post(
        "/admin/experiments/experiment/",
        {"action": "start_experiments", "_selected_action": [ok.pk, broken.pk]},
        HTTP_ACCEPT_LANGUAGE="en",
        follow=True,
    )
    ok.refresh_from_db()
    broken.refresh_from_db()
    assert ok.status == ExperimentStatus.RUNNING and ok.started_at is not None
    assert broken.status == ExperimentStatus.DRAFT
    assert "Exactly one variant must be the control." in response.content.decode()


def test_marketer_picks_the_winner_from_the_variant_list(admin_client):
    experiment = make_experiment(status=ExperimentStatus.AWAITING_DECISION)
    b = experiment.variants.get(key="B")
    admin_client.post(
        "/admin/experiments/variant/",
        {"action": "send_to_remainder", "_selected_action": [b.pk]},
        follow=True,
    )
    experiment.refresh_from_db()
    assert experiment.winner == b and experiment.status == ExperimentStatus.ROLLING_OUT
    assert experiment.decisions.get().kind == DecisionKind.MANUAL
