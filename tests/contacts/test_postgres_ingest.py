"""Ingestion on a real PostgreSQL: concurrent identical batches store one copy; no 500 on
values PostgreSQL refuses (NUL, lone surrogates, huge numbers)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from hypothesis import HealthCheck, given, settings

from contacts.models import Contact, Event
from contacts.services import contacts_upsert_bulk, events_record_bulk
from tests.contacts.fuzzing import BODY, assert_never_500
from tests.factories import ContactFactory

pytestmark = pytest.mark.postgres


def run_concurrently(work, n: int = 2) -> list:
    barrier = threading.Barrier(n)
    results: list = [None] * n
    errors: list = []

    def worker(slot: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[slot] = work()
        except Exception as exc:  # reported below, in the test thread
            errors.append(exc)
        finally:
            connection.close()  # each thread had its own connection

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return results


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_identical_event_batches_store_one_copy():
    assert connection.vendor == "postgresql"
    ContactFactory(external_id="C-1")
    items = [
        {
            "external_id": "C-1" if i % 2 else f"new-{i % 50}",
            "type": "page_view",
            "timestamp": "2026-01-10T09:30:00+01:00",
            "idempotency_key": f"k{i}",
        }
        for i in range(1000)
    ]
    outcomes = run_concurrently(lambda: events_record_bulk(items=items, source="api"))
    assert Event.objects.count() == 1000
    created = sum(o.counts["created"] for o in outcomes)
    duplicates = sum(o.counts["duplicate"] for o in outcomes)
    assert (created, duplicates) == (1000, 1000)
    assert Contact.objects.filter(external_id__startswith="new-").count() == 25  # even i only


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_identical_contact_batches_create_each_contact_once():
    items = [{"external_id": f"P-{i}", "email": f"p{i}@example.fr"} for i in range(500)]
    items += [{"email": f"only{i}@example.fr"} for i in range(100)]
    outcomes = run_concurrently(lambda: contacts_upsert_bulk(items=items, source="crm"))
    assert Contact.objects.count() == 600
    assert sum(o.counts["created"] for o in outcomes) == 600
    assert sum(o.counts["updated"] for o in outcomes) == 600


@pytest.mark.django_db
def test_bulk_insert_reports_created_and_duplicates_on_postgresql():
    ContactFactory(external_id="C-1")
    item = {
        "external_id": "C-1",
        "type": "purchase",
        "timestamp": "2026-01-10T09:30:00Z",
        "idempotency_key": "o1",
        "properties": {"amount": 10, "note": "é"},
    }
    assert events_record_bulk(items=[item], source="s").counts["created"] == 1
    assert events_record_bulk(items=[item], source="s").counts["duplicate"] == 1
    assert Event.objects.get().properties == {"amount": 10, "note": "é"}


@pytest.mark.django_db
def test_a_batch_mixing_stored_and_new_keys_stores_each_event_once_on_postgresql():
    """The plain INSERT of a batch stops at the stored key (its savepoint undone); the batch
    then goes through ON CONFLICT DO NOTHING: new events created, the stored one a duplicate."""
    for i in range(3):
        ContactFactory(external_id=f"C-{i}")

    def item(i: int) -> dict:
        return {
            "external_id": f"C-{i % 3}",
            "type": "page_view",
            "timestamp": f"2026-01-10T09:{i:02d}:00Z",
            "idempotency_key": f"k{i}",
        }

    first = events_record_bulk(items=[item(5)], source="s")
    assert first.counts["created"] == 1
    mixed = events_record_bulk(items=[item(i) for i in range(10)], source="s")
    assert mixed.counts == {"created": 9, "updated": 0, "duplicate": 1, "rejected": 0}
    assert [r.status for r in mixed.results][5] == "duplicate"
    assert Event.objects.filter(source="s").count() == 10
    again = events_record_bulk(items=[item(i) for i in range(10)], source="s")
    assert again.counts["duplicate"] == 10


FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture
def known_contacts(db):
    ContactFactory(external_id="C-1")


@pytest.mark.django_db
@FUZZ
@given(payload=BODY)
def test_events_bulk_never_500_on_postgresql(api_client, known_contacts, payload):
    assert_never_500(api_client, "/api/v1/events/bulk", payload)


@pytest.mark.django_db
@FUZZ
@given(payload=BODY)
def test_contacts_bulk_never_500_on_postgresql(api_client, known_contacts, payload):
    assert_never_500(api_client, "/api/v1/contacts/bulk", payload)


@pytest.mark.django_db
def test_event_naming_a_shared_email_goes_to_the_oldest_contact_on_postgresql():
    contacts = [ContactFactory(external_id=f"S-{i}", email="shared@example.fr") for i in range(5)]
    outcome = events_record_bulk(
        items=[
            {
                "email": "shared@example.fr",
                "type": "page_view",
                "timestamp": "2026-03-01T10:00:00Z",
                "idempotency_key": "shared-1",
            }
        ],
        source="web",
    )
    assert outcome.counts["created"] == 1
    assert Event.objects.get(idempotency_key="shared-1").contact_id == contacts[0].pk
