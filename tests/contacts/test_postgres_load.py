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


def _foreign_keys(*tables: str) -> set[tuple[str, str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE contype = 'f' AND conrelid::regclass::text = ANY(%s)",
            [list(tables)],
        )
        return set(cursor.fetchall())


def _event_indexes() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = %s", [Event._meta.db_table]
        )
        return {row[0] for row in cursor.fetchall()}


def test_large_seed_checks_foreign_keys_once_and_puts_them_back(monkeypatch):
    """Above the large-load thresholds the seed drops the events' and the consent ledger's
    foreign keys for the load and adds them back (one validating join): the constraints are
    the same afterwards and still refuse an event of an unknown contact."""
    import consent.demo
    from consent.models import ConsentEvent, CurrentConsent
    from contacts import bulk_load

    tables = (Event._meta.db_table, ConsentEvent._meta.db_table, CurrentConsent._meta.db_table)
    before = _foreign_keys(*tables)
    indexes = _event_indexes()
    assert any("INCLUDE (contact_id)" in d for d in indexes)  # event_type_by_time covers it
    assert len(before) >= 5
    monkeypatch.setattr(bulk_load, "LARGE_LOAD_EVENTS", 100)
    monkeypatch.setattr(consent.demo, "LARGE_LEDGER_ROWS", 100)
    call_command("seed_demo", "--contacts", "300", "--events-per-contact", "5", "--seed", "7")
    assert Event.objects.count() > 1000
    assert CurrentConsent.objects.count() > 100
    assert _foreign_keys(*tables) == before
    assert _event_indexes() == indexes  # the event indexes rebuilt as the migrations made them
    with pytest.raises(IntegrityError), transaction.atomic():
        Event.objects.create(
            contact_id=10**9, type="visit", occurred_at=Contact.objects.first().created_at
        )
