"""Bulk upsert of contacts and bulk recording of events (the path every door uses)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.test.utils import override_settings

from contacts import hooks
from contacts.models import Contact, Event
from contacts.services import contacts_upsert_bulk, derived_external_id, events_record_bulk
from contacts.signals import events_ingested
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def test_contacts_are_created_normalised_and_updated_by_external_id():
    outcome = contacts_upsert_bulk(
        items=[
            {
                "external_id": "c-1",
                "email": "  Lea.Martin@Bücher.FR ",
                "phone": "0470 12 34 56",
                "country": "Belgique",
                "city": "st etienne",
                "birth_year": "1990",
                "attributes": {"tier": "gold"},
            },
            {"email": "bad@", "external_id": "c-2"},
        ],
        source="test",
        now=NOW,
    )
    assert [r.status for r in outcome.results] == ["created", "rejected"]
    assert "email" in outcome.results[1].errors
    contact = Contact.objects.get(external_id="c-1")
    assert contact.email == "lea.martin@xn--bcher-kva.fr"
    assert contact.phone == "+32470123456"  # parsed in the contact's country
    assert contact.country == "BE"
    assert contact.city == "Saint-Étienne"
    assert contact.birth_year == 1990

    outcome = contacts_upsert_bulk(
        items=[{"external_id": "c-1", "last_name": "Martin", "attributes": {"vip": True}}],
        source="test",
        now=NOW,
    )
    assert outcome.counts == {"created": 0, "updated": 1, "duplicate": 0, "rejected": 0}
    contact.refresh_from_db()
    assert contact.last_name == "Martin"
    assert contact.attributes == {"tier": "gold", "vip": True}
    assert contact.country == "BE"  # fields absent from the item are kept
    assert Contact.objects.count() == 1


def test_contact_without_external_id_is_found_by_email_or_created_with_stable_id():
    existing = ContactFactory(email="known@example.fr")
    outcome = contacts_upsert_bulk(
        items=[
            {"email": "KNOWN@example.fr", "first_name": "Inès"},
            {"email": "new@example.fr"},
            {"email": "new@example.fr", "last_name": "Durand"},
        ],
        source="test",
        now=NOW,
    )
    assert [r.status for r in outcome.results] == ["updated", "created", "updated"]
    existing.refresh_from_db()
    assert existing.first_name == "Inès"
    new = Contact.objects.get(email="new@example.fr")
    assert new.external_id == derived_external_id(email="new@example.fr")
    assert new.last_name == "Durand"


def test_events_are_idempotent_and_signal_after_commit(django_capture_on_commit_callbacks):
    ContactFactory(external_id="c-1")
    received = []
    handler = lambda **kw: received.append(kw)  # noqa: E731
    events_ingested.connect(handler)
    try:
        items = [
            {
                "external_id": "c-1",
                "type": "Achat",
                "timestamp": "2026-05-01T10:00:00+02:00",
                "idempotency_key": "o-1",
                "properties": {"amount": "12,50", "category": "Chaussures"},
            },
            {
                "external_id": "c-1",
                "type": "page_view",
                "timestamp": "2026-05-01T10:00:00Z",
                "idempotency_key": "o-1",
            },
        ]
        with django_capture_on_commit_callbacks(execute=True):
            first = events_record_bulk(items=items, source="shop", now=NOW)
        with django_capture_on_commit_callbacks(execute=True):
            second = events_record_bulk(items=items, source="shop", now=NOW)
    finally:
        events_ingested.disconnect(handler)
    assert [r.status for r in first.results] == ["created", "duplicate"]
    assert [r.status for r in second.results] == ["duplicate", "duplicate"]
    event = Event.objects.get()
    assert event.type == "purchase"
    assert event.properties == {"amount": 12.5, "category": "shoes"}
    assert event.occurred_at == datetime(2026, 5, 1, 8, tzinfo=UTC)
    assert len(received) == 1
    assert received[0]["event_types"] == {"purchase"}
    assert received[0]["source"] == "shop"


def test_events_signal_names_the_contacts_of_each_type(django_capture_on_commit_callbacks):
    """Receivers interested in a few types (conversion attribution, journey triggers) get the
    contacts per type, so a batch of page views does not make them look at every contact."""
    buyer, reader = ContactFactory(external_id="c-1"), ContactFactory(external_id="c-2")
    received = []
    handler = lambda **kw: received.append(kw)  # noqa: E731
    events_ingested.connect(handler)
    stamp = "2026-05-01T10:00:00Z"
    items = [
        {
            "external_id": "c-1",
            "type": "purchase",
            "timestamp": stamp,
            "idempotency_key": "a",
            "properties": {"amount": 5},
        },
        {"external_id": "c-1", "type": "page_view", "timestamp": stamp, "idempotency_key": "b"},
        {"external_id": "c-2", "type": "page_view", "timestamp": stamp, "idempotency_key": "c"},
        {"external_id": "c-2", "type": "page_view", "timestamp": stamp, "idempotency_key": "d"},
    ]
    try:
        with django_capture_on_commit_callbacks(execute=True):
            events_record_bulk(items=items, source="shop", now=NOW)
    finally:
        events_ingested.disconnect(handler)
    assert len(received) == 1
    assert received[0]["contact_ids"] == sorted([buyer.pk, reader.pk])
    assert received[0]["event_types"] == {"purchase", "page_view"}
    assert received[0]["contact_ids_by_type"] == {
        "purchase": [buyer.pk],
        "page_view": sorted([buyer.pk, reader.pk]),
    }


def test_event_rejections_name_the_field_and_valid_items_still_land():
    ContactFactory(external_id="c-1")
    base = {"external_id": "c-1", "type": "page_view", "idempotency_key": "k"}
    outcome = events_record_bulk(
        items=[
            {**base, "timestamp": "2030-01-01T00:00:00Z", "idempotency_key": "future"},
            {**base, "timestamp": "1969-12-31T23:00:00Z", "idempotency_key": "old"},
            {**base, "timestamp": "2026-05-01T10:00:00", "idempotency_key": "naive"},
            {**base, "timestamp": "2026-05-01T10:00:00Z", "idempotency_key": "ok", "colour": 1},
            {**base, "timestamp": "2026-05-01T10:00:00Z", "idempotency_key": "nul\x00"},
            {
                **base,
                "timestamp": "2026-05-01T10:00:00Z",
                "type": "purchase",
                "idempotency_key": "p",
            },
            "not an object",
            {**base, "timestamp": "2026-05-01T10:00:00Z", "idempotency_key": "good"},
        ],
        source="shop",
        now=NOW,
    )
    statuses = [r.status for r in outcome.results]
    assert statuses == ["rejected"] * 7 + ["created"]
    errors = [r.errors for r in outcome.results]
    assert "timestamp" in errors[0] and "future" in str(errors[0]["timestamp"])
    assert "1970" in str(errors[1]["timestamp"])
    assert "offset" in str(errors[2]["timestamp"])
    assert "colour" in errors[3]
    assert "NUL" in str(errors[4]["idempotency_key"])
    assert "amount" in str(errors[5]["properties"])
    assert list(Event.objects.values_list("idempotency_key", flat=True)) == ["good"]


def test_naive_timestamp_accepted_with_default_zone():
    ContactFactory(external_id="c-1")
    outcome = events_record_bulk(
        items=[
            {
                "external_id": "c-1",
                "type": "page_view",
                "timestamp": "2026-05-01T10:00:00",
                "idempotency_key": "k",
            }
        ],
        source="csv",
        default_timezone="Europe/Paris",
        now=NOW,
    )
    assert outcome.counts["created"] == 1
    assert Event.objects.get().occurred_at == datetime(2026, 5, 1, 8, tzinfo=UTC)


def test_unknown_contacts_become_anonymous_profiles_or_are_rejected_by_setting():
    item = {
        "email": "visitor@example.fr",
        "type": "page_view",
        "timestamp": "2026-05-01T10:00:00Z",
        "idempotency_key": "v1",
    }
    with override_settings(CIBLE_INGEST_CREATE_UNKNOWN_CONTACTS=False):
        outcome = events_record_bulk(items=[item], source="web", now=NOW)
    assert outcome.results[0].status == "rejected"
    assert "Unknown contact" in str(outcome.results[0].errors["email"])
    assert not Contact.objects.exists()
    outcome = events_record_bulk(items=[item], source="web", now=NOW)
    assert outcome.results[0].status == "created"
    contact = Contact.objects.get()
    assert contact.is_anonymous and contact.email == "visitor@example.fr"


def test_erased_identity_is_never_recreated():
    def erased(*, email="", phone=""):
        return email == "gone@example.fr"

    hooks.identity_blockers.append(erased)
    try:
        upsert = contacts_upsert_bulk(items=[{"email": "gone@example.fr"}], source="t", now=NOW)
        events = events_record_bulk(
            items=[
                {
                    "email": "gone@example.fr",
                    "type": "page_view",
                    "timestamp": "2026-05-01T10:00:00Z",
                    "idempotency_key": "g",
                }
            ],
            source="t",
            now=NOW,
        )
    finally:
        hooks.identity_blockers.remove(erased)
    assert upsert.results[0].status == "rejected"
    assert "erased" in str(upsert.results[0].errors["email"])
    assert events.results[0].status == "rejected"
    assert not Contact.objects.exists() and not Event.objects.exists()


def test_event_naming_an_email_two_contacts_share_goes_to_the_oldest_contact():
    older = ContactFactory(external_id="OLD", email="shared@example.fr")
    ContactFactory(external_id="NEW", email="shared@example.fr")
    outcome = events_record_bulk(
        items=[
            {
                "email": "Shared@Example.fr",
                "type": "page_view",
                "timestamp": "2026-03-01T10:00:00Z",
                "idempotency_key": "shared-1",
            }
        ],
        source="web",
    )
    assert outcome.counts["created"] == 1
    assert Event.objects.get(idempotency_key="shared-1").contact_id == older.pk
