"""One identifier everywhere: every admin page that asks for a contact takes its external ID
(the identifier its pages show), still takes the internal number old links carry, and says
clearly when no contact matches."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import User

from consent.models import RightsRequest
from segments.services import segment_create
from tests.factories import ContactFactory, TemplateFactory

pytestmark = pytest.mark.django_db

UNKNOWN = "No contact has the external ID (or number) “{}”."


@pytest.fixture
def staff(client):
    client.force_login(User.objects.create_superuser("admin", "admin@example.fr", "x"))
    return client


@pytest.fixture
def contact(db):
    return ContactFactory(external_id="CRM-0042", first_name="Léa")


def test_template_preview_takes_the_external_id_and_still_the_number(staff, contact):
    template = TemplateFactory()
    url = f"/admin/activation/template/{template.pk}/preview/"
    for typed in ("CRM-0042", " CRM-0042 ", str(contact.pk)):
        body = staff.get(url, {"contact": typed, "lang": "en"}).content.decode()
        assert "Bonjour Léa" in body, typed
        assert "Rendered for CRM-0042" in body


@pytest.mark.parametrize("typed", ["NOPE-1", "99999999999999999999999", "a\x00b", "x" * 5000])
def test_template_preview_names_an_unknown_contact(staff, contact, typed):
    template = TemplateFactory()
    page = staff.get(
        f"/admin/activation/template/{template.pk}/preview/", {"contact": typed, "lang": "en"}
    )
    body = page.content.decode()
    assert page.status_code == 200
    assert "No contact has the external ID (or number)" in body
    assert "Bonjour" not in body


def test_test_send_by_external_id_leaves(staff, contact, smtp_settings):
    from consent.services import consent_record

    consent_record(
        contact=contact,
        purpose="newsletter",
        channel="email",
        granted=True,
        source="form",
        at=datetime(2026, 3, 1, tzinfo=UTC),
    )
    template = TemplateFactory()
    response = staff.post(
        f"/admin/activation/template/{template.pk}/preview/?lang=en",
        {"contact": "CRM-0042", "to": "qa@example.fr", "action": "send"},
        follow=True,
    )
    assert "Test message sent." in response.content.decode()
    assert smtp_settings.to("qa@example.fr")


def test_explain_takes_the_external_id_the_number_and_names_an_unknown_one(staff, contact):
    segment = segment_create(
        name="Parisiens", rule={"type": "field", "field": "city", "op": "eq", "value": "Paris"}
    )
    url = f"/admin/segments/segment/{segment.pk}/explain/"
    for typed in ("CRM-0042", str(contact.pk)):
        body = staff.get(url, {"contact": typed, "lang": "en"}).content.decode()
        assert "The rule holds for this contact now." in body and "CRM-0042" in body
    body = staff.get(url, {"contact": "NOPE-1", "lang": "en"}).content.decode()
    assert UNKNOWN.format("NOPE-1") in body


def test_rights_request_form_takes_the_external_id(staff, contact):
    page = staff.get("/admin/consent/rightsrequest/add/?lang=en").content.decode()
    assert "Contact (external ID)" in page
    response = staff.post(
        "/admin/consent/rightsrequest/add/?lang=en",
        {
            "kind": "access",
            "contact": "CRM-0042",
            "received_at_0": "2026-03-01",
            "received_at_1": "10:00:00",
            "requester": "lea@example.fr",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert RightsRequest.objects.get().contact == contact
    response = staff.post(
        "/admin/consent/rightsrequest/add/?lang=en",
        {
            "kind": "access",
            "contact": "NOPE-1",
            "received_at_0": "2026-03-01",
            "received_at_1": "10:00:00",
            "requester": "x",
        },
    )
    assert response.status_code == 200 and UNKNOWN.format("NOPE-1") in response.content.decode()
    assert RightsRequest.objects.count() == 1


def test_rights_request_change_form_shows_the_external_id(staff, contact):
    request = RightsRequest.objects.create(
        kind="access", contact=contact, received_at=datetime(2026, 3, 1, 10, tzinfo=UTC)
    )
    body = staff.get(f"/admin/consent/rightsrequest/{request.pk}/change/").content.decode()
    assert 'value="CRM-0042"' in body
