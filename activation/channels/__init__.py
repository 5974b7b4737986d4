"""Channels behind one interface: ``send(batch) -> list[SendResult]``, one result per message.

A backend is a context manager (``with channel_backend("email") as backend:``) so connections
(SMTP, HTTP keep-alive) are opened once per delivery batch and reused. Each result says whether
the hand-off succeeded and, if not, whether the error is *retryable* (timeouts, 4xx SMTP, HTTP
429/5xx) or *permanent* (5xx SMTP, invalid recipient, HTTP 4xx, gone push subscription).
Backends never raise for a per-message failure; they raise only for programming errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings


@dataclass(frozen=True)
class PushTarget:
    subscription_id: int
    endpoint: str
    p256dh: str
    auth: str


@dataclass
class OutgoingMessage:
    """A rendered message ready for hand-off. Fields used depend on the channel."""

    outbox_id: int
    channel: str
    to: str = ""
    subject: str = ""
    html: str = ""
    text: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    message_id: str = ""
    sms_body: str = ""
    sms_marketing: bool = True
    push_payload: dict[str, Any] = field(default_factory=dict)
    push_targets: list[PushTarget] = field(default_factory=list)


@dataclass
class SendResult:
    outbox_id: int
    ok: bool
    retryable: bool = False
    error: str = ""
    provider_message_id: str = ""
    retry_after: float | None = None
    deactivated_subscription_ids: list[int] = field(default_factory=list)
    hard_bounce: bool = False  # the address does not exist: put it on the suppression list

    @classmethod
    def sent(cls, outbox_id: int, provider_message_id: str = "") -> SendResult:
        return cls(outbox_id=outbox_id, ok=True, provider_message_id=provider_message_id)

    @classmethod
    def retry(cls, outbox_id: int, error: str, retry_after: float | None = None) -> SendResult:
        return cls(
            outbox_id=outbox_id, ok=False, retryable=True, error=error, retry_after=retry_after
        )

    @classmethod
    def permanent(cls, outbox_id: int, error: str) -> SendResult:
        return cls(outbox_id=outbox_id, ok=False, retryable=False, error=error)


class ChannelBackend:
    """Base class: subclasses implement ``send``; ``open``/``close`` manage connections."""

    channel: str = ""
    batch_size: int = 1  # messages per send() call; 1 = result recorded after each message

    def open(self) -> None:  # pragma: no cover - trivial default
        return None

    def close(self) -> None:  # pragma: no cover - trivial default
        return None

    def send(self, batch: list[OutgoingMessage]) -> list[SendResult]:
        raise NotImplementedError

    def __enter__(self) -> ChannelBackend:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def channel_backend(channel: str) -> ChannelBackend:
    """The configured backend of ``channel`` (see docs/sending.md, "Configuring providers")."""
    if channel == "email":
        from activation.channels.email import EmailChannel

        return EmailChannel()
    if channel == "sms":
        from activation.channels.sms import BrevoSmsChannel, SmsSinkChannel

        url = settings.SMS_PROVIDER_URL
        if urlsplit(url).scheme in ("http", "https"):
            return BrevoSmsChannel(url=url, api_key=settings.SMS_PROVIDER_API_KEY)
        return SmsSinkChannel(url=url)
    if channel == "push":
        from activation.channels.push import PushSinkChannel, WebPushChannel

        if settings.VAPID_PRIVATE_KEY:
            return WebPushChannel(
                private_key=settings.VAPID_PRIVATE_KEY, subject=settings.VAPID_SUBJECT
            )
        return PushSinkChannel(url=settings.PUSH_SINK_URL)
    raise ValueError(f"unknown channel {channel!r}; expected email, sms or push")
