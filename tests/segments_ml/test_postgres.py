"""The whole flow on real PostgreSQL (COPY, PostgreSQL SQL dialect) with a real Celery worker
consuming the ``ml`` queue through a real Redis."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from celery import Celery
from django.core.management import call_command
from sklearn.metrics import adjusted_rand_score

from segments.ml.models import ClusterAssignment, ClusterModel, ClusterModelVersion, TrainingRun
from segments.ml.services import cluster_model_configure, cluster_model_train
from segments.models import SegmentMembership
from segments.services import segment_create, segments_compute
from tests.segments_ml.conftest import true_personas
from tests.workers import celery_worker, wait_until

pytestmark = [pytest.mark.postgres]


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_worker_on_ml_queue_trains_and_clusters_match_personas(redis_url, tmp_path):
    call_command("seed_demo", contacts=3000, events_per_contact=30, seed=31, verbosity=0)
    model = ClusterModel.objects.create(name="pg-personas", auto_k_min=3, auto_k_max=7)
    producer = Celery("test-producer", broker=redis_url, set_as_current=False)

    with celery_worker(
        broker_url=redis_url, queues="ml", extra_env={"MEDIA_ROOT": str(tmp_path / "media")}
    ):
        producer.send_task(
            "segments.ml.tasks.train_cluster_model", args=[model.pk, "manual", None], queue="ml"
        )
        wait_until(
            lambda: TrainingRun.objects.filter(model=model).exclude(status="running").exists(),
            timeout=240,
            what="the ml worker to finish training",
        )

    assert TrainingRun.objects.get(model=model).status == "succeeded"
    version = ClusterModelVersion.objects.get(model=model, is_active=True)
    rows = np.array(
        list(
            ClusterAssignment.objects.filter(version=version)
            .order_by("contact_id")
            .values_list("contact_id", "stable_id")
        )
    )
    assert version.metrics["k"] == 5
    assert adjusted_rand_score(true_personas(rows[:, 0]), rows[:, 1]) >= 0.9


@pytest.mark.django_db
def test_copy_assignments_migration_matrix_memberships_and_export(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    call_command("seed_demo", contacts=2500, events_per_contact=25, seed=32, verbosity=0)
    model = ClusterModel.objects.create(name="pg-stable", k=5, seed=1)
    first = cluster_model_train(model=model)
    segment = segment_create(
        name="PG cluster 2", rule={"type": "cluster", "model": "pg-stable", "cluster": 2}
    )
    segments_compute(segment_ids=[segment.pk])
    members = set(
        SegmentMembership.objects.filter(segment=segment, exited_at__isnull=True).values_list(
            "contact_id", flat=True
        )
    )
    assert members == set(
        ClusterAssignment.objects.filter(version=first, stable_id=2).values_list(
            "contact_id", flat=True
        )
    )

    cluster_model_configure(model=model, seed=77)
    second = cluster_model_train(model=model)
    out = tmp_path / "export.csv"
    call_command("train_clusters", "--model", "pg-stable", "--export", str(out), verbosity=0)

    assert second.migration["stayed_share"] >= 0.95
    assert second.migration["common"] == first.contacts_assigned
    third = ClusterModel.objects.get(name="pg-stable").active_version
    assert third.number == 3
    # Only the active and the previous version keep their assignments.
    assert not ClusterAssignment.objects.filter(version=first).exists()
    exported = list(csv.reader(out.open()))
    assert (
        len(exported) - 1
        == third.contacts_assigned
        == ClusterAssignment.objects.filter(version=third).count()
    )
