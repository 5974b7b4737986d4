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


def experiment_form_data(campaign, variants: list[dict]) -> dict:
    data = {
        "name": "Test de l'objet",
        "kind": "message",
        "campaign": campaign.pk,
        "primary_metric": "click",
        "conversion_event_type": "purchase",
        "conversion_window_days": 7,
        "guardrail_unsubscribe": "on",
        "guardrail_complaint": "on",
        "alpha": 0.05,
        "power": 0.8,
        "minimum_detectable_effect": 0.1,
        "msprt_tau2": 0.0001,
        "sample_share": 0.2,
        "decision_wait_hours": 24,
        "fallback": "control",
        "variants-TOTAL_FORMS": len(variants),
        "variants-INITIAL_FORMS": 0,
        "variants-MIN_NUM_FORMS": 0,
        "variants-MAX_NUM_FORMS": 1000,
        "decisions-TOTAL_FORMS": 0,
        "decisions-INITIAL_FORMS": 0,
        "decisions-MIN_NUM_FORMS": 0,
        "decisions-MAX_NUM_FORMS": 1000,
    }
    for i, variant in enumerate(variants):
        fields = {"position": i, "weight": 1, "name": variant["key"], **variant}
        data.update({f"variants-{i}-{k}": v for k, v in fields.items()})
    return data


def test_variant_template_is_chosen_from_existing_templates_and_must_fit_the_channel(
    admin_client, default_purposes
):
    from activation.models import TemplateVersion
    from experiments.models import Experiment
    from tests.factories import CampaignFactory, TemplateFactory

    campaign = CampaignFactory(channel="email")
    other_email = TemplateFactory(name="Rentrée", channel="email")
    sms_only = TemplateFactory(name="SMS flash", channel="sms", versions=False)
    TemplateVersion.objects.create(template=sms_only, locale="fr", sms_body="Flash !")

    page = admin_client.get("/admin/experiments/experiment/add/").content.decode()
    assert '<select name="variants-__prefix__-template"' in page
    assert ">Rentrée</option>" in page and ">SMS flash</option>" in page

    refused = admin_client.post(
        "/admin/experiments/experiment/add/",
        experiment_form_data(
            campaign,
            [{"key": "A", "is_control": "on"}, {"key": "B", "template": sms_only.pk}],
        ),
    )
    assert refused.status_code == 200
    assert "SMS flash" in refused.content.decode() and "Email" in refused.content.decode()
    assert not Experiment.objects.exists()

    saved = admin_client.post(
        "/admin/experiments/experiment/add/",
        experiment_form_data(
            campaign,
            [
                {"key": "A", "is_control": "on"},
                {"key": "B", "template": other_email.pk},
                {"key": "S", "channel": "sms", "template": sms_only.pk},
            ],
        ),
    )
    assert saved.status_code == 302
    experiment = Experiment.objects.get()
    templates = dict(experiment.variants.values_list("key", "template__name"))
    assert templates == {"A": None, "B": "Rentrée", "S": "SMS flash"}


def test_sms_variant_without_sms_content_or_with_a_subject_is_refused(
    admin_client, default_purposes
):
    from experiments.models import Experiment
    from tests.factories import CampaignFactory, TemplateFactory

    campaign = CampaignFactory(channel="email", template=TemplateFactory(channel="email"))
    campaign.template.versions.update(sms_body="")
    response = admin_client.post(
        "/admin/experiments/experiment/add/",
        experiment_form_data(
            campaign,
            [{"key": "A", "is_control": "on"}, {"key": "S", "channel": "sms", "subject": "Hé"}],
        ),
    )
    text = response.content.decode()
    assert response.status_code == 200 and not Experiment.objects.exists()
    assert "An SMS has no subject" in text
    assert "choose a template of that channel" in text.lower()
