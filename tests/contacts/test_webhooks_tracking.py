"""Provider webhooks (HMAC, replay window) and the tracking endpoint (CORS, rate limit)."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from django.core.cache import cache
from django.test.utils import override_settings

from contacts.models import Contact, Event
from contacts.services.webhooks import tracking_token, webhook_signature
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db

SECRET = "whsec-test"


def signed_post(client, body: dict, *, secret=SECRET, at=None, provider="mailer"):
    raw = json.dumps(body).encode()
    timestamp = str(int(at if at is not None else time.time()))
    return client.post(
        f"/webhooks/{provider}/",
        data=raw,
        content_type="application/json",
        HTTP_X_CIBLE_TIMESTAMP=timestamp,
        HTTP_X_CIBLE_SIGNATURE=webhook_signature(secret=secret, timestamp=timestamp, body=raw),
    )


BOUNCE = {
    "events": [
        {
            "id": "evt-1",
            "type": "email_bounce",
            "email": "Lea@Example.fr",
            "timestamp": "2026-01-05T10:00:00Z",
            "properties": {"bounce_type": "hard", "address": "lea@example.fr"},
        }
    ]
}


@override_settings(CIBLE_WEBHOOK_SECRETS={"mailer": SECRET})
def test_signed_webhook_records_event_once_even_when_redelivered(client):
    contact = ContactFactory(email="lea@example.fr")
    first = signed_post(client, BOUNCE)
    again = signed_post(client, BOUNCE)
    assert first.status_code == 200 and first.json()["counts"]["created"] == 1
    assert again.json()["counts"]["duplicate"] == 1
    event = Event.objects.get()
    assert (event.contact, event.type, event.source) == (contact, "email_bounce", "webhook:mailer")
    assert event.properties["bounce_type"] == "hard"


@override_settings(CIBLE_WEBHOOK_SECRETS={"mailer": SECRET})
def test_webhook_with_bad_signature_stale_timestamp_or_unknown_provider_is_refused(client):
    ContactFactory(email="lea@example.fr")
    assert signed_post(client, BOUNCE, secret="wrong").status_code == 401
    stale = signed_post(client, BOUNCE, at=time.time() - 3600)
    assert stale.status_code == 401 and "replay" in stale.json()["detail"]
    assert signed_post(client, BOUNCE, provider="other").status_code == 404
    unsigned = client.post("/webhooks/mailer/", data=b"{}", content_type="application/json")
    assert unsigned.status_code == 401
    assert not Event.objects.exists()


@override_settings(CIBLE_WEBHOOK_SECRETS={"sms": SECRET})
def test_inbound_sms_webhook_creates_event_on_contact_by_phone(client):
    contact = ContactFactory(phone="+33612345678")
    body = {
        "events": [
            {
                "id": "sms-1",
                "type": "sms_inbound",
                "phone": "06 12 34 56 78",
                "timestamp": "2026-01-05T10:00:00+01:00",
                "properties": {"body": "STOP", "from": "+33612345678"},
            }
        ]
    }
    assert signed_post(client, body, provider="sms").status_code == 200
    assert Event.objects.get().contact == contact


@override_settings(CIBLE_TRACKING_ALLOWED_ORIGINS=["https://shop.example.fr"])
def test_tracking_post_with_token_from_allowed_origin(client):
    contact = ContactFactory(external_id="C-7")
    body = {
        "token": tracking_token(external_id="C-7"),
        "type": "page_view",
        "id": str(uuid.uuid4()),
        "properties": {"url": "/chaussures"},
    }
    response = client.post(
        "/t/e",
        data=json.dumps(body),
        content_type="application/json",
        HTTP_ORIGIN="https://shop.example.fr",
    )
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "https://shop.example.fr"
    event = Event.objects.get()
    assert (event.contact, event.channel, event.source) == (contact, "web", "tracking")


@override_settings(CIBLE_TRACKING_ALLOWED_ORIGINS=["https://shop.example.fr"])
def test_tracking_refuses_other_origins_and_forged_tokens(client):
    ContactFactory(external_id="C-7")
    body = {"token": "C-7:forged", "type": "page_view", "id": "x"}
    evil = client.post(
        "/t/e",
        data=json.dumps(body),
        content_type="application/json",
        HTTP_ORIGIN="https://evil.example",
    )
    assert evil.status_code == 403 and "Access-Control-Allow-Origin" not in evil
    forged = client.post("/t/e", data=json.dumps(body), content_type="application/json")
    assert forged.status_code == 400 and "token" in forged.json()["errors"]
    preflight = client.options("/t/e", HTTP_ORIGIN="https://shop.example.fr")
    assert preflight.status_code == 204
    assert "POST" in preflight["Access-Control-Allow-Methods"]
    assert not Event.objects.exists()


def test_tracking_pixel_for_anonymous_visitor_returns_gif(client):
    response = client.get(
        "/t/e",
        {"anonymous_id": "v42", "type": "page_view", "id": "p1", "p": json.dumps({"url": "/"})},
    )
    assert response.status_code == 200 and response["Content-Type"] == "image/gif"
    assert Contact.objects.get().external_id == "anon-v42"
    assert Event.objects.get().properties == {"url": "/"}


@override_settings(CIBLE_TRACKING_RATE_PER_MINUTE=3)
def test_tracking_is_rate_limited_per_client(client):
    cache.clear()
    codes = [
        client.get("/t/e", {"anonymous_id": "v1", "type": "page_view", "id": f"k{i}"}).status_code
        for i in range(5)
    ]
    assert codes == [200, 200, 200, 429, 429]
    assert Event.objects.count() == 3


@pytest.mark.redis
def test_tracking_rate_limit_is_shared_through_redis(client, redis_url):
    caches = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url}
    }
    with override_settings(CACHES=caches, CIBLE_TRACKING_RATE_PER_MINUTE=2):
        from django.core.cache import caches as handler

        handler["default"].clear()
        codes = [
            client.get(
                "/t/e", {"anonymous_id": "r1", "type": "page_view", "id": f"r{i}"}
            ).status_code
            for i in range(3)
        ]
        handler["default"].clear()
    assert codes == [200, 200, 429]


@pytest.mark.parametrize(
    ("event_type", "properties"),
    [
        ("email_bounce", {"bounce_type": "hard", "address": "victim@example.fr"}),
        ("email_complaint", {"address": "victim@example.fr"}),
        ("Email Bounce", {"bounce_type": "hard", "address": "victim@example.fr"}),
        ("unsubscribe", {}),
        ("sms_inbound", {"body": "STOP", "from": "+33612345678"}),
    ],
)
def test_tracking_refuses_provider_feedback_and_suppresses_nobody(
    client, django_capture_on_commit_callbacks, event_type, properties
):
    from consent.models import Suppression

    with django_capture_on_commit_callbacks(execute=True):
        response = client.get(
            "/t/e",
            {"anonymous_id": "a1", "type": event_type, "id": "s1", "p": json.dumps(properties)},
        )
    assert response.status_code == 400
    message = response.json()["errors"]["type"]
    assert "cannot be sent from a browser" in message and "page_view" in message
    assert not Event.objects.exists()
    assert not Suppression.objects.exists()


@override_settings(CIBLE_WEBHOOK_SECRETS={"mailer": SECRET})
def test_signed_bounce_still_suppresses_but_an_old_tracked_bounce_never_does(
    client, django_capture_on_commit_callbacks
):
    from consent.models import Suppression

    victim = ContactFactory(external_id="anon-a1", email="victim@example.fr")
    Event.objects.create(  # stored by /t/e before the allow-list existed
        contact=victim,
        type="email_bounce",
        occurred_at="2026-01-05T09:00:00Z",
        source="tracking",
        idempotency_key="s1",
        properties={"bounce_type": "hard", "address": "other@example.fr"},
    )
    bounce = {"events": [{**BOUNCE["events"][0], "email": "victim@example.fr"}]}
    bounce["events"][0]["properties"] = {"bounce_type": "hard", "address": "victim@example.fr"}
    with django_capture_on_commit_callbacks(execute=True):
        assert signed_post(client, bounce).status_code == 200
    assert list(Suppression.objects.values_list("address", "reason")) == [
        ("victim@example.fr", "hard_bounce")
    ]


@override_settings(CIBLE_TRACKING_EVENT_TYPES=["page_view", "web_*"])
def test_tracking_accepts_allowed_types_and_custom_web_prefix(client):
    for event_type in ("page_view", "web_quiz_answered"):
        response = client.get("/t/e", {"anonymous_id": "v1", "type": event_type, "id": event_type})
        assert response.status_code == 200, response.content
    refused = client.get("/t/e", {"anonymous_id": "v1", "type": "purchase", "id": "x"})
    assert refused.status_code == 400
    assert sorted(Event.objects.values_list("type", flat=True)) == [
        "page_view",
        "web_quiz_answered",
    ]
