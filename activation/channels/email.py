"""Email through Django's configured email backend (SMTP with connection reuse, anymail ESPs,
file/console sinks), HTML with a plain-text alternative, our own ``Message-ID``.

With Django's SMTP backend, a message whose addresses and extra headers are plain ASCII is
written by ``mime_bytes`` (the same MIME structure Django builds — multipart/alternative,
UTF-8 parts in 7bit/8bit, quoted-printable past 998-byte lines, RFC 2047 subject — without
building an ``email.message`` object tree per message) and handed to the backend's open SMTP
connection. Anything else goes through ``EmailMultiAlternatives.send()``.
"""

from __future__ import annotations

import re
import smtplib
import uuid
from email import quoprimime
from email.header import Header
from email.utils import formatdate
from functools import lru_cache

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.backends.smtp import EmailBackend as SmtpEmailBackend
from django.core.mail.message import sanitize_address

from activation.channels import ChannelBackend, OutgoingMessage, SendResult

_NEWLINE = re.compile(r"\r\n|\r|\n")
MAX_LINE_BYTES = 998  # RFC 5322 §2.1.1


def _mime_text_part(content: str, subtype: str) -> list[str]:
    """Header lines + body of one UTF-8 text part (7bit/8bit, or quoted-printable when a
    line is too long for SMTP — Django's rules)."""
    lines = _NEWLINE.split(content)
    if any(len(line.encode()) > MAX_LINE_BYTES for line in lines):
        body = quoprimime.body_encode(content.encode().decode("latin-1"), eol="\r\n")
        encoding = "quoted-printable"
    else:
        body, encoding = "\r\n".join(lines), "7bit" if content.isascii() else "8bit"
    return [
        f'Content-Type: text/{subtype}; charset="utf-8"',
        f"Content-Transfer-Encoding: {encoding}",
        "",
        body,
    ]


def mime_bytes(
    *, from_header: str, to: str, subject: str, text: str, html: str, headers: dict[str, str]
) -> bytes:
    """The RFC 5322 bytes of a text (+ HTML alternative) message. ``from_header``, ``to`` and
    ``headers`` must be ASCII without line breaks (see ``EmailChannel._writes_raw``)."""
    head = [
        "MIME-Version: 1.0",
        "Subject: "
        + Header(subject, "utf-8" if not subject.isascii() else None).encode(linesep="\r\n"),
        f"From: {from_header}",
        f"To: {to}",
        f"Date: {formatdate(localtime=settings.EMAIL_USE_LOCALTIME)}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    if not html:
        lines = head + _mime_text_part(text, "plain")
    else:
        boundary = f"===============cible{uuid.uuid4().hex}=="
        lines = [
            *head,
            f'Content-Type: multipart/alternative; boundary="{boundary}"',
            "",
            *([f"--{boundary}", *_mime_text_part(text, "plain")] if text else []),
            f"--{boundary}",
            *_mime_text_part(html, "html"),
            f"--{boundary}--",
            "",
        ]
    return "\r\n".join(lines).encode()


@lru_cache(maxsize=4)
def _envelope_from(address: str) -> str:
    return sanitize_address(address, "utf-8")


def _plain_header_value(value: str) -> bool:
    return value.isascii() and "\r" not in value and "\n" not in value and len(value) < 900


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

    def _writes_raw(self, message: OutgoingMessage, headers: dict[str, str]) -> bool:
        """Django's SMTP backend and nothing that needs encoding but the subject."""
        return (
            isinstance(self.connection, SmtpEmailBackend)
            and all(map(_plain_header_value, (settings.DEFAULT_FROM_EMAIL, message.to)))
            and all(_plain_header_value(f"{k}{v}") for k, v in headers.items())
            and "\n" not in message.subject
            and "\r" not in message.subject
        )

    def _send_raw(self, message: OutgoingMessage, headers: dict[str, str]) -> int:
        """One SMTP transaction on the backend's connection (opened if needed)."""
        if self.connection.connection is None:
            self.connection.open()
        data = mime_bytes(
            from_header=settings.DEFAULT_FROM_EMAIL,
            to=message.to,
            subject=message.subject,
            text=message.text,
            html=message.html,
            headers=headers,
        )
        envelope_from = _envelope_from(settings.DEFAULT_FROM_EMAIL)
        self.connection.connection.sendmail(envelope_from, [message.to], data)
        return 1

    def _send_one(self, message: OutgoingMessage) -> SendResult:
        headers = {**message.headers, "Message-ID": message.message_id}
        email = None
        try:
            if self._writes_raw(message, headers):
                sent = self._send_raw(message, headers)
            else:
                email = EmailMultiAlternatives(
                    subject=message.subject,
                    body=message.text,
                    from_email=settings.DEFAULT_FROM_EMAIL,
                    to=[message.to],
                    headers=headers,
                    connection=self.connection,
                )
                if message.html:
                    email.attach_alternative(message.html, "text/html")
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
        status = getattr(email, "anymail_status", None) if email is not None else None
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
