"""The fast paths behind the 1M-contact benchmark give the same answers as the plain ones:
binary COPY reads and writes on PostgreSQL, and the pattern-grouped k-NN imputation."""

from __future__ import annotations

import numpy as np
import pytest
from django.utils import timezone

from segments.ml.catalogue import FEATURE_NAMES
from segments.ml.extraction import feature_matrix_read, features_snapshot_matrix
from segments.ml.models import ClusterAssignment, ClusterModel, ContactMlFeatures
from segments.ml.pipeline import PatternKNNImputer
from segments.ml.services import assignments_write, cluster_model_train


def test_knn_imputation_fills_each_missing_pattern_from_its_nearest_donors():
    rng = np.random.default_rng(5)
    groups = np.repeat([0.0, 10.0, 20.0], 200)  # three well separated groups of donors
    x = np.column_stack([groups + rng.normal(0, 0.1, 600) for _ in range(4)])
    truth = x.copy()
    holes = rng.random(x.shape) < 0.15
    holes[:, 0] &= ~holes[:, 1]  # every row keeps at least one observed column
    holes[holes.all(axis=1), 2] = False
    x[holes] = np.nan
    donors = x[::2]  # fitted on rows of every group
    filled = PatternKNNImputer(n_neighbors=5, seed=1).fit(donors).transform(x)

    assert not np.isnan(filled).any()
    assert np.array_equal(filled[~holes], truth[~holes])  # observed values untouched
    assert np.abs(filled[holes] - truth[holes]).max() < 1.0  # filled from the same group
    assert len({tuple(r) for r in holes.astype(int) if r.any()}) > 3  # several patterns


@pytest.mark.postgres
@pytest.mark.django_db
def test_binary_copy_read_matches_the_rows_with_missing_values_as_nan(seed_population):
    seed_population(400, 12, 3)
    matrix = features_snapshot_matrix(now=timezone.now(), names=list(FEATURE_NAMES))

    rows = list(
        ContactMlFeatures.objects.order_by("contact_id").values_list("contact_id", *FEATURE_NAMES)
    )
    expected = np.array([[np.nan if v is None else v for v in row[1:]] for row in rows])
    assert matrix.contact_ids.tolist() == [row[0] for row in rows]
    assert np.isnan(expected).any()  # the demo has contacts without purchases
    assert np.array_equal(matrix.values, expected, equal_nan=True)


@pytest.mark.postgres
@pytest.mark.django_db
def test_binary_copy_of_an_empty_snapshot_and_of_assignments(seed_population):
    empty = feature_matrix_read(names=["events_total", "avg_basket"])
    assert empty.values.shape == (0, 2)

    seed_population(300, 10, 4)
    version = cluster_model_train(model=ClusterModel.objects.create(name="copy-check", k=3))
    ids = np.array(sorted(ContactMlFeatures.objects.values_list("contact_id", flat=True)))
    stable = (np.arange(len(ids)) % 3 + 1).astype(np.int64)
    assert assignments_write(version=version, contact_ids=ids, stable_ids=stable) == len(ids)

    written = list(
        ClusterAssignment.objects.filter(version=version)
        .order_by("contact_id")
        .values_list("contact_id", "stable_id")
    )
    assert written == list(zip(ids.tolist(), stable.tolist(), strict=True))


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_snapshot_refreshes_both_succeed_with_one_row_per_contact(seed_population):
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    from segments.ml.extraction import eligible_contacts, features_snapshot_refresh

    seed_population(300, 8, 6)
    features_snapshot_refresh(now=timezone.now())

    def refresh() -> int:
        try:
            return features_snapshot_refresh(now=timezone.now(), chunk_contacts=50).contacts
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=2) as pool:
        written = [f.result() for f in [pool.submit(refresh), pool.submit(refresh)]]

    eligible = eligible_contacts().count()
    assert written == [eligible, eligible]
    assert ContactMlFeatures.objects.count() == eligible


@pytest.mark.parametrize(
    "database", [pytest.param("sqlite"), pytest.param("postgresql", marks=pytest.mark.postgres)]
)
@pytest.mark.django_db
def test_objection_after_a_snapshot_removes_the_contact_on_the_next_refresh(
    seed_population, database
):
    from consent.services.ledger import consent_record
    from segments.ml.extraction import eligible_contacts, features_snapshot_refresh

    seed_population(200, 6, 8)
    first = features_snapshot_refresh(now=timezone.now())
    objector = eligible_contacts().order_by("pk").values_list("pk", flat=True)[5]
    consent_record(
        contact=objector,
        purpose="profiling",
        channel="any",
        granted=False,
        source="preference_centre",
        at=timezone.now(),
    )

    second = features_snapshot_refresh(now=timezone.now())

    assert second.removed == 1
    assert second.contacts == first.contacts - 1
    assert not ContactMlFeatures.objects.filter(contact_id=objector).exists()
