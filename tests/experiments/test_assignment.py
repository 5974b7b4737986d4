"""Assignment: deterministic, stored, weights respected, independent between experiments."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from experiments.assignment import buckets_for, variant_index_for
from experiments.models import Assignment, ExperimentKind, Variant
from experiments.services import (
    assign_variant,
    assignments_ensure,
    assignments_move_merged,
    targeting_assign,
    variant_keys_for_contacts,
)
from tests.experiments.builders import make_contacts, make_experiment

pytestmark = pytest.mark.django_db


def test_same_contact_gets_same_variant_on_every_call_and_it_is_stored():
    experiment = make_experiment()
    ids = make_contacts(300)
    first = assignments_ensure(experiment=experiment, contact_ids=ids)
    second = assignments_ensure(experiment=experiment, contact_ids=list(reversed(ids)))
    assert {cid: v.key for cid, v in first.items()} == {cid: v.key for cid, v in second.items()}
    assert Assignment.objects.filter(experiment=experiment).count() == 300
    assert set(first) == set(ids)


def test_stored_variant_wins_after_weights_change():
    experiment = make_experiment()
    ids = make_contacts(200)
    before = {
        cid: v.key for cid, v in assignments_ensure(experiment=experiment, contact_ids=ids).items()
    }
    Variant.objects.filter(experiment=experiment, key="B").update(weight=50)
    after = {
        cid: v.key for cid, v in assignments_ensure(experiment=experiment, contact_ids=ids).items()
    }
    assert before == after
    assert assign_variant(experiment=experiment, contact_id=ids[0]).key == before[ids[0]]


def test_buckets_are_the_same_in_another_process():
    """Another worker (another interpreter, another hash seed) computes the same buckets."""
    ids = list(range(1, 2001, 7))
    code = (
        "import sys, json; from experiments.assignment import buckets_for; "
        f"print(json.dumps(buckets_for('salt-x', {ids!r}).tolist()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123", "PATH": "/usr/bin:/bin"},
        cwd=str(Path(__file__).resolve().parents[2]),
    )
    assert json.loads(out.stdout) == buckets_for("salt-x", ids).tolist()


def test_weights_are_respected_chi_square():
    ids = np.arange(1, 60_001)
    weights = [1, 2, 7]
    index = variant_index_for(buckets_for("weights-salt", ids), weights)
    counts = np.bincount(index, minlength=3)
    expected = ids.size * np.array(weights) / sum(weights)
    assert sps.chisquare(counts, expected).pvalue > 0.001
    assert np.allclose(counts / ids.size, [0.1, 0.2, 0.7], atol=0.01)


def test_weights_are_respected_when_stored():
    experiment = make_experiment(arms=(("A", 3, True, False), ("B", 1, False, False)))
    ids = make_contacts(4000)
    assigned = assignments_ensure(experiment=experiment, contact_ids=ids)
    counts = [sum(v.key == k for v in assigned.values()) for k in ("A", "B")]
    assert sps.chisquare(counts, [3000, 1000]).pvalue > 0.001


def test_assignments_of_two_experiments_are_independent():
    ids = np.arange(1, 40_001)
    a = variant_index_for(buckets_for("experiment-one", ids), [1, 1])
    b = variant_index_for(buckets_for("experiment-two", ids), [1, 1, 1])
    table = np.zeros((2, 3))
    np.add.at(table, (a, b), 1)
    assert sps.chi2_contingency(table, correction=False).pvalue > 0.001
    assert not np.array_equal(a, variant_index_for(buckets_for("experiment-two", ids), [1, 1]))


def test_holdout_is_assigned_but_receives_nothing():
    experiment = make_experiment(
        arms=(("A", 1, True, False), ("B", 1, False, False), ("H", 1, False, True))
    )
    ids = make_contacts(600)
    keys = variant_keys_for_contacts(experiment=experiment, contact_ids=ids)
    stored = dict(
        Assignment.objects.filter(experiment=experiment).values_list("contact_id", "variant__key")
    )
    assert len(stored) == 600
    assert {k for k in stored.values()} == {"A", "B", "H"}
    for cid in ids:
        assert keys[cid] == (None if stored[cid] == "H" else stored[cid])


def test_auto_winner_tests_only_the_sample_share():
    experiment = make_experiment(auto_winner=True, sample_share=0.2)
    ids = make_contacts(3000)
    keys = variant_keys_for_contacts(experiment=experiment, contact_ids=ids)
    in_test = Assignment.objects.filter(experiment=experiment).count()
    assert 480 <= in_test <= 720  # 20 % of 3,000 ± 5 sd
    assert sum(k is not None for k in keys.values()) == in_test


def test_merged_contacts_keep_one_assignment_per_experiment():
    one = make_experiment()
    two = make_experiment()
    survivor, dup1, dup2 = make_contacts(3)
    assignments_ensure(experiment=one, contact_ids=[survivor, dup1])
    assignments_ensure(experiment=two, contact_ids=[dup1, dup2])
    survivor_variant = Assignment.objects.get(experiment=one, contact_id=survivor).variant_id
    dup1_variant_two = Assignment.objects.get(experiment=two, contact_id=dup1).variant_id
    assignments_move_merged(survivor_id=survivor, merged_ids=[dup1, dup2])
    assert (
        Assignment.objects.get(experiment=one, contact_id=survivor).variant_id == survivor_variant
    )
    assert (
        Assignment.objects.get(experiment=two, contact_id=survivor).variant_id == dup1_variant_two
    )
    assert not Assignment.objects.filter(contact_id__in=[dup1, dup2]).exists()
    assert Assignment.objects.count() == 2


def test_targeting_experiment_randomises_the_union_of_audiences():
    experiment = make_experiment(kind=ExperimentKind.TARGETING)
    ids = make_contacts(2000)
    cluster = ids[:1200]  # strategy A selects these
    rules = ids[800:]  # strategy B selects these; 400 overlap
    assigned = targeting_assign(experiment=experiment, audiences={"A": cluster, "B": rules})
    assert set(assigned) == set(ids)  # the whole union is randomised
    rows = Assignment.objects.filter(experiment=experiment)
    for key, audience in (("A", set(cluster)), ("B", set(rules))):
        arm = rows.filter(variant__key=key)
        assert set(arm.filter(targeted=True).values_list("contact_id", flat=True)) == {
            cid for cid in arm.values_list("contact_id", flat=True) if cid in audience
        }
    keys = variant_keys_for_contacts(experiment=experiment, contact_ids=ids)
    untargeted = set(rows.filter(targeted=False).values_list("contact_id", flat=True))
    assert untargeted and all(keys[cid] is None for cid in untargeted)
    assert all(keys[cid] == assigned[cid].key for cid in set(ids) - untargeted)


def test_ids_of_contacts_that_do_not_exist_are_not_assigned():
    experiment = make_experiment()
    ids = make_contacts(50)
    missing = max(ids) + 1_000
    assigned = assignments_ensure(experiment=experiment, contact_ids=[*ids, missing])
    assert set(assigned) == set(ids)
    assert not Assignment.objects.filter(contact_id=missing).exists()
