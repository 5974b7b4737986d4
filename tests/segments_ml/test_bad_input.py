"""Bad input gives a clear message and the previous active version keeps serving."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from segments.ml.models import ClusterAssignment, ClusterModel, ClusterModelVersion, TrainingRun
from segments.ml.pipeline import TrainingError
from segments.ml.services import (
    cluster_assignments_refresh,
    cluster_model_configure,
    cluster_model_train,
)
from tests.factories import ContactFactory, EventFactory


@pytest.fixture
def trained(seed_population):
    seed_population(1200, 20, 3)
    model = ClusterModel.objects.create(name="serving", k=5)
    version = cluster_model_train(model=model)
    return model, version


def _still_serving(model, version) -> None:
    assert ClusterModelVersion.objects.get(model=model, is_active=True) == version
    assert ClusterAssignment.objects.filter(version=version).count() == version.contacts_assigned


def test_all_missing_column_is_refused_and_previous_version_serves(trained):
    model, version = trained
    # No feature refresh has run: the segments features joined in are empty for everyone.
    cluster_model_configure(model=model, features=[*model.features, "engagement_score"])

    with pytest.raises(TrainingError, match="no value for any contact: engagement_score"):
        cluster_model_train(model=model)

    _still_serving(model, version)
    run = TrainingRun.objects.filter(model=model).first()
    assert run.status == "failed" and "engagement_score" in run.message


def test_feature_removed_since_training_is_refused_and_assignments_kept(trained):
    model, version = trained
    ClusterModelVersion.objects.filter(pk=version.pk).update(
        feature_names=[*version.feature_names, "loyalty_points"]
    )

    with pytest.raises(TrainingError, match="no longer exist: loyalty_points"):
        cluster_assignments_refresh(model=model)

    _still_serving(model, version)


def _small_population(n: int) -> None:
    """``n`` contacts with a few varied events each (factories)."""
    rng = np.random.default_rng(0)
    types = ["purchase", "page_view", "email_open", "app_open"]
    for contact in ContactFactory.create_batch(n):
        for day in range(int(rng.integers(2, 9))):
            kind = types[int(rng.integers(0, 4))]
            EventFactory(
                contact=contact,
                type=kind,
                device=["desktop", "mobile"][int(rng.integers(0, 2))],
                occurred_at=datetime(2026, 6, 1 + day, tzinfo=UTC),
                properties={"amount": float(rng.integers(10, 200))} if kind == "purchase" else {},
            )


def test_too_few_contacts_for_k_is_refused_by_the_command(db):
    _small_population(40)
    model = ClusterModel.objects.create(
        name="small",
        features=["events_total", "purchases", "avg_basket", "share_page_view", "share_mobile"],
    )
    call_command("train_clusters", "--model", "small", "--k", "3", verbosity=0)
    version = model.active_version

    with pytest.raises(CommandError, match=r"Too few contacts: 40 .* 5 clusters.*v1 keeps serving"):
        call_command("train_clusters", "--model", "small", "--k", "5", verbosity=0)

    _still_serving(model, version)


def test_constant_features_are_named(db):
    for i, contact in enumerate(ContactFactory.create_batch(40)):
        for _ in range(1 + i % 5):
            EventFactory(contact=contact, type="page_view", device="desktop", channel="web")
    model = ClusterModel.objects.create(
        name="flat", k=2, features=["events_total", "share_page_view", "share_desktop"]
    )

    with pytest.raises(
        TrainingError, match="same value for every contact: share_page_view, share_desktop"
    ):
        cluster_model_train(model=model, now=datetime(2026, 7, 1, tzinfo=UTC))

    assert not ClusterModelVersion.objects.filter(model=model).exists()


def test_unknown_feature_and_bad_range_are_refused_before_training(db):
    model = ClusterModel.objects.create(name="config")

    with pytest.raises(TrainingError, match="Unknown feature"):
        cluster_model_configure(model=model, features=["events_total", "shoe_size"])
    with pytest.raises(CommandError, match="MIN:MAX"):
        call_command("train_clusters", "--model", "config", "--auto-k", "8-2", verbosity=0)
