"""Inbound SMS STOP, bounces and complaints arrive through real ingestion; merges and demo
data keep the ledger and the current state consistent."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from consent.models import ConsentEvent, CurrentConsent
from consent.selectors import consent_state_as_of, contactable, without_profiling_objection
from consent.services import consent_record, is_suppressed
from contacts.demo import generate_contacts
from contacts.models import Contact
from contacts.services import events_record_bulk, merge_contacts
from tests.consent.conftest import T0
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db


def ingest(events, capture):
    with capture(execute=True):
        outcome = events_record_bulk(items=events, source="provider-webhook")
    assert all(r.status == "created" for r in outcome.results), outcome.results


def sms_granted(contact, purpose="promotions"):
    return consent_state_as_of(
        contact=contact, purpose=purpose, channel="sms", at=timezone.now()
    ).granted


@pytest.mark.parametrize("body", ["STOP", " stop ", "Arrêt", "ARRET", "Unsubscribe", "stop sms"])
def test_sms_stop_variants_withdraw_sms_consent_for_all_purposes(
    contact, body, django_capture_on_commit_callbacks
):
    for purpose in ("promotions", "newsletter"):
        consent_record(
            contact=contact, purpose=purpose, channel="sms", granted=True, source="form", at=T0
        )
    consent_record(
        contact=contact, purpose="promotions", channel="email", granted=True, source="import", at=T0
    )
    item = {
        "external_id": contact.external_id,
        "type": "sms_inbound",
        "timestamp": (timezone.now() - timedelta(minutes=1)).isoformat(),
        "idempotency_key": "sms-1",
        "properties": {"body": body, "from": contact.phone},
    }
    ingest([item], django_capture_on_commit_callbacks)
    assert not sms_granted(contact, "promotions") and not sms_granted(contact, "newsletter")
    assert consent_state_as_of(
        contact=contact, purpose="promotions", channel="email", at=timezone.now()
    ).granted
    rows = ConsentEvent.objects.filter(contact=contact, source="sms_stop")
    assert rows.count() == 3  # newsletter, promotions, product_updates (not transactional)
    # The same webhook delivered twice (or the signal re-sent) writes nothing more.
    from contacts.signals import events_ingested

    events_ingested.send(
        sender=None, contact_ids=[contact.pk], event_types={"sms_inbound"}, source="x"
    )
    assert rows.count() == 3


def test_an_ordinary_sms_reply_withdraws_nothing(contact, django_capture_on_commit_callbacks):
    consent_record(
        contact=contact, purpose="promotions", channel="sms", granted=True, source="form", at=T0
    )
    item = {
        "external_id": contact.external_id,
        "type": "sms_inbound",
        "timestamp": timezone.now().isoformat(),
        "idempotency_key": "sms-2",
        "properties": {"body": "Je ne veux pas que ça s'arrête, stop-motion géniale"},
    }
    ingest([item], django_capture_on_commit_callbacks)
    assert sms_granted(contact)


def test_hard_bounce_and_complaint_suppress_the_address_soft_bounce_does_not(
    django_capture_on_commit_callbacks,
):
    hard, soft, complainer = ContactFactory.create_batch(3)
    now = timezone.now().isoformat()
    ingest(
        [
            {
                "external_id": hard.external_id,
                "type": "email_bounce",
                "timestamp": now,
                "idempotency_key": "b1",
                "properties": {"bounce_type": "hard", "address": hard.email},
            },
            {
                "external_id": soft.external_id,
                "type": "email_bounce",
                "timestamp": now,
                "idempotency_key": "b2",
                "properties": {"bounce_type": "soft", "address": soft.email},
            },
            {
                "external_id": complainer.external_id,
                "type": "email_complaint",
                "timestamp": now,
                "idempotency_key": "c1",
                "properties": {"address": complainer.email},
            },
        ],
        django_capture_on_commit_callbacks,
    )
    assert is_suppressed(channel="email", address=hard.email)
    assert is_suppressed(channel="email", address=complainer.email)
    assert not is_suppressed(channel="email", address=soft.email)
    reachable = contactable(Contact.objects.all(), purpose="transactional", channel="email")
    assert sorted(reachable.values_list("pk", flat=True)) == [soft.pk]


def test_merge_moves_the_ledger_to_the_survivor_and_the_latest_decision_wins():
    survivor, duplicate = ContactFactory.create_batch(2)
    consent_record(
        contact=survivor, purpose="promotions", channel="sms", granted=True, source="form", at=T0
    )
    consent_record(
        contact=duplicate,
        purpose="promotions",
        channel="sms",
        granted=False,
        source="sms_stop",
        at=T0 + timedelta(days=2),
    )
    consent_record(
        contact=duplicate, purpose="newsletter", channel="push", granted=True, source="form", at=T0
    )
    merge_contacts(survivor=survivor, duplicates=[duplicate])
    assert ConsentEvent.objects.filter(contact=survivor).count() == 3
    assert not sms_granted(survivor)
    assert consent_state_as_of(
        contact=survivor, purpose="newsletter", channel="push", at=timezone.now()
    ).granted
    assert CurrentConsent.objects.filter(contact_id=duplicate.pk).count() == 0
    assert set(
        CurrentConsent.objects.filter(contact=survivor).values_list(
            "purpose__code", "channel", "granted"
        )
    ) == {
        ("promotions", "sms", False),
        ("newsletter", "push", True),
    }


def test_seed_demo_records_a_realistic_ledger_consistent_with_the_answers():
    call_command("seed_demo", contacts=400, events_per_contact=2, seed=5, stdout=StringIO())
    sources = set(ConsentEvent.objects.values_list("source", flat=True))
    assert {"form", "double_opt_in", "unsubscribe_link", "sms_stop", "preference_centre"} <= sources
    population = generate_contacts(n=400, seed=5, now=timezone.now())
    objectors = int(population.profiling_objection.sum())
    everyone = Contact.objects.all()
    assert everyone.count() - without_profiling_objection(everyone).count() == objectors
    # Double opt-in: every newsletter grant by email is confirmed after its request.
    newsletter = contactable(everyone, purpose="newsletter", channel="email")
    expected = int((population.email_optin & (population.email != "")).sum())
    unsubscribed = ConsentEvent.objects.filter(source="unsubscribe_link").count()
    assert newsletter.count() == expected - unsubscribed
    # The state table agrees with the ledger, contact by contact, for a sample.
    for contact_id in everyone.order_by("pk").values_list("pk", flat=True)[:60]:
        for purpose, channel in (
            ("newsletter", "email"),
            ("promotions", "sms"),
            ("profiling", "any"),
        ):
            from_ledger = consent_state_as_of(
                contact=contact_id, purpose=purpose, channel=channel, at=timezone.now()
            ).granted
            from_state = contactable(
                everyone.filter(pk=contact_id), purpose=purpose, channel=channel
            ).exists()
            assert from_ledger == from_state, (contact_id, purpose, channel)
