"""The same guarantees on a real PostgreSQL (COPY demo load, window-function state rebuild,
ON CONFLICT upserts, EXISTS filters, erasure scan over every column)."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from consent.models import ConsentEvent, CurrentConsent, Purpose
from consent.selectors import (
    annotate_exclusion_reason,
    consent_state_as_of,
    contactable,
    without_profiling_objection,
)
from consent.services import consent_record, erase_contact, suppression_add
from contacts.demo import generate_contacts
from contacts.models import Contact
from tests.consent.conftest import T0
from tests.consent.test_rights import columns_containing, rich_history
from tests.factories import ContactFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_demo_ledger_and_state_agree_on_postgres(django_assert_num_queries):
    call_command("seed_demo", contacts=1500, events_per_contact=1, seed=9, stdout=StringIO())
    assert ConsentEvent.objects.count() > 1500
    population = generate_contacts(n=1500, seed=9, now=timezone.now())
    everyone = Contact.objects.all()
    assert everyone.count() - without_profiling_objection(everyone).count() == int(
        population.profiling_objection.sum()
    )
    promotions = Purpose.objects.get(code="promotions")
    with django_assert_num_queries(1):
        now_ids = set(
            contactable(everyone, purpose=promotions, channel="sms").values_list("pk", flat=True)
        )
    from_state = set(
        CurrentConsent.objects.filter(
            purpose__code="promotions", channel="sms", granted=True
        ).values_list("contact_id", flat=True)
    )
    assert now_ids == from_state and now_ids
    later = timezone.now() + timedelta(seconds=1)
    sample = list(everyone.order_by("pk").values_list("pk", flat=True)[:80])
    for contact_id in sample:
        expected = contact_id in now_ids
        assert (
            consent_state_as_of(
                contact=contact_id, purpose="promotions", channel="sms", at=later
            ).granted
            == expected
        )


def test_past_instant_and_exclusion_reasons_on_postgres():
    kept, withdrawn, bounced = ContactFactory.create_batch(3)
    for person in (kept, withdrawn, bounced):
        consent_record(
            contact=person,
            purpose="newsletter",
            channel="email",
            granted=True,
            source="import",
            at=T0,
        )
    consent_record(
        contact=withdrawn,
        purpose="newsletter",
        channel="email",
        granted=False,
        source="unsubscribe_link",
        at=T0 + timedelta(days=5),
    )
    suppression_add(channel="email", address=bounced.email, reason="hard_bounce", source="test")
    everyone = Contact.objects.all()
    then = contactable(everyone, purpose="newsletter", channel="email", at=T0 + timedelta(days=1))
    assert set(then.values_list("pk", flat=True)) == {kept.pk, withdrawn.pk}  # bounce checked now
    reasons = dict(
        annotate_exclusion_reason(everyone, purpose="newsletter", channel="email").values_list(
            "pk", "consent_exclusion_reason"
        )
    )
    assert reasons == {kept.pk: None, withdrawn.pk: "no_consent", bounced.pk: "suppressed"}


def test_erasure_scan_on_postgres(contact):
    rich_history(contact)
    erase_contact(contact=contact, actor="dpo")
    for value in (contact.email, contact.phone, contact.first_name, contact.last_name):
        assert columns_containing(value) == [], value
