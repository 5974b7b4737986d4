"""Fixtures of the activation tests: a real SMTP server (aiosmtpd), real local HTTP servers
playing the SMS provider and the Web Push service, and a small audience with consent."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller

from tests.factories import CampaignFactory, ContactFactory, TemplateFactory
from tests.services import free_port

# 10:00 UTC = 12:00 in Paris: outside the default quiet hours (21:00–08:00) in Europe.
NOW = datetime(2026, 6, 10, 10, 0, tzinfo=UTC)


@dataclass
class SmtpSink:
    """What the SMTP server received: one parsed message per accepted DATA."""

    messages: list = field(default_factory=list)
    # recipient -> list of SMTP replies to give at RCPT before accepting ("451 …", "550 …")
    rcpt_replies: dict[str, list[str]] = field(default_factory=dict)
    # Kill test: once ``block_after`` messages were accepted, further DATA commands wait for
    # ``gate`` (``held`` counts waiting clients, ``dropped`` those that died while waiting).
    block_after: int | None = None
    gate: threading.Event = field(default_factory=threading.Event)
    held: int = 0
    dropped: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def recipients(self) -> Counter:
        with self.lock:
            return Counter(m["To"] for m in self.messages)

    def to(self, address: str):
        return [m for m in self.messages if m["To"] == address]


class SinkHandler:
    def __init__(self, sink: SmtpSink):
        self.sink = sink

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        replies = self.sink.rcpt_replies.get(address)
        if replies:
            return replies.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        sink = self.sink
        if sink.block_after is not None and len(sink.messages) >= sink.block_after:
            # Hold the client inside its SMTP transaction until the test opens the gate; if the
            # client dies meanwhile, aiosmtpd cancels this coroutine: nothing is accepted (the
            # client never got "250"), exactly as a real server would behave.
            sink.held += 1
            try:
                while not sink.gate.is_set():
                    await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                sink.dropped += 1
                raise
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.sink.lock:
            self.sink.messages.append(parsed)
        return "250 OK"


@pytest.fixture
def smtp_sink() -> Iterator[tuple[SmtpSink, int]]:
    sink = SmtpSink()
    controller = Controller(SinkHandler(sink), hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield sink, controller.port
    finally:
        controller.stop()


@pytest.fixture
def smtp_settings(settings, smtp_sink):
    sink, port = smtp_sink
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 10
    return sink


@dataclass
class HttpCall:
    path: str
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)


class LocalHttpServer:
    """A real HTTP server in a thread; ``responder(call) -> (status, headers, body)`` decides
    each answer (``delay`` seconds of server-side latency simulate a slow provider)."""

    def __init__(self, responder: Callable[[HttpCall], tuple[int, dict, bytes | str]]):
        self.calls: list[HttpCall] = []
        self.responder = responder
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                call = HttpCall(
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
                outer.calls.append(call)
                status, headers, body = outer.responder(call)
                delay = headers.pop("X-Test-Delay", None)
                if delay:
                    time.sleep(float(delay))
                payload = body.encode() if isinstance(body, str) else body
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def http_server():
    servers = []

    def start(responder):
        server = LocalHttpServer(responder).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)


@pytest.fixture
def sms_provider(http_server, settings):
    """A local HTTP server shaped like Brevo's SMS API: ``(server, answers)``; ``answers``
    maps a recipient to the replies to give before the default 201."""
    answers: dict[str, list] = {}

    def respond(call):
        recipient = call.json()["recipient"]
        queue = answers.get(recipient)
        if queue:
            return queue.pop(0)
        return 201, {"Content-Type": "application/json"}, '{"messageId": 987654}'

    server = http_server(respond)
    settings.SMS_PROVIDER_URL = server.url + "/v3/transactionalSMS/sms"
    settings.SMS_PROVIDER_API_KEY = "xkeysib-test"
    settings.SMS_SENDER_ID = "MaBoutique"
    settings.SMS_STOP_MENTION = "STOP au 36111"
    settings.SMS_PROVIDER_TIMEOUT = 1.0
    settings.ACTIVATION_RATE_LIMITS = {"email": 0, "sms": 0, "push": 0}
    return server, answers


def grant(contact, *, purpose="newsletter", channel="email", at=None):
    from consent.services import consent_record

    consent_record(
        contact=contact,
        purpose=purpose,
        channel=channel,
        granted=True,
        source="form",
        at=at or NOW - timedelta(days=30),
    )


def withdraw(contact, *, purpose="newsletter", channel="email", at=None):
    from consent.services import consent_record

    consent_record(
        contact=contact,
        purpose=purpose,
        channel=channel,
        granted=False,
        source="unsubscribe_link",
        at=at or NOW - timedelta(days=1),
    )


def segment_with(contacts, *, name=None):
    """A segment whose open memberships are exactly ``contacts``."""
    from segments.models import Segment, SegmentMembership

    segment = Segment.objects.create(name=name or f"seg-{Segment.objects.count() + 1}", rule={})
    SegmentMembership.objects.bulk_create(
        [
            SegmentMembership(segment=segment, contact=c, entered_at=NOW - timedelta(days=1))
            for c in contacts
        ]
    )
    return segment


@pytest.fixture
def make_campaign(default_purposes):
    """``make_campaign(contacts, channel=…, **campaign_fields)``: a segment holding
    ``contacts``, a template with fr and en versions, and a campaign targeting the segment."""

    def make(contacts, *, channel="email", purpose="newsletter", **fields):
        segment = segment_with(contacts)
        template = TemplateFactory(channel=channel)
        campaign = CampaignFactory(
            channel=channel, template=template, purpose_code=purpose, **fields
        )
        campaign.segments.add(segment)
        return campaign

    return make


@pytest.fixture
def default_purposes(db):
    """The purposes of consent's data migration (a transactional test flushes them)."""
    import importlib

    from django.apps import apps

    importlib.import_module("consent.migrations.0002_default_purposes").create_purposes(apps, None)


@pytest.fixture
def consenting(default_purposes):
    """``consenting(n, channel="email", **contact_fields)``: n contacts who granted newsletter
    consent on the channel 30 days before NOW."""

    def make(n, *, channel="email", purpose="newsletter", **fields):
        contacts = ContactFactory.create_batch(n, **fields)
        for contact in contacts:
            grant(contact, purpose=purpose, channel=channel)
        return contacts

    return make


def quiet_hours_elsewhere() -> dict:
    """Campaign fields placing quiet hours six hours away from now in the contacts' default
    zone (Europe/Paris), for tests that launch at the real current time: without them such a
    test would fail whenever it runs between 21:00 and 08:00 in Paris."""
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    local = datetime.now(ZoneInfo("Europe/Paris")).replace(second=0, microsecond=0)
    start = local + timedelta(hours=6)
    return {
        "quiet_hours_start": start.time(),
        "quiet_hours_end": (start + timedelta(hours=1)).time(),
    }
