"""REST API: bulk consent recording with per-item answers, summary, scopes."""

import pytest
from rest_framework.test import APIClient

from consent.models import ConsentEvent
from contacts.api_keys import api_key_create

pytestmark = pytest.mark.django_db


def test_bulk_records_good_items_and_rejects_bad_ones_with_reasons(api_client, contact):
    response = api_client.post(
        "/api/v1/consents/bulk",
        {
            "source": "shop-checkout",
            "items": [
                {
                    "external_id": contact.external_id,
                    "purpose": "promotions",
                    "channel": "sms",
                    "granted": True,
                    "timestamp": "2026-01-10T10:00:00+01:00",
                    "proof": {"wording_version": "v3", "ip": "203.0.113.1"},
                },
                {
                    "external_id": contact.external_id,
                    "purpose": "horoscope",
                    "channel": "sms",
                    "granted": True,
                    "timestamp": "2026-01-10T10:00:00+01:00",
                },
                {
                    "external_id": "nobody",
                    "purpose": "promotions",
                    "channel": "sms",
                    "granted": True,
                    "timestamp": "2026-01-10T10:00:00+01:00",
                },
            ],
        },
        format="json",
    )
    assert response.status_code == 207
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["recorded", "rejected", "rejected"]
    assert "unknown purpose 'horoscope'" in results[1]["errors"]
    assert "unknown contact 'nobody'" in results[2]["errors"]
    row = ConsentEvent.objects.get()
    assert (row.source, row.proof["origin"], row.proof["wording_version"]) == (
        "api",
        "shop-checkout",
        "v3",
    )
    summary = api_client.get(f"/api/v1/consents/{contact.external_id}").json()
    promotions = next(p for p in summary["purposes"] if p["code"] == "promotions")
    assert promotions["channels"]["sms"]["granted"] is True
    detail = api_client.get(f"/api/v1/contacts/{contact.external_id}").json()
    assert detail["consent"]["contact_id"] == contact.pk


def test_a_key_without_consent_write_scope_is_refused(contact):
    _key, raw = api_key_create(name="reader", scopes=["consent:read"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    response = client.post("/api/v1/consents/bulk", {"items": []}, format="json")
    assert response.status_code == 403
    assert client.get(f"/api/v1/consents/{contact.external_id}").status_code == 200
