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
