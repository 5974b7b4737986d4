"""Fixtures of the journey tests (tests/e2e/).

A journey drives the admin in headless Chromium as one role (logging in through the login form),
with real Celery worker subprocesses for the asynchronous work (the embedded filesystem broker on
SQLite, Redis in the PostgreSQL pass) and real local servers receiving what leaves: an aiosmtpd
SMTP server, a local HTTP server playing the SMS provider. What a journey asserts is what a user
sees: pages, downloads, and the messages those servers received.

``CIBLE_SCREENSHOTS=docs/screenshots`` makes ``journey.shot(page, name)`` save the key screens
(1280x800 PNG); ``python manage.py journey_screenshots`` runs the journeys that way.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.activation.conftest import (  # noqa: F401  (fixtures re-used as they are)
    consenting,
    default_purposes,
    http_server,
    smtp_settings,
    smtp_sink,
)
from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, require_chromium
from tests.journeys.conftest import sms_sink  # noqa: F401
from tests.workers import celery_worker

PASSWORD = "Journey-pass-2026"
ROLES = ("Marketer", "Analyst", "DPO")
ALL_QUEUES = "default,ingest,segments,ml,send"


@pytest.fixture(scope="module")
def chromium():
    """One headless Chromium per journey module (Playwright's sync API runs an event loop in
    this thread, hence DJANGO_ALLOW_ASYNC_UNSAFE while it lives)."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@dataclass
class Journey:
    """The workspace as its users meet it: a live server, a browser, one user per role."""

    url: str
    browser: object
    server_errors: list[str] = field(default_factory=list)
    contexts: list = field(default_factory=list)

    def login(self, role: str, *, language: str = "en"):
        """A new browser session logged in as the ``role`` user through the login form."""
        context = self.browser.new_context(
            viewport=VIEWPORT,
            locale="fr-FR" if language == "fr" else "en-US",
            extra_http_headers={"Accept-Language": language},
            accept_downloads=True,
        )
        self.contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.on(
            "response",
            lambda r: r.status >= 500 and self.server_errors.append(f"{r.status} {r.url}"),
        )
        page.goto(f"{self.url}/admin/login/")
        page.fill("#id_username", role.lower())
        page.fill("#id_password", PASSWORD)
        page.click("#login-form [type=submit]")
        page.wait_for_url(f"{self.url}/admin/")
        return page

    def open(self, page, path: str):
        """Go to ``path``; returns the response (its status is what the user got)."""
        return page.goto(f"{self.url}{path}")

    def shot(self, page, name: str) -> None:
        """Save the screen as docs/screenshots/<name>.png when CIBLE_SCREENSHOTS is set."""
        folder = os.environ.get("CIBLE_SCREENSHOTS")
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(Path(folder) / f"{name}.png"))


def create_role_users() -> None:
    """One staff user per role, named after it in lower case (``marketer``, ``analyst``, ``dpo``)."""
    from django.contrib.auth.models import Group, User

    from ops.roles import roles_sync

    roles_sync()
    for role in ROLES:
        user = User.objects.create_user(role.lower(), password=PASSWORD, is_staff=True)
        user.groups.add(Group.objects.get(name=role))


@pytest.fixture
def journey(chromium, live_server, default_purposes) -> Iterator[Journey]:  # noqa: F811
    """A journey's workspace; fails the test if any page answered 5xx."""
    create_role_users()
    workspace = Journey(url=live_server.url, browser=chromium)
    yield workspace
    for context in workspace.contexts:
        context.close()
    assert workspace.server_errors == [], "server errors seen by the browser"


def worker_starter(*, broker_url: str, broker_folder: Path | None, env: dict[str, str]):
    """``start(clock_shift_hours=0, **more_env)``: a context manager running one real worker on
    every queue; on failure its last output lines are printed with the test report."""

    @contextlib.contextmanager
    def start(*, clock_shift_hours: float = 0.0, **extra_env: str):
        with celery_worker(
            broker_url=broker_url,
            broker_folder=broker_folder,
            queues=ALL_QUEUES,
            extra_env={**env, **extra_env},
            clock_shift_hours=clock_shift_hours,
        ) as process:
            try:
                yield process
            except BaseException:
                print("--- worker output (last 80 lines) ---")
                print("".join(process.output[-80:]))
                raise

    return start


@pytest.fixture
def workers(isolated_broker, live_server, smtp_sink, sms_sink):  # noqa: F811
    """``with workers(): ...`` runs a real Celery worker (all queues) on this test's private
    filesystem broker, sending email to the SMTP sink and SMS to the local SMS server; links
    in messages point at the live server. Yields the worker process (``.output`` for reports).
    ``workers(clock_shift_hours=25)`` is a worker living a day later (a wait step is over)."""
    env = worker_env(smtp_port=smtp_sink[1], sms_url=sms_sink.url, public_url=live_server.url)
    return worker_starter(broker_url="filesystem://", broker_folder=isolated_broker, env=env)


@pytest.fixture
def redis_workers(redis_url, monkeypatch, live_server, smtp_sink, sms_sink):  # noqa: F811
    """As ``workers``, with Redis as the broker (the PostgreSQL pass): the web process's
    ``.delay()`` and the worker both use the session's Redis server."""
    from config.celery import app as celery_app
    from tests.workers import reset_producer_pools

    monkeypatch.setattr(celery_app.conf, "broker_url", redis_url)
    monkeypatch.setattr(celery_app.conf, "broker_transport_options", {})
    reset_producer_pools(celery_app)
    env = worker_env(smtp_port=smtp_sink[1], sms_url=sms_sink.url, public_url=live_server.url)
    yield worker_starter(broker_url=redis_url, broker_folder=None, env=env)
    monkeypatch.undo()
    reset_producer_pools(celery_app)


def worker_env(*, smtp_port: int, sms_url: str, public_url: str) -> dict[str, str]:
    """Environment of a journey's worker: where messages go and what their links point at."""
    return {
        "EMAIL_URL": f"smtp://127.0.0.1:{smtp_port}",
        "SMS_PROVIDER_URL": sms_url + "/v3/transactionalSMS/sms",
        "SMS_PROVIDER_API_KEY": "xkeysib-test",
        "SMS_RATE_PER_SECOND": "0",
        "EMAIL_RATE_PER_SECOND": "0",
        "CIBLE_PUBLIC_BASE_URL": public_url,
        "LOG_LEVEL": "INFO",
    }
