"""Headless Debian Chromium driven by Playwright (sync API), shared by every browser test."""

from __future__ import annotations

import os
from pathlib import Path

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
