"""Buttons on an object's own page (experiment, segment, cluster model, rights request): the
confirmation page states the effect and changes nothing; the confirmed POST runs the service;
a person without the permission neither sees the button nor gets a forged POST through."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User

from consent.models import RightsRequest
from experiments.models import DecisionLog, ExperimentStatus, Metric
from ops.roles import roles_sync
from segments.ml.models import ClusterModel, TrainingRun
from tests.experiments.builders import T0, assign, events, make_experiment
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db


def person(client, role: str) -> User:
    roles_sync()
    user = User.objects.create_user(role.lower(), password="x", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client.force_login(user)
    return user


def test_marketer_starts_and_stops_an_experiment_from_its_page(client):
    person(client, "Marketer")
    experiment = make_experiment(status=ExperimentStatus.DRAFT, started_at=None)
    url = f"/admin/experiments/experiment/{experiment.pk}/"
    assert f"{url}start/" in client.get(url + "change/").text

    confirm = client.get(url + "start/").text
    assert "keeps it for the life of the experiment" in confirm
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.DRAFT

    done = client.post(url + "start/", {"confirm": "yes"}, follow=True).text
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.RUNNING and "started" in done
    assert "Start (already started)" in client.get(url + "change/").text

    client.post(url + "stop/", {"confirm": "yes"})
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.COMPLETED
    assert not DecisionLog.objects.exists()  # nothing was sent to the remainder


def test_send_winner_refused_without_a_significant_winner_and_sent_with_one(client):
    person(client, "Marketer")
    even = make_experiment(primary_metric=Metric.CLICK)
    events(assign(even, "A", 500)[:100], "email_click")
    events(assign(even, "B", 500)[:102], "email_click")
    url = f"/admin/experiments/experiment/{even.pk}/send-winner/"

    page = client.get(url).text
    assert "No variant is significantly better than the control" in page
    assert 'id="confirm-button"' not in page
    client.post(url, {"confirm": "yes"})
    assert not DecisionLog.objects.exists()

    clear = make_experiment(primary_metric=Metric.CLICK)
    events(assign(clear, "A", 2000)[:200], "email_click")
    events(assign(clear, "B", 2000)[:300], "email_click")
    url = f"/admin/experiments/experiment/{clear.pk}/send-winner/"
    assert "Variant B (" in client.get(url).text
    client.post(url, {"confirm": "yes"})
    clear.refresh_from_db()
    assert clear.status == ExperimentStatus.ROLLING_OUT and clear.winner.key == "B"


def test_analyst_may_not_send_a_winner(client):
    person(client, "Analyst")
    experiment = make_experiment(primary_metric=Metric.CLICK, started_at=T0 - timedelta(days=1))
    assert (
        "/send-winner/"
        not in client.get(f"/admin/experiments/experiment/{experiment.pk}/change/").text
    )
    forged = client.post(
        f"/admin/experiments/experiment/{experiment.pk}/send-winner/", {"confirm": "yes"}
    )
    assert forged.status_code == 403


def test_recompute_button_shows_the_size_after(client):
    from segments.services import segment_create

    person(client, "Marketer")
    ContactFactory.create_batch(3, country="FR")
    ContactFactory.create_batch(2, country="DE")
    segment = segment_create(
        name="France", rule={"type": "field", "field": "country", "op": "eq", "value": "FR"}
    )
    url = f"/admin/segments/segment/{segment.pk}/recompute/"
    assert "not been computed yet" in client.get(url).text

    done = client.post(url, {"confirm": "yes"}, follow=True).text

    assert "“France” recomputed: 3 contacts (before: 0)." in done


def test_cluster_training_button_queues_one_training_and_dpo_is_refused(client):
    model = ClusterModel.objects.create(name="shoppers", k=3, seed=2)
    url = f"/admin/segments_ml/clustermodel/{model.pk}/train/"
    person(client, "DPO")
    assert client.post(url, {"confirm": "yes"}).status_code == 403
    assert not TrainingRun.objects.exists()

    person(client, "Analyst")
    assert "fits 3 clusters" in client.get(url).text
    page = client.post(url, {"confirm": "yes"}, follow=True).text
    assert "This page follows its progress" in page
    assert 'data-status="queued"' in page and "data-pending" in page
    assert "already queued or running" in client.get(url).text
    assert TrainingRun.objects.get().status == "queued"


def test_dpo_carries_out_an_erasure_from_its_page_and_a_marketer_may_not(client):
    contact = ContactFactory(email="lea@example.fr")
    request = RightsRequest.objects.create(
        kind="erasure", contact=contact, requester=contact.email, received_at=T0
    )
    url = f"/admin/consent/rightsrequest/{request.pk}/carry-out/"
    person(client, "Marketer")
    assert client.post(url, {"confirm": "yes"}).status_code == 403

    person(client, "DPO")
    assert url in client.get(f"/admin/consent/rightsrequest/{request.pk}/change/").text
    confirm = client.get(url).text
    assert "erased for good" in confirm and contact.external_id in confirm
    request.refresh_from_db()
    assert request.completed_at is None

    done = client.post(url, {"confirm": "yes"}, follow=True).text
    request.refresh_from_db()
    contact.refresh_from_db()
    assert "is carried out" in done
    assert request.completed_at is not None and contact.email == ""
    assert "Already carried out" in client.get(url).text
