"""Email through Django's configured email backend (SMTP with connection reuse, anymail ESPs,
file/console sinks), HTML with a plain-text alternative, our own ``Message-ID``."""

from __future__ import annotations

import smtplib

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection

from activation.channels import ChannelBackend, OutgoingMessage, SendResult

# 550 mailbox unavailable, 551 user not local, 553 mailbox name not allowed (RFC 5321).
HARD_BOUNCE_CODES = {550, 551, 553}


def smtp_error_is_retryable(code: int | None) -> bool:
    """4xx SMTP replies are temporary (RFC 5321 §4.2.1); 5xx are permanent."""
    return code is None or code < 500


class EmailChannel(ChannelBackend):
    channel = "email"
    batch_size = 1

    def __init__(self, connection=None):
        self.connection = connection or get_connection(fail_silently=False)

    def open(self) -> None:
        try:
            self.connection.open()
        except (OSError, smtplib.SMTPException):
            # Reported per message by send(); the connection is retried there.
            pass

    def close(self) -> None:
        try:
            self.connection.close()
        except (OSError, smtplib.SMTPException):
            pass

    def _reconnect(self) -> None:
        self.close()
        self.open()

    def send(self, batch: list[OutgoingMessage]) -> list[SendResult]:
        return [self._send_one(message) for message in batch]

    def _send_one(self, message: OutgoingMessage) -> SendResult:
        email = EmailMultiAlternatives(
            subject=message.subject,
            body=message.text,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[message.to],
            headers={**message.headers, "Message-ID": message.message_id},
            connection=self.connection,
        )
        if message.html:
            email.attach_alternative(message.html, "text/html")
        try:
            sent = email.send()
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()), (None, b""))
            text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
            error = f"recipient refused: {code} {text}"
            if smtp_error_is_retryable(code):
                return SendResult.retry(message.outbox_id, error)
            result = SendResult.permanent(message.outbox_id, error)
            result.hard_bounce = code in HARD_BOUNCE_CODES
            return result
        except smtplib.SMTPServerDisconnected as exc:
            self._reconnect()
            return SendResult.retry(message.outbox_id, f"SMTP server disconnected: {exc}")
        except smtplib.SMTPResponseException as exc:
            self._reconnect()
            error = f"SMTP {exc.smtp_code}: {exc.smtp_error!r}"
            if smtp_error_is_retryable(exc.smtp_code):
                return SendResult.retry(message.outbox_id, error)
            return SendResult.permanent(message.outbox_id, error)
        except (TimeoutError, OSError, smtplib.SMTPException) as exc:
            self._reconnect()
            return SendResult.retry(message.outbox_id, f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # anymail and other ESP backends
            return _classify_esp_error(message.outbox_id, exc)
        if not sent:
            return SendResult.retry(message.outbox_id, "the email backend accepted nothing")
        status = getattr(email, "anymail_status", None)
        provider_id = getattr(status, "message_id", None) if status is not None else None
        if isinstance(provider_id, set):  # anymail: one id per recipient
            provider_id = next(iter(provider_id), None)
        return SendResult.sent(message.outbox_id, str(provider_id or message.message_id))


def _classify_esp_error(outbox_id: int, exc: Exception) -> SendResult:
    try:
        from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused
    except ImportError:  # pragma: no cover - anymail is a dependency
        raise exc from None
    if isinstance(exc, AnymailRecipientsRefused):
        return SendResult.permanent(outbox_id, f"recipient refused by the ESP: {exc}")
    if isinstance(exc, AnymailAPIError):
        status = getattr(exc, "status_code", None)
        if status is None or status == 429 or status >= 500:
            return SendResult.retry(outbox_id, f"ESP error {status}: {exc}")
        return SendResult.permanent(outbox_id, f"ESP error {status}: {exc}")
    raise exc
