"""An Analyst trains the CLV and propensity models from buttons on the predictive models page:
a job row shows the state while a real worker trains, then the new version and its scores."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone

from segments.scoring.jobs import scoring_job_request, scoring_job_run
from segments.scoring.models import ContactScore, ScoringJob, ScoringModel
from tests.scoring.conftest import load_customers
from tests.workers import celery_worker, wait_until

LIST = "/admin/scoring/scoringmodel/"
TRAIN = "/admin/scoring/scoringmodel/train/"
STATUS = "/admin/scoring/scoringmodel/train/status/"


def _login(client, role: str) -> User:
    user = User.objects.create_user(f"{role.lower()}-user", password="x", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client.force_login(user)
    return user


@pytest.mark.django_db(transaction=True)
def test_analyst_trains_the_clv_model_from_the_button_with_a_real_worker(
    client, isolated_broker, settings
):
    from ops.roles import roles_sync

    roles_sync()
    settings.SCORING_CLV_MIN_CUSTOMERS = 100
    load_customers(n=250, seed=5, now=timezone.now().replace(microsecond=0))
    _login(client, "Analyst")

    page = client.get(LIST, HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert 'id="train-clv"' in page and 'id="train-churn"' in page and 'id="train-purchase"' in page

    queued = client.post(TRAIN, {"kind": "clv"}, HTTP_ACCEPT_LANGUAGE="fr", follow=True)
    page = queued.content.decode()
    assert "Entraînement de « Customer lifetime value" in page or "Entraînement de «" in page
    assert "Entraînement en cours… cette page se rafraîchit" in page
    assert client.get(STATUS).json()["pending"] is True
    job = ScoringJob.objects.get()
    assert (job.kind, job.status) == ("clv", "queued")
    # A second click while it is pending does not queue a second training.
    client.post(TRAIN, {"kind": "clv"})
    assert ScoringJob.objects.count() == 1

    with celery_worker(broker_url="filesystem://", broker_folder=isolated_broker, queues="ml"):
        wait_until(
            lambda: ScoringJob.objects.get(pk=job.pk).status not in ("queued", "running"),
            timeout=180,
            what="the worker to train the CLV model",
        )
    job.refresh_from_db()
    assert job.status == "succeeded", job.message
    model = ScoringModel.objects.get(kind="clv", active=True)
    assert job.model == model and ContactScore.objects.filter(clv__isnull=False).count() >= 200
    status = client.get(STATUS).json()
    assert status["pending"] is False and status["jobs"][0]["status"] == "succeeded"
    page = client.get(LIST, HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert "Réussi" in page and f"/admin/scoring/scoringmodel/{model.pk}/report/" in page
    assert "contacts scorés" in page and "Entraînement en cours" not in page


@pytest.mark.django_db
def test_a_training_that_cannot_fit_is_shown_failed_with_its_reason(client):
    _login(client, "Analyst")
    job = scoring_job_request(kind="churn")
    scoring_job_run(job_id=job.pk)  # what the worker runs; there is no history to learn from
    job.refresh_from_db()
    assert job.status == "failed" and job.message
    page = client.get(LIST).content.decode()
    assert "Failed" in page and job.message.split(":")[0] in page
    # Running the same job again (a broker redelivery) changes nothing.
    assert scoring_job_run(job_id=job.pk).status == "failed"


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["Marketer", "DPO"])
def test_only_analysts_may_train(client, role):
    _login(client, role)
    assert client.post(TRAIN, {"kind": "clv"}).status_code == 403
    assert 'id="train-clv"' not in client.get(LIST).content.decode()
    assert not ScoringJob.objects.exists()


@pytest.mark.django_db
def test_train_is_post_only_and_refuses_an_unknown_kind(client):
    _login(client, "Analyst")
    assert client.get(TRAIN).status_code == 405
    response = client.post(TRAIN, {"kind": "astrology"}, follow=True)
    assert "Unknown model kind." in response.content.decode()
    assert not ScoringJob.objects.exists()
