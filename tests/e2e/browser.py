"""Headless Debian Chromium driven by Playwright (sync API), shared by every browser test."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}


def require_chromium() -> None:
    """Skip (fail under ``REQUIRE_SERVICES=1``) when Debian's chromium is not installed."""
    if CHROMIUM.exists():
        return
    message = "/usr/bin/chromium not found (apt-get install chromium)"
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"REQUIRE_SERVICES=1 and {message}")
    pytest.skip(message)


@contextlib.contextmanager
def logged_in_page(
    live_server,
    *,
    username: str,
    password: str,
    path: str,
    language: str = "en",
    viewport: dict | None = None,
) -> Iterator:
    """A Chromium page logged in through the admin login form and landed on ``path``
    (``language`` "en" or "fr" for the browser's locale and Accept-Language; ``viewport``
    Playwright's default unless given)."""
    from playwright.sync_api import sync_playwright

    require_chromium()
    locale = {"en": "en-US", "fr": "fr-FR"}[language]
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's loop runs in this thread
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(locale=locale, extra_http_headers={"Accept-Language": language})
            page.goto(f"{live_server.url}/admin/login/?next={quote(path)}")
            page.fill("#id_username", username)
            page.fill("#id_password", password)
            page.click("#login-form [type=submit]")
            page.wait_for_url(lambda url: url.endswith(path))
            try:
                yield page
            finally:
                browser.close()
    finally:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
