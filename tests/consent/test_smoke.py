from datetime import timedelta

from consent.selectors import consent_state_as_of, contactable
from consent.services import consent_record
from contacts.models import Contact
from tests.consent.conftest import T0


def test_smoke(contact):
    consent_record(
        contact=contact, purpose="promotions", channel="sms", granted=True, source="form", at=T0
    )
    assert consent_state_as_of(contact=contact, purpose="promotions", channel="sms", at=T0).granted
    assert list(contactable(Contact.objects.all(), purpose="promotions", channel="sms")) == [
        contact
    ]
    assert (
        list(
            contactable(
                Contact.objects.all(),
                purpose="promotions",
                channel="sms",
                at=T0 - timedelta(days=1),
            )
        )
        == []
    )
    assert list(contactable(Contact.objects.all(), purpose="profiling", channel="email")) == [
        contact
    ]
