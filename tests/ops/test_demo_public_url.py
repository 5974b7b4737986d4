"""Embedded mode: links in sent messages point at the address the demo serves (``PORT=`` or
``run_demo --port``), not at http://127.0.0.1:8000 whatever the port."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ops.management.commands.run_demo import demo_environment

ROOT = Path(__file__).resolve().parents[2]
PRINT_BASE = "from django.conf import settings; print(settings.CIBLE_PUBLIC_BASE_URL)"


def base_url_seen_by_a_demo_process(env: dict) -> str:
    """What a process started with ``env`` (the demo's web, worker or beat) puts in links."""
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", PRINT_BASE],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "config.settings.local"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def clean_environ(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("CIBLE_PUBLIC_BASE_URL", "PORT")}
    return {**env, **extra}


def test_run_demo_port_is_the_base_of_links_in_messages():
    env = demo_environment(port=9123, environ=clean_environ())
    assert base_url_seen_by_a_demo_process(env) == "http://127.0.0.1:9123"


def test_port_environment_variable_is_the_default_base():
    assert base_url_seen_by_a_demo_process(clean_environ(PORT="9124")) == "http://127.0.0.1:9124"


def test_an_explicit_public_base_url_is_kept():
    env = demo_environment(
        port=9125, environ=clean_environ(CIBLE_PUBLIC_BASE_URL="https://crm.example.fr")
    )
    assert base_url_seen_by_a_demo_process(env) == "https://crm.example.fr"
