"""The embedded mail sink: one ``.eml`` file per message under ``EMAIL_FILE_PATH``
(``var/mail/`` by default), and the reads behind the admin's "Sent messages" page.

- :class:`EmlDirectoryBackend` is a Django email backend. Each message is written to its own file
  ``<UTC time>-<random>.eml`` (RFC 5322 bytes, openable by any mail client), first under a
  temporary name then renamed, so a reader never sees half a message. Nothing leaves the host.
- :func:`mail_sink_messages` lists the newest files with their headers (reads headers only);
  :func:`mail_sink_message` parses one and :func:`mail_sink_file` reads its bytes, by a name that must match the sink's own names — never a
  path a user could point elsewhere.
- :func:`mail_sink_directory` is the sink's folder, or None when email goes anywhere else (SMTP,
  an ESP, the console): the admin page exists only in the embedded mode.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from pathlib import Path

from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend

BACKEND = "activation.channels.mailsink.EmlDirectoryBackend"
NAME_RE = re.compile(r"^\d{8}-\d{6}-\d{6}-[0-9a-f]{12}\.eml$")
LISTED = 500


class EmlDirectoryBackend(BaseEmailBackend):
    """Write each message to its own ``.eml`` file in ``file_path`` (``EMAIL_FILE_PATH``)."""

    def __init__(self, *args, file_path: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.file_path = Path(file_path or settings.EMAIL_FILE_PATH)

    def send_messages(self, email_messages) -> int:
        if not email_messages:
            return 0
        self.file_path.mkdir(parents=True, exist_ok=True)
        written = 0
        for message in email_messages:
            try:
                self._write(message.message().as_bytes(linesep="\r\n"))
            except Exception:
                if not self.fail_silently:
                    raise
            else:
                written += 1
        return written

    def _write(self, data: bytes) -> Path:
        name = f"{datetime.now(UTC):%Y%m%d-%H%M%S-%f}-{secrets.token_hex(6)}.eml"
        final = self.file_path / name
        temporary = self.file_path / f".{name}.tmp"
        with temporary.open("wb") as fh:
            fh.write(data)
        os.replace(temporary, final)
        return final


@dataclass(frozen=True)
class SinkMessage:
    name: str
    sent_at: datetime
    to: str
    subject: str
    size: int


def mail_sink_directory() -> Path | None:
    """The folder of the embedded mail sink, or None when email is not captured to files."""
    if settings.EMAIL_BACKEND != BACKEND:
        return None
    return Path(settings.EMAIL_FILE_PATH)


def mail_sink_messages(*, limit: int = LISTED) -> tuple[list[SinkMessage], int]:
    """The newest ``limit`` messages of the sink (headers only) and how many there are."""
    folder = mail_sink_directory()
    if folder is None or not folder.is_dir():
        return [], 0
    names = sorted((n for n in os.listdir(folder) if NAME_RE.match(n)), reverse=True)
    parser = BytesHeaderParser(policy=email.policy.default)
    out = []
    for name in names[:limit]:
        path = folder / name
        try:
            with path.open("rb") as fh:
                headers = parser.parse(fh)
            size = path.stat().st_size
        except OSError:  # removed meanwhile
            continue
        out.append(
            SinkMessage(
                name=name,
                sent_at=datetime.strptime(name[:22], "%Y%m%d-%H%M%S-%f").replace(tzinfo=UTC),
                to=str(headers.get("To", "")),
                subject=str(headers.get("Subject", "")),
                size=size,
            )
        )
    return out, len(names)


def mail_sink_file(name: str) -> bytes | None:
    """The bytes of message ``name``, or None when there is no such message in the sink
    (names not of the sink's own form are never opened)."""
    folder = mail_sink_directory()
    if folder is None or not NAME_RE.match(name or ""):
        return None
    path = folder / name
    return path.read_bytes() if path.is_file() else None


def mail_sink_message(name: str):
    """The parsed message ``name`` (``email.message.EmailMessage``), or None (see
    :func:`mail_sink_file`)."""
    data = mail_sink_file(name)
    if data is None:
        return None
    return email.message_from_bytes(data, policy=email.policy.default)
