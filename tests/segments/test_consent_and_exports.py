from __future__ import annotations

from datetime import UTC, datetime

import pytest

from consent.services.ledger import consent_record
from segments.rules import RuleError
from segments.selectors import segment_members
from segments.services import segment_create, segments_compute
from tests.factories import ContactFactory

T0 = datetime(2026, 1, 10, 9, tzinfo=UTC)
NEWSLETTER_EMAIL = {"type": "consent", "purpose": "newsletter", "channel": "email"}


@pytest.fixture
def purposes(db):
    import importlib

    from consent.models import Purpose

    migration = importlib.import_module("consent.migrations.0002_default_purposes")
    for data in migration.PURPOSES:
        Purpose.objects.get_or_create(code=data["code"], defaults=data)


def test_consent_condition_keeps_only_contacts_who_may_be_emailed(backend, purposes):
    yes, withdrawn, silent = ContactFactory(), ContactFactory(), ContactFactory()
    consent_record(
        contact=yes, purpose="newsletter", channel="email", granted=True, source="form", at=T0
    )
    consent_record(
        contact=withdrawn, purpose="newsletter", channel="email", granted=True, source="form", at=T0
    )
    consent_record(
        contact=withdrawn,
        purpose="newsletter",
        channel="email",
        granted=False,
        source="unsubscribe_link",
        at=T0.replace(day=11),
    )
    segment = segment_create(name="Newsletter readers", rule=NEWSLETTER_EMAIL)
    negated = segment_create(name="Not reachable", rule={"not": NEWSLETTER_EMAIL})
    segments_compute()
    assert set(segment_members(segment)) == {yes}
    assert set(segment_members(negated)) == {withdrawn, silent}


def test_consent_condition_refuses_unknown_purpose_and_channel(purposes):
    with pytest.raises(RuleError, match="unknown consent purpose “spam”"):
        segment_create(name="X", rule={"type": "consent", "purpose": "spam", "channel": "email"})
    with pytest.raises(RuleError, match="unknown channel “fax”"):
        segment_create(
            name="X", rule={"type": "consent", "purpose": "newsletter", "channel": "fax"}
        )


def test_memberships_appear_in_the_contacts_data_export(db):
    from consent.exports import registered_sections

    contact = ContactFactory()
    segment_create(name="Everyone", rule={"all": []})
    segments_compute()
    section = registered_sections()["memberships"](contact)
    assert [row["segment"] for row in section] == ["Everyone"]
    assert section[0]["exited_at"] is None
