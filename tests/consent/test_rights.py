"""Data-subject rights: erasure (scanning every column of every table), re-import blocking,
export, management commands, rights requests, retention."""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from consent import exports
from consent.exports import register_section
from consent.models import ConsentEvent, RetentionPurge, RightsRequest
from consent.selectors import contactable, without_profiling_objection
from consent.services import (
    consent_record,
    erase_contact,
    export_contact_data,
    is_erased_identity,
    is_suppressed,
    retention_purge,
    suppression_add,
)
from contacts.models import Contact, Event, PushSubscription
from contacts.services import contacts_upsert_bulk
from tests.consent.conftest import T0
from tests.factories import ContactFactory, EventFactory

pytestmark = pytest.mark.django_db


def rich_history(contact):
    """Personal data of ``contact`` spread over every place Cible keeps it."""
    EventFactory(
        contact=contact,
        type="purchase",
        properties={"amount": 59.9, "category": "shoes", "note": f"pour {contact.first_name}"},
        city="Paris",
        idempotency_key=f"{contact.external_id}-order-1",
    )
    EventFactory(
        contact=contact,
        type="email_bounce",
        properties={"bounce_type": "soft", "address": contact.email},
    )
    EventFactory(
        contact=contact,
        type="sms_inbound",
        properties={
            "body": f"Bonjour c'est {contact.first_name} {contact.last_name}",
            "from": contact.phone,
        },
    )
    PushSubscription.objects.create(
        contact=contact,
        endpoint="https://push.example/sub/zq",
        p256dh="k" * 40,
        auth="a" * 16,
        user_agent=f"{contact.first_name}'s phone",
    )
    consent_record(
        contact=contact,
        purpose="promotions",
        channel="email",
        granted=True,
        source="form",
        at=T0,
        proof={"ip": "203.0.113.9", "user_agent": "Firefox", "typed_email": contact.email},
        actor=contact.email,
    )
    suppression_add(channel="sms", address=contact.phone, reason="complaint", source="test")
    RightsRequest.objects.create(
        kind="erasure", contact=contact, requester=f"courriel de {contact.email}", received_at=T0
    )
    user = get_user_model().objects.create_user("dpo", password="x")  # noqa: S106
    LogEntry.objects.create(
        user=user,
        content_type_id=ContentType.objects.get_for_model(Contact).pk,
        object_id=str(contact.pk),
        object_repr=str(contact),
        action_flag=CHANGE,
        action_time=timezone.now(),
        change_message=f"Changed last_name to {contact.last_name}",
    )


def columns_containing(needle: str) -> list[str]:
    """Every column of every table whose text form contains ``needle`` (also JSON-escaped)."""
    forms = {needle.lower(), json.dumps(needle)[1:-1].lower()}
    hits = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            for column in connection.introspection.get_table_description(cursor, table):
                t, c = connection.ops.quote_name(table), connection.ops.quote_name(column.name)
                for form in forms:
                    cursor.execute(
                        f"SELECT COUNT(*) FROM {t} WHERE LOWER(CAST({c} AS TEXT)) LIKE %s",
                        [f"%{form}%"],
                    )
                    if cursor.fetchone()[0]:
                        hits.append(f"{table}.{column.name}")
    return hits


def test_erasure_leaves_no_email_phone_or_name_in_any_table_and_blocks_reimport(contact):
    rich_history(contact)
    bystander = ContactFactory(first_name="Camille", last_name="Martin")
    identifiers = [contact.email, contact.phone, contact.first_name, contact.last_name]
    for value in identifiers:
        assert columns_containing(value), f"set-up should store {value}"
    events_before = Event.objects.filter(contact=contact).count()

    report = erase_contact(contact=contact, actor="dpo@cible.example")

    for value in identifiers:
        assert columns_containing(value) == [], f"{value} survived erasure"
    # Aggregates stay right: same number of events, purchase amount kept, nothing else.
    assert Event.objects.filter(contact_id=contact.pk).count() == events_before
    purchase = Event.objects.get(contact_id=contact.pk, type="purchase")
    assert purchase.properties == {"amount": 59.9, "category": "shoes"}
    assert report.events_anonymised == events_before
    assert report.push_subscriptions_deleted == 1
    # The ledger row is kept as evidence, without personal data.
    row = ConsentEvent.objects.get(contact_id=contact.pk)
    assert row.proof == {"wording_version": "v1"} and row.actor == ""
    # Never contacted again, never re-created.
    assert is_erased_identity(email=contact.email.upper()) and is_erased_identity(
        phone=contact.phone
    )
    assert is_suppressed(channel="email", address=contact.email)
    assert not is_erased_identity(email=bystander.email)
    everyone = Contact.objects.all()
    assert contact.pk not in contactable(
        everyone, purpose="transactional", channel="email"
    ).values_list("pk", flat=True)
    assert contact.pk not in without_profiling_objection(everyone).values_list("pk", flat=True)
    outcome = contacts_upsert_bulk(
        items=[{"email": contact.email, "first_name": "Zébulon"}], source="crm"
    )
    assert outcome.results[0].status == "rejected"
    assert Contact.objects.filter(email=contact.email).count() == 0
    with pytest.raises(ValueError, match="erased"):
        consent_record(
            contact=contact.pk,
            purpose="newsletter",
            channel="sms",
            granted=True,
            source="api",
            at=T0,
        )
    # Erasing again changes nothing.
    assert erase_contact(contact=contact.pk, actor="again").events_anonymised == 0
    bystander.refresh_from_db()
    assert bystander.first_name == "Camille"


def test_export_holds_profile_events_consents_and_registered_sections(contact):
    rich_history(contact)
    register_section("test_memberships", lambda c: [{"segment": "VIP", "contact": c.external_id}])
    try:
        data = export_contact_data(contact=contact)
    finally:
        exports._sections.pop("test_memberships")
    json.dumps(data)  # JSON-serialisable as promised
    assert data["profile"]["email"] == contact.email
    assert data["profile"]["last_name"] == "Quaglieri"
    assert {e["type"] for e in data["events"]} == {"purchase", "email_bounce", "sms_inbound"}
    assert data["consents"]["ledger"][0]["purpose"] == "promotions"
    assert data["consents"]["ledger"][0]["proof"]["ip"] == "203.0.113.9"
    assert data["suppressed"] == {"email": False, "sms": True}
    assert data["rights_requests"][0]["kind"] == "erasure"
    assert data["test_memberships"] == [{"segment": "VIP", "contact": contact.external_id}]


def test_export_and_erase_commands_accept_external_or_numeric_id(contact, tmp_path):
    out = StringIO()
    call_command("export_contact", contact.external_id, stdout=out)
    assert json.loads(out.getvalue())["profile"]["phone"] == contact.phone
    target = tmp_path / "export.json"
    call_command("export_contact", str(contact.pk), output=str(target), stderr=StringIO())
    assert json.loads(target.read_text())["profile"]["id"] == contact.pk
    out = StringIO()
    call_command("erase_contact", contact.external_id, actor="dpo", stdout=out)
    assert f"Contact #{contact.pk} erased." in out.getvalue()
    contact.refresh_from_db()
    assert (contact.email, contact.first_name, contact.phone) == ("", "", "")
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="no contact with external ID or id 'nobody'"):
        call_command("erase_contact", "nobody")


def test_rights_request_is_due_one_month_after_receipt(contact):
    request = RightsRequest.objects.create(kind="access", contact=contact, received_at=T0)
    assert request.due_at == T0 + timedelta(days=30)


def test_retention_dry_run_reports_and_real_run_purges(settings):
    settings.CONSENT_RETENTION_EVENTS_DAYS = 761
    settings.CONSENT_RETENTION_INACTIVE_CONTACT_DAYS = 1095
    now = timezone.now()
    old = now - timedelta(days=800)
    active = ContactFactory(created_at=now - timedelta(days=2000))
    EventFactory(contact=active, occurred_at=now - timedelta(days=10))
    EventFactory(contact=active, occurred_at=old, type="page_view")
    dormant = ContactFactory(created_at=now - timedelta(days=2000))
    EventFactory(contact=dormant, occurred_at=now - timedelta(days=1200))
    newcomer = ContactFactory(created_at=now - timedelta(days=5))

    dry = retention_purge(now=now, dry_run=True)
    assert (dry.events_deleted, dry.contacts_erased) == (2, 1)
    assert dry.report["inactive_contact_ids_sample"] == [dormant.pk]
    assert Event.objects.count() == 3 and Contact.objects.get(pk=dormant.pk).email

    real = retention_purge(now=now, dry_run=False)
    assert (real.events_deleted, real.contacts_erased) == (2, 1)
    assert Event.objects.count() == 1
    assert Contact.objects.get(pk=dormant.pk).email == ""
    assert Contact.objects.get(pk=newcomer.pk).email != ""
    assert RetentionPurge.objects.count() == 2
