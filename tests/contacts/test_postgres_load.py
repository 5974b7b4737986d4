"""The PostgreSQL path of bulk loading (COPY) and the database-enforced invariants."""

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction

from contacts.models import Contact, Event
from tests.factories import EventFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_seed_demo_uses_copy_on_postgresql_and_keeps_sequences_right(capsys):
    assert connection.vendor == "postgresql"
    call_command("seed_demo", "--contacts", "500", "--events-per-contact", "8", "--seed", "5")
    assert Contact.objects.count() == 500
    assert Event.objects.count() > 3000
    # the id sequence continues after the explicitly numbered COPY rows
    created = Contact.objects.create(
        external_id="after-seed", created_at=Contact.objects.first().created_at
    )
    assert created.id == 501
    assert "Loaded 500 contacts" in capsys.readouterr().out


def test_event_idempotency_is_enforced_by_postgresql():
    event = EventFactory(source="shop", idempotency_key="k-1")
    with pytest.raises(IntegrityError), transaction.atomic():
        EventFactory(contact=event.contact, source="shop", idempotency_key="k-1")
    assert Event.objects.count() == 1
