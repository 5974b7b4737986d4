"""SMS through a local HTTP server shaped like Brevo's API; Web Push through a local push
service with VAPID; segment counting."""

from __future__ import annotations

import base64
import os
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.utils import timezone

from activation.models import OutboxMessage
from activation.services import campaign_run_launch, outbox_deliver_batch
from activation.sms import sms_segments, with_stop_mention
from contacts.models import PushSubscription
from tests.activation.conftest import NOW

pytestmark = pytest.mark.django_db


def deliver(channel, now=None):
    while outbox_deliver_batch(channel=channel, limit=50, now=now).claimed:
        pass


def test_marketing_sms_goes_to_the_provider_with_sender_and_stop_mention(
    sms_provider, consenting, make_campaign
):
    server, _answers = sms_provider
    contact = consenting(1, channel="sms", first_name="Léa", phone="+33612345678")[0]
    run = campaign_run_launch(campaign=make_campaign([contact], channel="sms"), now=NOW)

    deliver("sms")

    [call] = server.calls
    assert call.path == "/v3/transactionalSMS/sms"
    assert call.headers["api-key"] == "xkeysib-test"
    body = call.json()
    assert body["recipient"] == "33612345678"
    assert body["sender"] == "MaBoutique"
    assert body["type"] == "marketing"
    assert body["content"] == "Bonjour Léa, -20% ce week-end.\nSTOP au 36111"
    row = OutboxMessage.objects.get(run=run)
    assert row.state == "sent" and row.provider_message_id == "987654"


def test_sms_429_and_500_and_timeouts_are_retried_but_400_fails(
    sms_provider, consenting, make_campaign
):
    server, answers = sms_provider
    throttled, broken, slow, invalid = consenting(4, channel="sms")
    answers["".join(throttled.phone.lstrip("+"))] = [(429, {"Retry-After": "120"}, "{}")]
    answers[broken.phone.lstrip("+")] = [(500, {}, "oops")]
    answers[slow.phone.lstrip("+")] = [(201, {"X-Test-Delay": "3"}, "{}")]
    answers[invalid.phone.lstrip("+")] = [(400, {}, '{"code":"invalid_parameter"}')]
    run = campaign_run_launch(
        campaign=make_campaign([throttled, broken, slow, invalid], channel="sms"), now=NOW
    )

    deliver("sms")

    rows = {m.contact_id: m for m in OutboxMessage.objects.filter(run=run)}
    assert rows[throttled.pk].state == "deferred"
    assert (rows[throttled.pk].next_attempt_at - timezone.now()).total_seconds() >= 110
    assert rows[broken.pk].state == "deferred" and "500" in rows[broken.pk].error
    assert rows[slow.pk].state == "deferred" and "timeout" in rows[slow.pk].error.lower()
    assert rows[invalid.pk].state == "failed" and "400" in rows[invalid.pk].error

    deliver("sms", now=timezone.now() + timedelta(hours=2))
    states = dict(OutboxMessage.objects.filter(run=run).values_list("contact_id", "state"))
    assert states == {
        throttled.pk: "sent",
        broken.pk: "sent",
        slow.pk: "sent",
        invalid.pk: "failed",
    }


def test_transactional_sms_has_no_stop_mention(settings):
    settings.SMS_STOP_MENTION = "STOP au 36111"
    assert with_stop_mention("Votre code : 1234", marketing=False) == "Votre code : 1234"
    assert with_stop_mention("Promo ! STOP au 36111", marketing=True) == "Promo ! STOP au 36111"


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),
        ("a" * 307, "GSM-7", 307, 3),
        ("€" * 80, "GSM-7", 160, 1),  # extension characters count double
        ("é à ù", "GSM-7", 5, 1),  # in the GSM-7 basic set
        ("ê" + "a" * 69, "UCS-2", 70, 1),  # ê is not: the whole SMS is UCS-2
        ("ê" + "a" * 70, "UCS-2", 71, 2),
        ("👍" * 35, "UCS-2", 70, 1),  # an emoji is two UTF-16 units
        ("", "GSM-7", 0, 0),
    ],
)
def test_sms_segment_counting(text, encoding, units, segments):
    counted = sms_segments(text)
    assert (counted.encoding, counted.units, counted.segments) == (encoding, units, segments)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def browser_keys() -> tuple[str, str]:
    """A browser's push subscription keys (P-256 public key, 16-byte auth secret)."""
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return _b64(public), _b64(os.urandom(16))


@pytest.fixture
def push_service(http_server, settings):
    from py_vapid import Vapid01

    vapid = Vapid01()
    vapid.generate_keys()
    private = vapid.private_key.private_numbers().private_value.to_bytes(32, "big")
    settings.VAPID_PRIVATE_KEY = _b64(private)
    settings.VAPID_SUBJECT = "mailto:dpo@example.fr"
    settings.PUSH_TIMEOUT = 1.0

    def respond(call):
        if call.path.startswith("/gone"):
            return 410, {}, "gone"
        if call.path.startswith("/busy"):
            return 503, {}, "busy"
        return 201, {"Location": f"https://push.local{call.path}/msg/1"}, ""

    return http_server(respond)


def subscribe(contact, url):
    p256dh, auth = browser_keys()
    return PushSubscription.objects.create(contact=contact, endpoint=url, p256dh=p256dh, auth=auth)


def test_web_push_is_encrypted_and_signed_with_vapid_and_410_deactivates(
    push_service, consenting, make_campaign
):
    both, gone_only, busy = consenting(3, channel="push")
    ok_sub = subscribe(both, push_service.url + "/ok/1")
    stale = subscribe(both, push_service.url + "/gone/2")
    dead = subscribe(gone_only, push_service.url + "/gone/3")
    subscribe(busy, push_service.url + "/busy/4")
    run = campaign_run_launch(
        campaign=make_campaign([both, gone_only, busy], channel="push"), now=NOW
    )

    deliver("push")

    ok_call = next(c for c in push_service.calls if c.path == "/ok/1")
    assert ok_call.headers["authorization"].startswith("vapid t=")
    assert ok_call.headers["content-encoding"] == "aes128gcm"
    assert b"Bonjour" not in ok_call.body  # end-to-end encrypted payload
    rows = {m.contact_id: m for m in OutboxMessage.objects.filter(run=run)}
    assert rows[both.pk].state == "sent"
    assert rows[gone_only.pk].state == "failed"
    assert rows[busy.pk].state == "deferred" and "503" in rows[busy.pk].error
    assert PushSubscription.objects.get(pk=ok_sub.pk).active
    assert not PushSubscription.objects.get(pk=stale.pk).active
    assert not PushSubscription.objects.get(pk=dead.pk).active


def test_push_sink_writes_one_json_line_per_message(settings, tmp_path, consenting, make_campaign):
    import json

    settings.VAPID_PRIVATE_KEY = ""
    settings.PUSH_SINK_URL = f"file://{tmp_path}"
    contact = consenting(1, channel="push")[0]
    PushSubscription.objects.create(
        contact=contact, endpoint="https://push.example/x", p256dh="k", auth="a"
    )
    campaign_run_launch(campaign=make_campaign([contact], channel="push"), now=NOW)
    deliver("push")
    [path] = tmp_path.glob("push-*.jsonl")
    record = json.loads(path.read_text())
    assert record["payload"]["title"] == "Bonjour Camille"
    assert "/t/c/" in record["payload"]["url"]
