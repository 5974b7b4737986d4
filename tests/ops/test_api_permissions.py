"""API access: keys keep their scopes (empty = nothing); admin sessions need model permissions."""

from io import StringIO

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from contacts.api_keys import api_key_create
from contacts.models import ApiKey
from segments.models import Segment
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db

CONSENT_ROW = {
    "items": [
        {
            "external_id": "C-1",
            "purpose": "newsletter",
            "channel": "email",
            "granted": True,
            "timestamp": "2026-01-01T10:00:00+01:00",
        }
    ]
}
SEGMENT = {"name": "Buyers", "rule": {"all": [{"feature": "frequency", "op": "gte", "value": 1}]}}


def session_client(role: str | None, **flags) -> APIClient:
    user = User.objects.create_user(f"user-{role}", password="x", is_staff=True, **flags)
    if role:
        user.groups.add(Group.objects.get(name=role))
    client = APIClient()
    client.force_login(user)
    return client


def test_staff_without_group_cannot_read_write_or_create_through_the_api():
    ContactFactory(external_id="C-1")
    client = session_client(None)
    assert client.get("/api/v1/contacts/C-1").status_code == 403
    assert client.post("/api/v1/consents/bulk", CONSENT_ROW, format="json").status_code == 403
    assert client.post("/api/v1/segments", SEGMENT, format="json").status_code == 403
    response = client.get("/api/v1/segments")
    assert response.status_code == 403
    assert "permission" in response.json()["detail"]
    assert not Segment.objects.exists()


def test_session_user_gets_what_the_role_grants():
    ContactFactory(external_id="C-1")
    analyst = session_client("Analyst")
    assert analyst.get("/api/v1/contacts/C-1").status_code == 200
    # Consent is recorded by the DPO (and integrations); the Analyst only reads it.
    assert analyst.post("/api/v1/consents/bulk", CONSENT_ROW, format="json").status_code == 403
    dpo = session_client("DPO")
    assert dpo.post("/api/v1/consents/bulk", CONSENT_ROW, format="json").status_code == 200
    assert dpo.post("/api/v1/segments", SEGMENT, format="json").status_code == 403
    superuser = session_client(None, is_superuser=True)
    assert superuser.get("/api/v1/contacts/C-1").status_code == 200


def test_empty_scopes_mean_no_access():
    key, raw = api_key_create(name="nothing", scopes=[])
    assert ApiKey.objects.get(pk=key.pk).scopes == []
    ContactFactory(external_id="C-1")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    assert client.get("/api/v1/contacts/C-1").status_code == 403
    assert client.get("/api/v1/segments").status_code == 403


def test_create_api_key_asks_for_scopes_and_says_when_all_are_granted():
    with pytest.raises(CommandError, match="--scopes"):
        call_command("create_api_key", "CRM", stdout=StringIO())
    assert not ApiKey.objects.exists()
    out = StringIO()
    call_command("create_api_key", "CRM", "--scopes", "*", stdout=out)
    assert "EVERY scope" in out.getvalue()
    assert ApiKey.objects.get().scopes == ["*"]
