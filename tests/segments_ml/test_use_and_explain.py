"""Clusters used in rule segments, explained in words and trees, exported, watched for drift."""

from __future__ import annotations

import csv
from datetime import timedelta

import numpy as np
import pytest
from django.core.management import call_command
from django.utils import translation

from contacts.models import Event
from segments.ml.explain import profile_words
from segments.ml.models import ClusterAssignment, ClusterModel, DriftReport, TrainingRun
from segments.ml.services import (
    cluster_label_set,
    cluster_model_configure,
    cluster_model_train,
    cluster_models_monitor,
    segment_from_surrogate_leaf,
)
from segments.models import SegmentMembership
from segments.services import segment_create, segments_compute


def _members(segment) -> set[int]:
    return set(
        SegmentMembership.objects.filter(segment=segment, exited_at__isnull=True).values_list(
            "contact_id", flat=True
        )
    )


def _assigned(version, stable_id) -> set[int]:
    return set(
        ClusterAssignment.objects.filter(version=version, stable_id=stable_id).values_list(
            "contact_id", flat=True
        )
    )


@pytest.fixture
def trained(seed_population):
    seed_population(1500, 30, 4)
    model = ClusterModel.objects.create(name="shoppers", k=5, seed=2)
    return model, cluster_model_train(model=model)


def test_cluster_condition_follows_the_active_version(trained):
    model, first = trained
    segment = segment_create(
        name="Cluster 1", rule={"type": "cluster", "model": "shoppers", "cluster": 1}
    )
    segments_compute(segment_ids=[segment.pk])
    assert _members(segment) == _assigned(first, 1) and _members(segment)

    cluster_model_configure(model=model, k=3)
    second = cluster_model_train(model=model)
    segments_compute(segment_ids=[segment.pk])

    assert _members(segment) == _assigned(second, 1)
    assert _members(segment) != _assigned(first, 1)


def test_tree_leaf_becomes_an_editable_rule_segment(trained):
    _model, version = trained
    assert version.surrogate["fidelity"] >= 0.9
    leaf = max(version.surrogate["leaves"], key=lambda leaf: leaf["support"])

    segment = segment_from_surrogate_leaf(version=version, leaf=leaf["leaf"])
    segments_compute(segment_ids=[segment.pk])

    assert {c["type"] for c in segment.rule["all"]} == {"ml_feature"}
    members = _members(segment)
    in_cluster = members & _assigned(version, leaf["cluster"])
    assert len(members) > 50
    assert len(in_cluster) / len(members) >= 0.8


def test_profiles_are_plain_words_in_french_and_english(trained):
    model, version = trained
    big = max(version.clusters.all(), key=lambda c: c.zscores["avg_basket"])
    with translation.override("en"):
        english = profile_words(big.zscores)
    with translation.override("fr"):
        french = profile_words(big.zscores)
    assert "big baskets" in english
    assert "gros paniers" in french


def test_command_trains_prints_metrics_and_exports(seed_population, tmp_path, capsys):
    seed_population(1200, 20, 6)
    out = tmp_path / "clusters.csv"

    call_command("train_clusters", "--k", "4", "--seed", "3", "--export", str(out))

    printed = capsys.readouterr().out
    assert "default v1 active: 4 clusters" in printed and "silhouette" in printed
    rows = list(csv.reader(out.open()))
    version = ClusterModel.objects.get(name="default").active_version
    assert rows[0] == ["external_id", "cluster"]
    assert len(rows) - 1 == version.contacts_assigned
    assert {int(r[1]) for r in rows[1:]} == {1, 2, 3, 4}


def test_monitor_retrains_on_drift_and_says_why(trained):
    model, first = trained
    quiet = cluster_models_monitor(now=first.trained_at + timedelta(hours=1))
    assert "no drift" in quiet[0]
    assert DriftReport.objects.get(model=model).drifted is False

    # Behaviour changes: every contact browses a lot (new events, folded into the counters).
    Event.objects.bulk_create(
        Event(
            contact_id=cid,
            type="page_view",
            occurred_at=first.trained_at - timedelta(hours=(cid * 7 + i) % 500),
            channel="web",
            device="mobile",
            source="test",
            idempotency_key=f"drift-{cid}-{i}",
        )
        for cid in ClusterAssignment.objects.filter(version=first).values_list(
            "contact_id", flat=True
        )
        for i in range(40)
    )
    cluster_models_monitor(now=first.trained_at + timedelta(hours=2))

    report = DriftReport.objects.filter(model=model).first()
    assert report.drifted and report.max_psi > 0.2
    new = model.active_version
    assert new.number == 2 and new.trigger == "drift" and new.reason.startswith("drift: PSI")
    assert report.action == "retrained: v2"
    run = TrainingRun.objects.filter(model=model, trigger="drift").get()
    assert run.status == "succeeded" and run.reason == new.reason


def test_admin_page_charts_are_the_stored_sample_per_cluster_with_its_size_in_the_title(
    trained, admin_client
):
    """The projections draw the sample stored at training (one trace per cluster, every point
    once), say how many contacts it holds, and the bars show each cluster's size."""
    import json
    import re

    from django.utils.formats import number_format

    model, version = trained
    cluster_label_set(model=model, stable_id=1, name="Fidèles")
    url = f"/admin/segments_ml/clustermodelversion/{version.pk}/change/"

    page = admin_client.get(url, HTTP_ACCEPT_LANGUAGE="fr").content.decode()

    charts = {
        c["id"]: c["figure"]
        for c in json.loads(re.search(r'id="ml-figures"[^>]*>(.*?)</script>', page, re.S)[1])
    }
    assert list(charts) == ["ml-pca", "ml-tsne", "ml-sizes", "ml-profiles"]
    labels = version.projection["labels"]
    pca = charts["ml-pca"]
    with translation.override("fr"):
        sample = number_format(len(labels), force_grouping=True)
    assert pca["layout"]["title"]["text"] == (
        f"Projection ACP d’un échantillon aléatoire de {sample} contacts"
    )
    assert sorted(len(t["x"]) for t in pca["data"]) == sorted(labels.count(s) for s in set(labels))
    assert "Fidèles" in [t["name"] for t in pca["data"]]
    tsne = charts["ml-tsne"]["layout"]["title"]["text"]
    assert tsne.startswith("t-SNE d’un échantillon aléatoire de ")
    clusters = list(version.clusters.order_by("stable_id"))
    assert charts["ml-sizes"]["data"][0]["y"] == [c.size for c in clusters]
    assert "template" not in pca["layout"]  # plotly.js defaults, not plotly.py's 8 KB template


def test_monitor_retrains_monthly(trained):
    model, first = trained
    cluster_models_monitor(now=first.trained_at + timedelta(days=31))
    new = model.active_version
    assert new.number == 2 and new.trigger == "schedule"
    assert new.reason.startswith("monthly: last trained on")


def test_admin_page_shows_charts_names_and_makes_segments(trained, admin_client):
    model, version = trained
    cluster_label_set(model=model, stable_id=1, name="Fidèles")
    url = f"/admin/segments_ml/clustermodelversion/{version.pk}/change/"

    page = admin_client.get(url).content.decode()

    assert "vendor/plotly/plotly-cartesian.min.js" in page and "cdn.plot.ly" not in page
    assert "Fidèles" in page and "ml-tsne" in page and "ml-profiles" in page
    leaf = version.surrogate["leaves"][0]["leaf"]
    response = admin_client.post(
        f"/admin/segments_ml/clustermodelversion/{version.pk}/segment-from-leaf/{leaf}/"
    )
    assert response.status_code == 302
    from segments.models import Segment

    assert Segment.objects.filter(rule__all__0__type="ml_feature").count() == 1
    assert np.isfinite(version.metrics["silhouette"])


def test_erasing_a_contact_forgets_its_ml_data(trained):
    from contacts.signals import contact_erasing
    from segments.ml.models import ContactMlFeatures

    _model, version = trained
    contact_id = ClusterAssignment.objects.filter(version=version).values_list(
        "contact_id", flat=True
    )[0]

    contact_erasing.send(sender=None, contact_id=contact_id)

    assert not ClusterAssignment.objects.filter(contact_id=contact_id).exists()
    assert not ContactMlFeatures.objects.filter(contact_id=contact_id).exists()


def test_admin_rejects_unknown_features_and_a_second_click_makes_a_second_segment(
    trained, admin_client
):
    from segments.models import Segment

    model, version = trained
    page = admin_client.post(
        f"/admin/segments_ml/clustermodel/{model.pk}/change/",
        {
            "title": "Shoppers",
            "features": ["events_total", "shoe_size"],
            "algorithm": "kmeans",
            "auto_k_min": 2,
            "auto_k_max": 10,
            "imputer": "knn",
            "reduction": "none",
            "sample_size": 1000,
            "seed": 1,
            "dbscan_eps": 1.5,
            "dbscan_min_samples": 10,
            "labels-TOTAL_FORMS": 0,
            "labels-INITIAL_FORMS": 0,
        },
    ).content.decode()
    assert "Unknown feature: shoe_size. Pick features from the list." in page
    leaf = version.surrogate["leaves"][0]["leaf"]
    url = f"/admin/segments_ml/clustermodelversion/{version.pk}/segment-from-leaf/{leaf}/"
    admin_client.post(url)
    admin_client.post(url)
    names = sorted(Segment.objects.values_list("name", flat=True))
    assert len(names) == 2 and names[1] == names[0] + " (2)"
