"""A bad DATABASE_URL or broker URL stops the process with one clear line."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_check(**env: str) -> subprocess.CompletedProcess:
    environment = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")
    }
    environment.update(env, DJANGO_SETTINGS_MODULE="config.settings.local")
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("DATABASE_URL", "mysqlx://nowhere/db", "DATABASE_URL has scheme 'mysqlx'"),
        ("DATABASE_URL", "not a url", "DATABASE_URL has scheme '(none)'"),
        ("DATABASE_URL", "postgres://localhost:5432", "DATABASE_URL names no database"),
        ("CELERY_BROKER_URL", "rabbit://localhost", "CELERY_BROKER_URL has scheme 'rabbit'"),
    ],
)
def test_bad_url_fails_at_start_with_one_clear_line(variable, value, expected):
    result = run_check(**{variable: value})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Configuration error: ")
    assert expected in lines[0]


def test_default_configuration_passes_django_checks():
    result = run_check()
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_production_settings_pass_deploy_checks():
    environment = {
        "SECRET_KEY": "x" * 64 + "production-secret-for-the-check-only",
        "ALLOWED_HOSTS": "cible.example.com",
        "DATABASE_URL": "postgres://cible:cible@db:5432/cible",
        "CELERY_BROKER_URL": "redis://redis:6379/0",
    }
    env = {**os.environ, **environment, "DJANGO_SETTINGS_MODULE": "config.settings.production"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
