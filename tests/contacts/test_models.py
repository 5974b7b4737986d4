from datetime import UTC, datetime

import pytest
from django.db import IntegrityError, transaction

from contacts.models import Contact, Event
from tests.factories import ContactFactory, EventFactory

pytestmark = pytest.mark.django_db


def test_same_event_key_from_same_source_is_stored_once():
    event = EventFactory(source="shop", idempotency_key="order-1")
    with pytest.raises(IntegrityError), transaction.atomic():
        EventFactory(contact=event.contact, source="shop", idempotency_key="order-1")
    EventFactory(contact=event.contact, source="crm", idempotency_key="order-1")
    assert Event.objects.filter(idempotency_key="order-1").count() == 2


def test_phone_must_be_e164_and_country_alpha2():
    with pytest.raises(IntegrityError), transaction.atomic():
        ContactFactory(phone="06 12 34 56 78")
    with pytest.raises(IntegrityError), transaction.atomic():
        ContactFactory(country="FRA")
    assert Contact.objects.count() == 0


def test_external_id_is_unique():
    ContactFactory(external_id="X1")
    with pytest.raises(IntegrityError), transaction.atomic():
        ContactFactory(external_id="X1")


def test_events_of_a_contact_come_back_in_time_order():
    contact = ContactFactory()
    for day in (3, 1, 2):
        EventFactory(contact=contact, occurred_at=datetime(2026, 5, day, tzinfo=UTC))
    days = [e.occurred_at.day for e in contact.events.order_by("occurred_at")]
    assert days == [1, 2, 3]
