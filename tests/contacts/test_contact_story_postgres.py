"""The contact story's tabs on a real PostgreSQL: a contact with 100,000 events among other
contacts' events is read through the per-contact indexes, one page at a time."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import connection

from contacts.models import Event
from tests.factories import ContactFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

BUSY_EVENTS = 100_000


@pytest.fixture
def busy_contact():
    busy = ContactFactory(external_id="BUSY")
    others = ContactFactory.create_batch(50)
    with connection.cursor() as cursor:
        for contact, n, tag in [
            (busy, BUSY_EVENTS, "b-"),
            *[(c, 1000, f"o{c.pk}-") for c in others],
        ]:
            cursor.execute(
                """
                INSERT INTO contacts_event
                    (contact_id, type, occurred_at, received_at, properties, channel, device,
                     country, city, source, idempotency_key)
                SELECT %s, CASE WHEN g %% 50 = 0 THEN 'purchase' ELSE 'page_view' END,
                       now() - g * interval '1 minute', now(), '{}'::jsonb, '', '', '', '',
                       'test', %s || g
                FROM generate_series(1, %s) AS g
                """,
                [contact.pk, tag, n],
            )
        cursor.execute("ANALYZE contacts_event")
    return busy


def _plan(queryset) -> str:
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


def test_events_tab_reads_one_page_through_the_contact_index(busy_contact, client):
    newest = Event.objects.filter(contact_id=busy_contact.pk).order_by("-occurred_at", "-id")
    plan = _plan(newest[:26])
    # The (contact, occurred_at) index: the table's, or each month partition's copy of it.
    by_contact = ("event_contact_by_time", "_contact_id_occurred_at_idx")
    assert any(name in plan for name in by_contact) and "Seq Scan" not in plan, plan
    purchases = newest.filter(type="purchase")
    plan = _plan(purchases[50:76])
    assert "Seq Scan" not in plan, plan

    client.force_login(User.objects.create_superuser("admin", "admin@example.fr", "x"))
    url = f"/admin/contacts/contact/{busy_contact.pk}/change/"
    page = client.get(url, {"tab": "events", "page": 40, "type": "purchase"})
    assert page.status_code == 200
    assert page.content.decode().count('class="story-event"') == 25
