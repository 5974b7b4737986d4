"""Training end to end on real data flow: seed_demo → SQL features → pipeline → assignments."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from consent.selectors import without_profiling_objection
from contacts.models import Contact
from segments.ml.models import ClusterAssignment, ClusterLabel, ClusterModel, TrainingRun
from segments.ml.services import cluster_label_set, cluster_model_configure, cluster_model_train
from tests.segments_ml.conftest import true_personas


def _assignments(version) -> tuple[np.ndarray, np.ndarray]:
    rows = np.array(
        list(
            ClusterAssignment.objects.filter(version=version)
            .order_by("contact_id")
            .values_list("contact_id", "stable_id")
        )
    )
    return rows[:, 0], rows[:, 1]


@pytest.mark.parametrize("seed", [11, 23])
def test_clusters_recover_demo_personas(seed_population, seed):
    seed_population(3000, 30, seed)
    model = ClusterModel.objects.create(name="personas", auto_k_min=2, auto_k_max=8)

    version = cluster_model_train(model=model)

    contact_ids, clusters = _assignments(version)
    assert version.is_active and version.metrics["k"] == 5
    assert adjusted_rand_score(true_personas(contact_ids), clusters) >= 0.9
    assert version.surrogate["fidelity"] >= 0.9
    # Every eligible contact is assigned, nobody who objected to profiling is.
    eligible = set(without_profiling_objection(Contact.objects.all()).values_list("pk", flat=True))
    assert set(contact_ids.tolist()) == eligible
    assert len(eligible) < Contact.objects.count()  # the demo has objections
    assert sum(c.size for c in version.clusters.all()) == len(eligible)


def test_retraining_keeps_stable_identities_and_names(seed_population):
    seed_population(2000, 30, 5)
    model = ClusterModel.objects.create(name="stable", k=5, seed=1)
    first = cluster_model_train(model=model)
    big_buyers = max(first.clusters.all(), key=lambda c: c.feature_means["avg_basket"] or 0)
    cluster_label_set(model=model, stable_id=big_buyers.stable_id, name="Gros paniers")

    cluster_model_configure(model=model, seed=99)  # another seed: other initialisation
    second = cluster_model_train(model=model)

    first.refresh_from_db()
    assert second.is_active and not first.is_active
    assert second.migration["previous_version"] == 1
    assert second.migration["stayed_share"] >= 0.95
    new_big = max(second.clusters.all(), key=lambda c: c.feature_means["avg_basket"] or 0)
    assert new_big.stable_id == big_buyers.stable_id
    assert ClusterLabel.objects.get(model=model, stable_id=new_big.stable_id).name == "Gros paniers"
    ids_first, clusters_first = _assignments(first)
    ids_second, clusters_second = _assignments(second)
    assert np.array_equal(ids_first, ids_second)
    assert (clusters_first == clusters_second).mean() >= 0.95
    assert TrainingRun.objects.filter(model=model, status="succeeded").count() == 2


@pytest.mark.parametrize(
    ("algorithm", "reduction", "imputer"),
    [
        ("minibatch", "none", "knn"),
        ("agglomerative", "pca", "knn"),
        ("kmeans", "autoencoder", "iterative"),
    ],
)
def test_every_algorithm_assigns_every_contact(seed_population, algorithm, reduction, imputer):
    seed_population(1500, 30, 7)
    model = ClusterModel.objects.create(
        name=f"alg-{algorithm}", algorithm=algorithm, reduction=reduction, imputer=imputer, k=5
    )

    version = cluster_model_train(model=model)

    contact_ids, clusters = _assignments(version)
    assert version.metrics["k"] == 5
    assert set(np.unique(clusters)) == {1, 2, 3, 4, 5}
    assert adjusted_rand_score(true_personas(contact_ids), clusters) >= 0.8
    if reduction == "pca":
        assert version.metrics["explained_variance"] >= 0.95


def test_dbscan_noise_becomes_the_unassigned_group(seed_population):
    seed_population(1500, 30, 8)
    model = ClusterModel.objects.create(
        name="density", algorithm="dbscan", dbscan_eps=1.5, dbscan_min_samples=10
    )

    version = cluster_model_train(model=model)

    contact_ids, clusters = _assignments(version)
    sizes = {c.stable_id: c.size for c in version.clusters.all()}
    assert 0 in sizes and sizes[0] == (clusters == 0).sum() > 0  # noise, its own group
    assert version.metrics["k"] >= 4
    assert 0 < version.metrics["noise_share"] < 0.3
    clustered = clusters > 0
    truth = true_personas(contact_ids)
    assert adjusted_rand_score(truth[clustered], clusters[clustered]) >= 0.8
