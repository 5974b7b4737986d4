from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from contacts.models import ApiKey

pytestmark = pytest.mark.django_db


def create_key(*args: str) -> str:
    out = StringIO()
    call_command("create_api_key", *args, stdout=out)
    return out.getvalue().strip().splitlines()[-1]


def test_key_is_printed_once_and_only_its_hash_is_stored():
    raw = create_key("CRM sync", "--scopes", "contacts:write", "events:write")
    key = ApiKey.objects.get()
    assert key.scopes == ["contacts:write", "events:write"]
    assert raw.split(".", 1)[1] not in key.hashed_key
    assert raw not in str(list(ApiKey.objects.values()))


def test_unknown_scope_is_refused():
    with pytest.raises(CommandError, match="unknown scope"):
        create_key("x", "--scopes", "everything")
    assert not ApiKey.objects.exists()


def test_schema_is_public_and_documents_api_key_header():
    response = APIClient().get("/api/v1/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert response.json()["components"]["securitySchemes"]["ApiKey"]["name"] == "Authorization"


def test_revoked_or_forged_key_is_refused(client):
    from contacts.api_keys import ApiKeyAuthentication, api_key_verify

    raw = create_key("temp", "--scopes", "contacts:read")
    assert api_key_verify(raw) is not None
    assert api_key_verify(raw[:-2] + "xx") is None
    assert api_key_verify("garbage") is None
    ApiKey.objects.update(revoked_at="2026-01-01T00:00:00Z")
    assert api_key_verify(raw) is None
    assert ApiKeyAuthentication.keyword == "Api-Key"
