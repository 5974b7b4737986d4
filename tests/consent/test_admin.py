"""The DPO's admin: read-only ledger, per-contact timeline, rights requests and ZIP export."""

import io
import json
import zipfile

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from consent.models import ConsentEvent, RightsRequest, Suppression
from consent.services import consent_record
from tests.consent.conftest import T0

pytestmark = pytest.mark.django_db


@pytest.fixture
def dpo_client(client):
    user = get_user_model().objects.create_user("dpo", password="pw-dpo-123", is_staff=True)  # noqa: S106
    user.groups.add(Group.objects.get(name="DPO"))
    client.force_login(user)
    return client


def test_ledger_is_read_only_and_timeline_shows_every_row(dpo_client, contact):
    row = consent_record(
        contact=contact,
        purpose="promotions",
        channel="sms",
        granted=True,
        source="form",
        at=T0,
        proof={"ip": "203.0.113.5"},
    )
    consent_record(
        contact=contact,
        purpose="promotions",
        channel="sms",
        granted=False,
        source="sms_stop",
        at=T0.replace(day=20),
    )
    listing = dpo_client.get("/admin/consent/consentevent/")
    assert listing.status_code == 200 and contact.external_id in listing.content.decode()
    assert dpo_client.get(f"/admin/consent/consentevent/{row.pk}/change/").status_code in (200, 403)
    dpo_client.post(f"/admin/consent/consentevent/{row.pk}/change/", {"granted": ""})
    dpo_client.post(f"/admin/consent/consentevent/{row.pk}/delete/", {"post": "yes"})
    assert ConsentEvent.objects.get(pk=row.pk).granted is True
    page = dpo_client.get(f"/admin/consent/consentevent/timeline/{contact.pk}/?lang=en")
    body = page.content.decode()
    assert page.status_code == 200
    assert "203.0.113.5" in body and body.count("promotions") >= 3


def test_access_request_downloads_a_zip_and_is_completed(dpo_client, contact):
    request = RightsRequest.objects.create(kind="access", contact=contact, received_at=T0)
    url = f"/admin/consent/rightsrequest/{request.pk}/export.zip"
    # Opening the link is a read: a page saying what the ZIP holds; nothing is marked yet.
    page = dpo_client.get(url)
    assert page.status_code == 200 and "Download the ZIP" in page.content.decode()
    request.refresh_from_db()
    assert request.completed_at is None
    response = dpo_client.post(url)
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        data = json.loads(archive.read("contact.json"))
    assert data["profile"]["email"] == contact.email
    request.refresh_from_db()
    assert request.completed_at is not None and request.handled_by == "dpo"


def test_erasure_request_carried_out_from_the_admin_after_confirmation(dpo_client, contact):
    request = RightsRequest.objects.create(
        kind="erasure", contact=contact, requester=contact.email, received_at=T0
    )
    selection = {"action": "carry_out", "_selected_action": [request.pk]}
    page = dpo_client.post("/admin/consent/rightsrequest/", selection)
    body = page.content.decode()
    assert page.status_code == 200
    assert "will be erased for good" in body and "This cannot be undone." in body
    assert contact.external_id in body and 'name="confirm" value="yes"' in body
    contact.refresh_from_db()
    request.refresh_from_db()
    assert request.completed_at is None and contact.email != ""

    dpo_client.post("/admin/consent/rightsrequest/", {**selection, "confirm": "yes"})
    request.refresh_from_db()
    contact.refresh_from_db()
    assert request.completed_at is not None and request.requester == ""
    assert contact.email == "" and contact.last_name == ""
    assert Suppression.objects.filter(reason="erased").count() == 2


@pytest.mark.parametrize("role", ["Marketer", "Analyst"])
def test_only_the_dpo_carries_out_or_exports(client, contact, role):
    user = get_user_model().objects.create_user(role, password="pw-x-123", is_staff=True)  # noqa: S106
    user.groups.add(Group.objects.get(name=role))
    client.force_login(user)
    erasure = RightsRequest.objects.create(kind="erasure", contact=contact, received_at=T0)
    access = RightsRequest.objects.create(kind="access", contact=contact, received_at=T0)
    listing = client.get("/admin/consent/rightsrequest/")
    assert listing.status_code == 200 and "carry_out" not in listing.content.decode()
    client.post(
        "/admin/consent/rightsrequest/",
        {"action": "carry_out", "_selected_action": [erasure.pk], "confirm": "yes"},
    )
    assert client.get(f"/admin/consent/rightsrequest/{access.pk}/export.zip").status_code == 403
    assert client.post(f"/admin/consent/rightsrequest/{access.pk}/export.zip").status_code == 403
    erasure.refresh_from_db()
    access.refresh_from_db()
    contact.refresh_from_db()
    assert erasure.completed_at is None and access.completed_at is None
    assert contact.email != "" and not Suppression.objects.exists()
