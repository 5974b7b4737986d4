"""REST bulk API: per-item answers, limits, bad input never a 500."""

from __future__ import annotations

import json

import pytest
from django.test.utils import override_settings

from contacts import hooks
from contacts.api_keys import api_key_create
from contacts.models import Contact, Event
from tests.factories import ContactFactory, EventFactory

pytestmark = pytest.mark.django_db


def post(client, url, payload, **extra):
    body = payload if isinstance(payload, bytes | str) else json.dumps(payload)
    return client.post(url, data=body, content_type="application/json", **extra)


def event(key, **overrides):
    return {
        "external_id": "C-1",
        "type": "page_view",
        "timestamp": "2026-01-10T09:30:00+01:00",
        "idempotency_key": key,
        **overrides,
    }


def test_contacts_bulk_answers_per_item_and_valid_items_land(api_client):
    response = post(
        api_client,
        "/api/v1/contacts/bulk",
        {
            "source": "crm",
            "items": [
                {"external_id": "C-1", "email": "Lea@Example.FR", "country": "France"},
                {"external_id": "C-2", "phone": "not a phone"},
                {"email": "hugo@example.fr", "phone": "06 12 34 56 78", "nickname": "h"},
            ],
        },
    )
    assert response.status_code == 207
    body = response.json()
    assert [r["status"] for r in body["results"]] == ["created", "rejected", "rejected"]
    assert "phone" in body["results"][1]["errors"]
    assert body["results"][2]["errors"] == {"nickname": "Unknown field."}
    assert body["counts"] == {"created": 1, "updated": 0, "duplicate": 0, "rejected": 2}
    assert list(Contact.objects.values_list("external_id", "email", "country")) == [
        ("C-1", "lea@example.fr", "FR")
    ]


def test_events_bulk_is_idempotent(api_client):
    ContactFactory(external_id="C-1")
    payload = {"source": "shop", "items": [event("e1"), event("e2")]}
    first = post(api_client, "/api/v1/events/bulk", payload)
    second = post(api_client, "/api/v1/events/bulk", payload)
    assert first.status_code == 200
    assert first.json()["counts"]["created"] == 2
    assert second.status_code == 200
    assert second.json()["counts"] == {"created": 0, "updated": 0, "duplicate": 2, "rejected": 0}
    assert Event.objects.count() == 2


def test_all_items_rejected_is_400_with_reasons(api_client):
    response = post(
        api_client, "/api/v1/events/bulk", [event("e1", timestamp="2099-01-01T00:00:00Z")]
    )
    assert response.status_code == 400
    assert response.json()["results"][0]["errors"]["timestamp"] == "In the future."


def test_batch_of_ten_thousand_items_is_refused_with_a_clear_message(api_client):
    response = post(api_client, "/api/v1/events/bulk", [event(f"e{i}") for i in range(10_000)])
    assert response.status_code == 413
    assert "at most 1000 items" in response.json()["detail"]
    assert not Event.objects.exists()


def test_malformed_json_and_wrong_envelope_are_400(api_client):
    assert post(api_client, "/api/v1/events/bulk", b"{not json").status_code == 400
    assert post(api_client, "/api/v1/events/bulk", b"[NaN]").status_code == 400
    assert post(api_client, "/api/v1/events/bulk", b"[" * 100_000).status_code == 400
    assert post(api_client, "/api/v1/events/bulk", b"\xff\xfe").status_code == 400
    response = post(api_client, "/api/v1/events/bulk", {"items": "x"})
    assert response.status_code == 400 and "items" in response.json()
    response = post(api_client, "/api/v1/events/bulk", {"items": [], "extra": 1})
    assert response.status_code == 400 and "extra" in response.json()
    assert post(api_client, "/api/v1/events/bulk", []).status_code == 400


def test_nul_bytes_and_ten_megabyte_strings_are_rejected_per_item(api_client):
    ContactFactory(external_id="C-1")
    items = [
        event("nul", properties={"note": "a\x00b"}),
        event("huge", properties={"note": "x" * (10 * 1024 * 1024)}),
        event("ok"),
    ]
    response = post(api_client, "/api/v1/events/bulk", items)
    assert response.status_code == 207
    results = response.json()["results"]
    assert "NUL" in results[0]["errors"]["properties"]
    assert "bytes" in results[1]["errors"]["properties"]
    assert results[2]["status"] == "created"
    assert list(Event.objects.values_list("idempotency_key", flat=True)) == ["ok"]


@override_settings(CIBLE_API_MAX_BODY_BYTES=1000)
def test_body_over_the_limit_is_413(api_client):
    response = post(api_client, "/api/v1/events/bulk", [event("e", properties={"x": "y" * 2000})])
    assert response.status_code == 413
    assert "1000" in response.json()["detail"]


def test_scopes_and_revocation_are_enforced(client):
    _key, raw = api_key_create(name="reader", scopes=["contacts:read"])
    response = post(
        client, "/api/v1/events/bulk", [event("e")], HTTP_AUTHORIZATION=f"Api-Key {raw}"
    )
    assert response.status_code == 403
    response = post(client, "/api/v1/events/bulk", [event("e")])
    assert response.status_code in (401, 403)


def test_contact_detail_shows_fields_events_and_registered_sections(api_client):
    contact = ContactFactory(external_id="C-9", email="zoe@example.fr")
    EventFactory(contact=contact)
    hooks.contact_detail_sections["segments"] = lambda c: [f"vip-{c.external_id}"]
    hooks.contact_detail_sections["broken"] = lambda c: 1 / 0
    try:
        response = api_client.get("/api/v1/contacts/C-9")
    finally:
        del hooks.contact_detail_sections["segments"]
        del hooks.contact_detail_sections["broken"]
    assert response.status_code == 200
    body = response.json()
    assert body["email"] == "zoe@example.fr"
    assert body["events"] == 1
    assert body["segments"] == ["vip-C-9"]
    assert body["broken"] is None
    assert api_client.get("/api/v1/contacts/nobody").status_code == 404


def test_openapi_schema_documents_the_bulk_endpoints(client):
    response = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    assert "/api/v1/events/bulk" in schema["paths"]
    assert "/api/v1/contacts/bulk" in schema["paths"]
    assert "/api/v1/contacts/{external_id}" in schema["paths"]


@pytest.mark.parametrize("url", ["/api/v1/events/bulk", "/api/v1/contacts/bulk"])
def test_properties_nested_beyond_the_api_limit_are_400_with_the_limit_named(api_client, url):
    """Nesting too shallow for the decoder to overflow (200 levels) is still refused with the
    same limit as every other JSON door, instead of reaching storage and later readers."""
    deep: object = 1
    for _ in range(200):
        deep = {"k": deep}
    item = event("deep", properties=deep) if "events" in url else {"external_id": "C-9"}
    if "contacts" in url:
        item["attributes"] = deep
    response = post(api_client, url, {"items": [item]})
    assert response.status_code == 400
    assert "64 levels" in json.dumps(response.json())
    assert not Event.objects.filter(idempotency_key="deep").exists()


@pytest.mark.parametrize(("levels", "refused"), [(63, False), (64, False), (65, True), (400, True)])
def test_the_64_level_bound_counts_the_deepest_branch_of_a_wide_body(levels, refused):
    """The nesting bound (config.api_json) holds at exactly 64 levels wherever the deep branch
    sits among many flat siblings, as in a bulk body of 1,000 items."""
    from config.api_json import JSONTooDeep, json_loads_bounded

    deep = "1"
    for level in range(levels - 2):  # inside the envelope object and its items list
        deep = f'{{"k": {deep}}}' if level % 2 else f"[{deep}]"
    flat = ['{"external_id": "C-1", "properties": {"amount": 1, "tags": ["a"]}}'] * 500
    body = '{"items": [' + ", ".join([*flat, deep, *flat]) + "]}"
    if refused:
        with pytest.raises(JSONTooDeep, match="64 levels"):
            json_loads_bounded(body)
    else:
        assert len(json_loads_bounded(body)["items"]) == 1001
