"""An Analyst trains a cluster model from the admin list's action: the run shows *Queued*, then
a real worker trains it and the list and the model page show the outcome."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User

from segments.ml.models import ClusterModel, TrainingRun
from tests.workers import celery_worker, wait_until


@pytest.mark.django_db(transaction=True)
def test_cluster_training_from_the_admin_shows_its_progress(
    client, seed_population, isolated_broker
):
    from ops.roles import roles_sync

    roles_sync()
    seed_population(300, 10, 7)
    model = ClusterModel.objects.create(name="shoppers", k=3, seed=2)
    analyst = User.objects.create_user("analyst", password="x", is_staff=True)
    analyst.groups.add(Group.objects.get(name="Analyst"))
    client.force_login(analyst)

    listing = client.post(
        "/admin/segments_ml/clustermodel/",
        {"action": "train_now", "_selected_action": [model.pk]},
        follow=True,
        HTTP_ACCEPT_LANGUAGE="fr",
    ).content.decode()
    assert "« dernier entraînement » montre où il en est" in listing
    assert "⏳ En attente" in listing
    run = TrainingRun.objects.get(model=model)
    assert (run.status, run.requested_by) == ("queued", analyst)
    # A second click while it is queued does not queue another training.
    client.post(
        "/admin/segments_ml/clustermodel/", {"action": "train_now", "_selected_action": [model.pk]}
    )
    assert TrainingRun.objects.filter(model=model).count() == 1

    with celery_worker(broker_url="filesystem://", broker_folder=isolated_broker, queues="ml"):
        wait_until(
            lambda: TrainingRun.objects.get(pk=run.pk).status in ("succeeded", "failed"),
            timeout=180,
            what="the worker to train the cluster model",
        )
    run.refresh_from_db()
    assert run.status == "succeeded", run.message
    assert TrainingRun.objects.filter(model=model).count() == 1
    model.refresh_from_db()
    assert model.active_version is not None and run.version == model.active_version
    listing = client.get("/admin/segments_ml/clustermodel/").content.decode()
    assert "Succeeded — " in listing and "⏳" not in listing
    page = client.get(f"/admin/segments_ml/clustermodel/{model.pk}/change/").content.decode()
    assert "Training runs" in page and run.message[:20] in page


@pytest.mark.django_db
def test_dpo_may_not_train_a_cluster_model(client):
    model = ClusterModel.objects.create(name="shoppers", k=3, seed=2)
    dpo = User.objects.create_user("dpo", password="x", is_staff=True)
    dpo.groups.add(Group.objects.get(name="DPO"))
    client.force_login(dpo)
    client.post(
        "/admin/segments_ml/clustermodel/", {"action": "train_now", "_selected_action": [model.pk]}
    )
    assert not TrainingRun.objects.exists()
