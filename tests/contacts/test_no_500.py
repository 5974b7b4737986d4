"""Property-based: whatever the body, the bulk API answers 2xx/4xx with per-item results —
never a 500 — and stores exactly the events it reports as created (SQLite pass)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.contacts.fuzzing import BODY, assert_never_500
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture
def known_contacts(db):
    ContactFactory(external_id="C-1")
    ContactFactory(external_id="C-2")


@FUZZ
@given(payload=BODY)
def test_events_bulk_never_500(api_client, known_contacts, payload):
    assert_never_500(api_client, "/api/v1/events/bulk", payload)


@FUZZ
@given(payload=BODY)
def test_contacts_bulk_never_500(api_client, known_contacts, payload):
    assert_never_500(api_client, "/api/v1/contacts/bulk", payload)


@FUZZ
@given(raw=st.binary(max_size=200))
def test_arbitrary_bytes_never_500(api_client, raw):
    assert_never_500(api_client, "/api/v1/events/bulk", raw, raw=True)
