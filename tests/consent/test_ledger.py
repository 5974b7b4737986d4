"""The ledger, the current state and the queries activation and segments rely on."""

from datetime import timedelta

import pytest
from django.utils import timezone

from consent.models import ConsentEvent, CurrentConsent, LedgerIsAppendOnly, Purpose
from consent.selectors import (
    annotate_exclusion_reason,
    consent_state_as_of,
    consent_summary,
    contactable,
    without_profiling_objection,
)
from consent.services import (
    consent_record,
    double_opt_in_confirm,
    double_opt_in_request,
    suppression_add,
)
from contacts.models import Contact
from tests.consent.conftest import T0
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db


def grant(contact, purpose="promotions", channel="sms", at=T0, **kw):
    return consent_record(
        contact=contact, purpose=purpose, channel=channel, granted=True, source="form", at=at, **kw
    )


def withdraw(contact, purpose="promotions", channel="sms", at=T0, source="admin"):
    return consent_record(
        contact=contact, purpose=purpose, channel=channel, granted=False, source=source, at=at
    )


def ids(queryset):
    return sorted(queryset.values_list("pk", flat=True))


def test_consent_purpose_needs_a_grant_and_a_withdrawal_ends_it(contact):
    state = consent_state_as_of(contact=contact, purpose="promotions", channel="sms", at=T0)
    assert (state.granted, state.basis, state.event_id) == (False, "consent", None)
    granted = grant(contact)
    withdrawn = withdraw(contact, at=T0 + timedelta(days=3))
    before = consent_state_as_of(
        contact=contact, purpose="promotions", channel="sms", at=T0 + timedelta(days=1)
    )
    after = consent_state_as_of(
        contact=contact, purpose="promotions", channel="sms", at=T0 + timedelta(days=4)
    )
    assert (before.granted, before.event_id, before.decided_at) == (True, granted.pk, T0)
    assert (after.granted, after.event_id) == (False, withdrawn.pk)
    # The past is answered from the ledger: contactable as of day 1, not now.
    everyone = Contact.objects.all()
    assert ids(
        contactable(everyone, purpose="promotions", channel="sms", at=T0 + timedelta(days=1))
    ) == [contact.pk]
    assert ids(contactable(everyone, purpose="promotions", channel="sms")) == []


def test_withdrawn_consent_after_audience_snapshot_blocks_next_send(contact):
    others = ContactFactory.create_batch(3)
    for person in [contact, *others]:
        grant(person, purpose="newsletter", channel="sms")
    snapshot = ids(contactable(Contact.objects.all(), purpose="newsletter", channel="sms"))
    assert snapshot == sorted(p.pk for p in [contact, *others])
    withdraw(contact, purpose="newsletter", channel="sms", at=timezone.now(), source="sms_stop")
    at_send = contactable(
        Contact.objects.filter(pk__in=snapshot), purpose="newsletter", channel="sms"
    )
    assert ids(at_send) == sorted(p.pk for p in others)


def test_an_older_event_recorded_late_does_not_override_a_newer_decision(contact):
    withdraw(contact, at=T0 + timedelta(days=10))
    grant(contact, at=T0)  # an import of an old sign-up arrives afterwards
    state = CurrentConsent.objects.get(contact=contact)
    assert state.granted is False
    assert ids(contactable(Contact.objects.all(), purpose="promotions", channel="sms")) == []


def test_double_opt_in_counts_only_once_confirmed(
    contact, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        request = double_opt_in_request(contact=contact, purpose="newsletter", source="form", at=T0)
    assert request.awaiting_confirmation
    assert len(mailoutbox) == 1 and mailoutbox[0].to == [contact.email]
    assert "/consent/confirm/" in mailoutbox[0].body
    everyone = Contact.objects.all()
    assert ids(contactable(everyone, purpose="newsletter", channel="email")) == []
    assert not consent_state_as_of(
        contact=contact, purpose="newsletter", channel="email", at=T0 + timedelta(hours=1)
    ).granted
    confirmed_at = T0 + timedelta(hours=2)
    outcome = double_opt_in_confirm(
        contact_id=contact.pk, request_event_id=request.pk, at=confirmed_at
    )
    assert outcome.confirmed
    assert outcome.event.proof["request_event_id"] == request.pk
    assert ids(contactable(everyone, purpose="newsletter", channel="email")) == [contact.pk]
    state = consent_state_as_of(
        contact=contact, purpose="newsletter", channel="email", at=confirmed_at
    )
    assert (state.granted, state.event_id) == (True, outcome.event.pk)
    # A second click confirms nothing more.
    again = double_opt_in_confirm(
        contact_id=contact.pk, request_event_id=request.pk, at=confirmed_at
    )
    assert not again.confirmed
    assert ConsentEvent.objects.filter(contact=contact).count() == 2


def test_legitimate_interest_applies_until_the_person_objects(contact):
    other = ContactFactory()
    everyone = Contact.objects.all()
    assert ids(without_profiling_objection(everyone)) == sorted([contact.pk, other.pk])
    assert consent_state_as_of(contact=contact, purpose="profiling", channel="any", at=T0).granted
    withdraw(contact, purpose="profiling", channel="any", source="preference_centre")
    assert ids(without_profiling_objection(everyone)) == [other.pk]
    # Profiling is decided on the "any" channel whatever channel is asked.
    assert not consent_state_as_of(
        contact=contact, purpose="profiling", channel="email", at=T0 + timedelta(seconds=1)
    ).granted
    assert ids(contactable(everyone, purpose="profiling", channel="email")) == [other.pk]


@pytest.mark.parametrize(
    ("purpose", "channel", "message"),
    [
        ("horoscope", "sms", "unknown purpose 'horoscope'"),
        ("promotions", "fax", "unknown channel 'fax'"),
        ("profiling", "sms", "channel 'sms' does not apply to purpose 'profiling'"),
    ],
)
def test_unknown_purpose_or_channel_is_rejected_with_its_name(contact, purpose, channel, message):
    with pytest.raises(ValueError, match=message):
        consent_record(
            contact=contact, purpose=purpose, channel=channel, granted=True, source="api", at=T0
        )
    assert ConsentEvent.objects.count() == 0


def test_unknown_source_and_naive_time_are_rejected(contact):
    with pytest.raises(ValueError, match="unknown consent source 'carrier_pigeon'"):
        consent_record(
            contact=contact,
            purpose="promotions",
            channel="sms",
            granted=True,
            source="carrier_pigeon",
            at=T0,
        )
    with pytest.raises(ValueError, match="timezone-aware"):
        consent_record(
            contact=contact,
            purpose="promotions",
            channel="sms",
            granted=True,
            source="api",
            at=T0.replace(tzinfo=None),
        )
    assert ConsentEvent.objects.count() == 0


def test_ledger_rows_cannot_be_changed_or_deleted(contact):
    row = grant(contact, proof={"ip": "203.0.113.7"})
    row.granted = False
    with pytest.raises(LedgerIsAppendOnly):
        row.save()
    with pytest.raises(LedgerIsAppendOnly):
        ConsentEvent.objects.filter(pk=row.pk).update(granted=False)
    with pytest.raises(LedgerIsAppendOnly):
        ConsentEvent.objects.filter(pk=row.pk).delete()
    with pytest.raises(LedgerIsAppendOnly):
        ConsentEvent.objects.get(pk=row.pk).delete()
    stored = ConsentEvent.objects.get(pk=row.pk)
    assert stored.granted is True and stored.proof["ip"] == "203.0.113.7"
    assert stored.proof["wording_version"] == "v1"


def test_contactable_is_one_query_and_excludes_suppressed_addresses(
    contact, django_assert_num_queries
):
    bounced = ContactFactory()
    for person in (contact, bounced):
        grant(person, purpose="promotions", channel="email")
    suppression_add(
        channel="email", address=bounced.email.upper(), reason="hard_bounce", source="test"
    )
    promotions = Purpose.objects.get(code="promotions")
    with django_assert_num_queries(1):
        result = ids(contactable(Contact.objects.all(), purpose=promotions, channel="email"))
    assert result == [contact.pk]
    with django_assert_num_queries(2):  # by code: the purpose read, then the one statement
        reasons = dict(
            annotate_exclusion_reason(
                Contact.objects.all(), purpose="promotions", channel="email"
            ).values_list("pk", "consent_exclusion_reason")
        )
    assert reasons == {contact.pk: None, bounced.pk: "suppressed"}
    # SMS to the bounced contact is unaffected by the email suppression, but lacks consent.
    reasons_sms = dict(
        annotate_exclusion_reason(
            Contact.objects.all(), purpose="promotions", channel="sms"
        ).values_list("pk", "consent_exclusion_reason")
    )
    assert reasons_sms == {contact.pk: "no_consent", bounced.pk: "no_consent"}


def test_unknown_purpose_or_channel_in_contactable_raises_with_its_name(contact):
    grant(contact)
    with pytest.raises(ValueError, match="unknown purpose 'nope'"):
        contactable(Contact.objects.all(), purpose="nope", channel="sms")
    with pytest.raises(ValueError, match="unknown channel 'pigeon'"):
        contactable(Contact.objects.all(), purpose="promotions", channel="pigeon")


def test_contract_purpose_is_contactable_without_consent(contact):
    assert ids(contactable(Contact.objects.all(), purpose="transactional", channel="email")) == [
        contact.pk
    ]


def test_consent_summary_shows_every_purpose_and_channel(contact):
    grant(contact, purpose="promotions", channel="sms")
    double_opt_in_request(contact=contact, purpose="newsletter", source="form", at=T0)
    summary = consent_summary(contact)
    by_code = {p["code"]: p for p in summary["purposes"]}
    assert set(by_code) == {
        "newsletter",
        "promotions",
        "product_updates",
        "transactional",
        "profiling",
    }
    assert by_code["promotions"]["channels"]["sms"]["granted"] is True
    assert by_code["promotions"]["channels"]["sms"]["source"] == "form"
    assert by_code["promotions"]["channels"]["email"]["granted"] is False
    assert by_code["newsletter"]["channels"]["email"]["awaiting_confirmation"] is True
    assert by_code["profiling"]["channels"] == {
        "any": {
            "granted": True,
            "decided_at": None,
            "source": None,
            "event_id": None,
            "awaiting_confirmation": False,
            "suppressed": False,
        }
    }
