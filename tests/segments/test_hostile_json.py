"""Deeply nested or mis-shaped JSON is a 400 with a message on every JSON door, never a 500."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User

from consent.models import ConsentEvent
from segments.models import Segment

pytestmark = pytest.mark.django_db

DEEP = b"[" * 3000 + b"]" * 3000
DEEP_IN_OBJECT = b'{"name": "Deep", "rule": {"all": ' + b"[" * 3000 + b"]" * 3000 + b"}}"
NESTED_70 = json.dumps({"name": "Deep", "rule": {"all": [json.loads("[" * 70 + "]" * 70)]}})


@pytest.fixture
def admin_logged(client):
    client.force_login(User.objects.create_superuser("admin", "admin@example.fr", "x"))
    return client


@pytest.mark.parametrize("body", [DEEP, DEEP_IN_OBJECT, NESTED_70.encode()])
def test_deeply_nested_json_on_the_segments_api_is_a_400(api_client, body):
    response = api_client.post("/api/v1/segments", body, content_type="application/json")
    assert response.status_code == 400
    assert "nested more than 64 levels deep" in response.json()["detail"]
    assert not Segment.objects.exists()


def test_deeply_nested_json_on_the_consent_bulk_api_is_a_400(client):
    from contacts.api_keys import api_key_create

    _key, raw = api_key_create(name="consent", scopes=["consent:write"])
    response = client.post(
        "/api/v1/consents/bulk",
        b'{"items": ' + DEEP + b"}",
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Api-Key {raw}",
    )
    assert response.status_code == 400
    assert "nested more than 64 levels deep" in response.json()["detail"]
    assert not ConsentEvent.objects.exists()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (DEEP, "JSON nested more than 64 levels deep."),
        (b"[1]", "The body must be a JSON object with a “rule”."),
        (b'"rule"', "The body must be a JSON object with a “rule”."),
        (b"{}", "The body must be a JSON object with a “rule”."),
        (b"{not json", "Expecting property name"),
        (b'{"rule": {"all": []}, "priority": 1e400}', "“priority” must be a whole number."),
        (b'{"rule": {"all": []}, "segment_id": [1]}', "“segment_id” must be a whole number."),
        (b'{"rule": {"all": []}, "family": "x"}', "“family” must be a whole number."),
        (b'{"rule": {"all": []}, "priority": NaN}', "NaN is not valid JSON."),
        (b"\xff\xfe{", "not valid UTF-8"),
    ],
)
def test_live_estimate_refuses_a_malformed_body_with_a_message(admin_logged, body, message):
    response = admin_logged.post(
        "/admin/segments/segment/estimate/", body, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["ok"] is False
    assert message in response.json()["error"]


def test_live_estimate_accepts_the_builders_text_fields(admin_logged):
    response = admin_logged.post(
        "/admin/segments/segment/estimate/",
        json.dumps({"rule": {"all": []}, "segment_id": None, "family": "", "priority": "100"}),
        content_type="application/json",
    )
    assert response.status_code == 200 and response.json()["ok"]


@pytest.mark.parametrize(
    ("rule_text", "message"),
    [
        ("[" * 3000 + "]" * 3000, "JSON nested more than 64 levels deep."),
        ('{"type": "feature", "feature": "monetary_total", "op": "gt", "value": NaN}', "NaN"),
    ],
)
def test_admin_rule_box_refuses_deep_or_non_finite_json_with_a_form_error(
    admin_logged, rule_text, message
):
    response = admin_logged.post(
        "/admin/segments/segment/add/",
        {"name": "Deep", "priority": 100, "is_active": "on", "rule": rule_text},
    )
    assert response.status_code == 200
    assert "Invalid JSON" in response.content.decode() and message in response.content.decode()
    assert not Segment.objects.exists()
