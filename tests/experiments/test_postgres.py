"""The same results on PostgreSQL (JSON operators, date arithmetic), and concurrent workers
assigning the same contacts store one row each with the same variant."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections

from experiments.models import Assignment
from experiments.services import assignments_ensure
from tests.experiments import test_results as on_sqlite
from tests.experiments.builders import make_contacts, make_experiment

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def test_click_comparison_on_postgres():
    assert connection.vendor == "postgresql"
    on_sqlite.test_click_comparison_equals_statsmodels()


def test_machine_opens_and_conversion_window_on_postgres():
    on_sqlite.test_opens_exclude_machine_opens_and_conversions_respect_the_window()


def test_revenue_welch_on_postgres():
    on_sqlite.test_revenue_per_recipient_is_welch_on_per_recipient_values()


def test_sequential_daily_looks_on_postgres():
    on_sqlite.test_sequential_mode_reports_always_valid_p_over_daily_looks()


def test_srm_on_postgres():
    from experiments.results import experiment_results
    from tests.experiments.builders import assign

    experiment = make_experiment()
    assign(experiment, "A", 1200)
    assign(experiment, "B", 900)
    assert experiment_results(experiment=experiment).srm_alert


@pytest.mark.django_db(transaction=True)
def test_concurrent_workers_assign_each_contact_once_with_the_same_variant():
    experiment = make_experiment()
    ids = make_contacts(3000)
    results: list[dict] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def worker(order):
        try:
            barrier.wait()
            got = assignments_ensure(experiment=experiment, contact_ids=order)
            results.append({cid: v.key for cid, v in got.items()})
        except BaseException as exc:  # noqa: BLE001 — reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=worker, args=(order,))
        for order in (ids, list(reversed(ids)), ids[1000:] + ids[:1000])
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert results[0] == results[1] == results[2]
    assert Assignment.objects.filter(experiment=experiment).count() == 3000


def test_incremental_and_full_refresh_on_postgres():
    on_sqlite.test_events_arriving_later_are_counted_once_on_the_next_read()


def test_variant_content_reaches_what_is_sent_on_postgres(smtp_settings, consenting, make_campaign):
    from tests.experiments import test_variant_delivery as variants

    assert connection.vendor == "postgresql"
    variants.test_each_recipient_gets_the_subject_body_and_template_of_their_variant(
        smtp_settings, consenting, make_campaign
    )


def test_variant_channel_override_on_postgres(
    smtp_settings, sms_provider, consenting, make_campaign
):
    from tests.experiments import test_variant_delivery as variants

    variants.test_channel_override_sends_the_variants_contacts_an_sms_instead_of_an_email(
        smtp_settings, sms_provider, consenting, make_campaign
    )


def test_postgres_assignment_stores_the_numpy_variant_bucket_and_sample():
    """The set-based PostgreSQL insert stores, for a weighted auto-winner test, exactly the
    rows the numpy path (SQLite) stores: same sample, same bucket, same variant."""
    import numpy as np

    from experiments.assignment import buckets_for, in_test_sample, variant_index_for

    experiment = make_experiment(
        arms=(("A", 3, True, False), ("B", 1, False, False), ("C", 2, False, False)),
        auto_winner=True,
        sample_share=0.4,
    )
    ids = np.asarray(make_contacts(3000), dtype=np.int64)
    assigned = assignments_ensure(experiment=experiment, contact_ids=ids[::-1])
    sample = ids[in_test_sample(experiment.salt, ids, 0.4)]
    buckets = buckets_for(experiment.salt, sample)
    keys = np.array(["A", "B", "C"])[variant_index_for(buckets, [3, 1, 2])]
    assert {cid: v.key for cid, v in assigned.items()} == dict(
        zip(sample.tolist(), keys.tolist(), strict=True)
    )
    stored = {
        cid: (key, bucket)
        for cid, key, bucket in Assignment.objects.filter(experiment=experiment).values_list(
            "contact_id", "variant__key", "bucket"
        )
    }
    assert stored == {
        cid: (key, bucket)
        for cid, key, bucket in zip(sample.tolist(), keys.tolist(), buckets.tolist(), strict=True)
    }


def test_ids_of_contacts_that_do_not_exist_are_not_assigned_on_postgres():
    from tests.experiments import test_assignment

    test_assignment.test_ids_of_contacts_that_do_not_exist_are_not_assigned()


def test_targeting_assignment_on_postgres():
    from tests.experiments import test_assignment

    test_assignment.test_targeting_experiment_randomises_the_union_of_audiences()
    test_assignment.test_stored_variant_wins_after_weights_change()
