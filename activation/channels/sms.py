"""SMS: an HTTP adapter shaped like Brevo's transactional SMS API, and the file/console sink.

Brevo: ``POST https://api.brevo.com/v3/transactionalSMS/sms`` with header ``api-key`` and JSON
``{"sender", "recipient", "content", "type": "marketing"|"transactional", "unicodeEnabled"}``;
``201 {"messageId": …}`` on success. 429 and 5xx (and timeouts) are retryable, other 4xx
permanent. ``Retry-After`` is honoured.
"""

from __future__ import annotations

import requests
from django.conf import settings

from activation.channels import ChannelBackend, OutgoingMessage, SendResult
from activation.channels.sinks import sink_write
from activation.sms import sms_segments


def _retry_after(response: requests.Response) -> float | None:
    try:
        return float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None


class BrevoSmsChannel(ChannelBackend):
    channel = "sms"
    batch_size = 1

    def __init__(self, *, url: str, api_key: str, timeout: float | None = None):
        self.url = url
        self.api_key = api_key
        self.timeout = timeout if timeout is not None else settings.SMS_PROVIDER_TIMEOUT
        self.session: requests.Session | None = None

    def open(self) -> None:
        self.session = requests.Session()
        self.session.headers.update({"api-key": self.api_key, "accept": "application/json"})

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None

    def send(self, batch: list[OutgoingMessage]) -> list[SendResult]:
        if self.session is None:
            self.open()
        return [self._send_one(message) for message in batch]

    def _send_one(self, message: OutgoingMessage) -> SendResult:
        body = {
            "sender": settings.SMS_SENDER_ID,
            "recipient": message.to.lstrip("+"),
            "content": message.sms_body,
            "type": "marketing" if message.sms_marketing else "transactional",
            "unicodeEnabled": sms_segments(message.sms_body).encoding == "UCS-2",
        }
        try:
            response = self.session.post(
                self.url,
                json=body,
                timeout=self.timeout,
                headers={"Idempotency-Key": f"cible-outbox-{message.outbox_id}"},
            )
        except requests.Timeout as exc:
            return SendResult.retry(message.outbox_id, f"SMS provider timeout: {exc}")
        except requests.RequestException as exc:
            return SendResult.retry(message.outbox_id, f"SMS provider unreachable: {exc}")
        if response.status_code in (200, 201, 202):
            try:
                provider_id = str(response.json().get("messageId", ""))
            except ValueError:
                provider_id = ""
            return SendResult.sent(message.outbox_id, provider_id)
        error = f"SMS provider HTTP {response.status_code}: {response.text[:300]}"
        if response.status_code == 429 or response.status_code >= 500:
            return SendResult.retry(message.outbox_id, error, _retry_after(response))
        return SendResult.permanent(message.outbox_id, error)


class SmsSinkChannel(ChannelBackend):
    channel = "sms"
    batch_size = 50

    def __init__(self, *, url: str):
        self.url = url

    def send(self, batch: list[OutgoingMessage]) -> list[SendResult]:
        results = []
        for message in batch:
            ref = sink_write(
                url=self.url,
                channel="sms",
                record={
                    "outbox_id": message.outbox_id,
                    "sender": settings.SMS_SENDER_ID,
                    "to": message.to,
                    "body": message.sms_body,
                    "segments": str(sms_segments(message.sms_body)),
                },
            )
            results.append(SendResult.sent(message.outbox_id, f"{ref}#{message.outbox_id}"))
        return results
