"""Web Push with VAPID (pywebpush) and the file/console sink.

One outbox message goes to every active subscription of the contact; it counts as sent when
at least one push service accepted it. 404/410 from a push service mean the subscription is
gone: it is deactivated (``contacts.PushSubscription.active = False``) by the delivery service.
"""

from __future__ import annotations

import json

import requests
from django.conf import settings
from pywebpush import WebPushException, webpush

from activation.channels import ChannelBackend, OutgoingMessage, SendResult
from activation.channels.sinks import sink_write


class WebPushChannel(ChannelBackend):
    channel = "push"
    batch_size = 1

    def __init__(self, *, private_key: str, subject: str, timeout: float | None = None):
        self.private_key = private_key
        self.subject = subject
        self.timeout = timeout if timeout is not None else settings.PUSH_TIMEOUT
        self.session: requests.Session | None = None

    def open(self) -> None:
        self.session = requests.Session()

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None

    def send(self, batch: list[OutgoingMessage]) -> list[SendResult]:
        if self.session is None:
            self.open()
        return [self._send_one(message) for message in batch]

    def _send_one(self, message: OutgoingMessage) -> SendResult:
        if not message.push_targets:
            return SendResult.permanent(message.outbox_id, "no active push subscription")
        data = json.dumps(message.push_payload)
        accepted: list[str] = []
        gone: list[int] = []
        retry_errors: list[str] = []
        permanent_errors: list[str] = []
        for target in message.push_targets:
            try:
                response = webpush(
                    {
                        "endpoint": target.endpoint,
                        "keys": {"p256dh": target.p256dh, "auth": target.auth},
                    },
                    data=data,
                    vapid_private_key=self.private_key,
                    vapid_claims={"sub": self.subject},
                    timeout=self.timeout,
                    ttl=86_400,
                    requests_session=self.session,
                )
                accepted.append(response.headers.get("Location", "") or target.endpoint[-40:])
            except WebPushException as exc:
                status = getattr(exc.response, "status_code", None)
                if status in (404, 410):
                    gone.append(target.subscription_id)
                elif status is None or status == 429 or status >= 500:
                    retry_errors.append(f"push service {status}: {str(exc)[:200]}")
                else:
                    permanent_errors.append(f"push service {status}: {str(exc)[:200]}")
            except requests.RequestException as exc:
                retry_errors.append(f"push service unreachable: {exc}")
        if accepted:
            result = SendResult.sent(message.outbox_id, accepted[0])
        elif retry_errors:
            result = SendResult.retry(message.outbox_id, "; ".join(retry_errors))
        elif permanent_errors:
            result = SendResult.permanent(message.outbox_id, "; ".join(permanent_errors))
        else:
            result = SendResult.permanent(message.outbox_id, "push subscription gone (404/410)")
        result.deactivated_subscription_ids = gone
        return result


class PushSinkChannel(ChannelBackend):
    channel = "push"
    batch_size = 50

    def __init__(self, *, url: str):
        self.url = url

    def send(self, batch: list[OutgoingMessage]) -> list[SendResult]:
        results = []
        for message in batch:
            if not message.push_targets:
                results.append(
                    SendResult.permanent(message.outbox_id, "no active push subscription")
                )
                continue
            ref = sink_write(
                url=self.url,
                channel="push",
                record={
                    "outbox_id": message.outbox_id,
                    "endpoints": [t.endpoint for t in message.push_targets],
                    "payload": message.push_payload,
                },
            )
            results.append(SendResult.sent(message.outbox_id, f"{ref}#{message.outbox_id}"))
        return results
