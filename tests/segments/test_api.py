from __future__ import annotations

import os

import pytest
from rest_framework.test import APIClient

from contacts.api_keys import api_key_create
from segments.models import Segment
from segments.services import segment_create, segments_compute
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db

RECENT = {"type": "feature", "feature": "recency_days", "op": "lte", "value": 30}


def _client(*scopes: str) -> APIClient:
    _key, raw = api_key_create(name="t", scopes=list(scopes))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    return client


def test_create_then_read_a_segment_with_its_plain_language_rule(api_client):
    created = api_client.post(
        "/api/v1/segments", {"name": "Recent buyers", "rule": RECENT}, format="json"
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["rule"] == RECENT and body["size"] == 0
    assert (body["compute_state"], body["compute_error"]) == ("computing", "")
    assert "days since last purchase is at most 30" in body["rule_text"]
    detail = api_client.get(f"/api/v1/segments/{body['id']}")
    assert detail.status_code == 200 and detail.json()["name"] == "Recent buyers"
    listed = api_client.get("/api/v1/segments")
    assert [s["name"] for s in listed.json()["results"]] == ["Recent buyers"]


def test_segment_list_is_paginated_by_cursor_and_refuses_a_bad_page_size(api_client):
    for i in range(5):
        segment_create(name=f"S{i}", rule={**RECENT, "value": i})
    first = api_client.get("/api/v1/segments?page_size=2").json()
    assert [s["name"] for s in first["results"]] == ["S0", "S1"] and first["previous"] is None
    second = api_client.get(first["next"]).json()
    third = api_client.get(second["next"]).json()
    assert [s["name"] for s in second["results"] + third["results"]] == ["S2", "S3", "S4"]
    assert third["next"] is None
    forged = api_client.get("/api/v1/segments?cursor=%C2%82%F0%A6%BC%AE")
    assert forged.status_code == 400 and "Invalid cursor" in forged.json()["cursor"][0]
    for bad in ("0", "1001", "null", "-1", "1e3"):
        response = api_client.get(f"/api/v1/segments?page_size={bad}")
        assert response.status_code == 400
        assert "page_size must be a whole number from 1 to 1000" in response.json()["page_size"][0]


def test_segment_list_page_stays_small_with_the_largest_rules_accepted(api_client):
    """Rules are bounded (1,000 values per list) and the list is paged (100 per page)."""
    big = {
        "type": "field",
        "field": "city",
        "op": "in",
        "value": [f"city {i}" for i in range(1000)],
    }
    for i in range(3):
        segment_create(name=f"Cities {i}", rule=big)
    huge = {**big, "value": [f"city {i}" for i in range(100_000)]}
    refused = api_client.post("/api/v1/segments", {"name": "Huge", "rule": huge}, format="json")
    assert refused.status_code == 400
    page = api_client.get("/api/v1/segments?page_size=1")
    assert page.status_code == 200 and len(page.content) < 30_000


def test_invalid_rule_is_refused_with_a_message_naming_the_condition(api_client):
    response = api_client.post(
        "/api/v1/segments",
        {
            "name": "Bad",
            "rule": {
                "all": [RECENT, {"type": "feature", "feature": "shoe_size", "op": "eq", "value": 3}]
            },
        },
        format="json",
    )
    assert response.status_code == 400
    assert "Condition all[1]: unknown feature “shoe_size”" in response.json()["rule"][0]
    response = api_client.post(
        "/api/v1/segments",
        {
            "name": "Bad op",
            "rule": {"type": "field", "field": "country", "op": "gt", "value": "FR"},
        },
        format="json",
    )
    assert "operator “gt” does not apply to a string" in response.json()["rule"][0]
    response = api_client.post(
        "/api/v1/segments",
        {
            "name": "Bad date",
            "rule": {"type": "field", "field": "created_at", "op": "after", "value": "31/12/2025"},
        },
        format="json",
    )
    assert "“31/12/2025” is not a valid date" in response.json()["rule"][0]
    assert not Segment.objects.exists()


def test_put_replaces_the_rule_and_refuses_a_cycle(api_client):
    a = segment_create(name="A", rule={"all": []})
    b = segment_create(name="B", rule={"type": "segment", "segment": a.pk})
    response = api_client.put(
        f"/api/v1/segments/{a.pk}",
        {"name": "A", "rule": {"type": "segment", "segment": b.pk}},
        format="json",
    )
    assert response.status_code == 400
    assert "cycle: A → B → A" in response.json()["rule"][0]
    response = api_client.put(
        f"/api/v1/segments/{a.pk}", {"name": "A2", "rule": RECENT}, format="json"
    )
    assert response.status_code == 200
    a.refresh_from_db()
    assert (a.name, a.rule) == ("A2", RECENT)


def test_members_are_paginated_external_ids(api_client):
    for i in range(5):
        ContactFactory(external_id=f"EXT-{i}")
    segment = segment_create(name="Everyone", rule={"all": []})
    segments_compute()
    first = api_client.get(f"/api/v1/segments/{segment.pk}/members", {"page_size": 3}).json()
    assert first["results"] == ["EXT-0", "EXT-1", "EXT-2"]
    second = api_client.get(first["next"]).json()
    assert second["results"] == ["EXT-3", "EXT-4"] and second["next"] is None
    assert api_client.get("/api/v1/segments/999/members").status_code == 404


def test_scopes_are_enforced():
    segment = segment_create(name="Everyone", rule={"all": []})
    reader = _client("segments:read")
    assert reader.get(f"/api/v1/segments/{segment.pk}").status_code == 200
    assert (
        reader.post("/api/v1/segments", {"name": "X", "rule": RECENT}, format="json").status_code
        == 403
    )
    writer = _client("segments:write")
    assert writer.get("/api/v1/segments").status_code == 403
    assert (
        writer.post("/api/v1/segments", {"name": "X", "rule": RECENT}, format="json").status_code
        == 201
    )
    assert APIClient().get("/api/v1/segments").status_code in (401, 403)


def test_openapi_schema_documents_the_rule_format(api_client):
    schema = api_client.get("/api/v1/schema/", {"format": "json"})
    assert schema.status_code == 200
    text = schema.content.decode()
    assert "/api/v1/segments/{segment_id}/members" in text
    assert "High-value recent buyers" in text and "within_days" in text


def test_openapi_schema_is_valid_and_documents_the_segment_list_page():
    """drf-spectacular's own validator (OpenAPI 3.0 JSON schema) accepts the whole schema."""
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--file", os.devnull)
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    listed = schema["paths"]["/api/v1/segments"]["get"]["responses"]["200"]
    body = listed["content"]["application/json"]["schema"]
    assert body["required"] == ["next", "previous", "results"]
    page_size = next(
        p
        for p in schema["paths"]["/api/v1/segments"]["get"]["parameters"]
        if p["name"] == "page_size"
    )
    assert page_size["schema"] == {"type": "integer", "minimum": 1, "maximum": 1000}
