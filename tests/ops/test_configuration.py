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


PRODUCTION = {
    "SECRET_KEY": "x" * 64 + "production-secret-for-the-check-only",
    "ALLOWED_HOSTS": "cible.example.com",
    "DATABASE_URL": "postgres://cible:cible@db:5432/cible",
    "CELERY_BROKER_URL": "redis://redis:6379/0",
    "CACHE_URL": "rediscache://redis:6379/1",
    "CIBLE_PUBLIC_BASE_URL": "https://cible.example.com",
    "CONSENT_HASH_KEY": "y" * 64 + "consent-hash-key-for-the-check-only",
}


def run_production(*args: str, **overrides: str | None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in PRODUCTION}
    environment.update(PRODUCTION, DJANGO_SETTINGS_MODULE="config.settings.production")
    for name, value in overrides.items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_settings_pass_deploy_checks():
    result = run_production("check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"DATABASE_URL": None}, "production needs PostgreSQL"),
        ({"DATABASE_URL": "sqlite:////tmp/cible.sqlite3"}, "production needs PostgreSQL"),
        ({"CACHE_URL": None}, "production needs a shared cache"),
        ({"CACHE_URL": "locmemcache://"}, "production needs a shared cache"),
        ({"CELERY_BROKER_URL": "filesystem://"}, "production needs a shared broker"),
        ({"CIBLE_PUBLIC_BASE_URL": None}, "CIBLE_PUBLIC_BASE_URL=https://"),
        ({"CIBLE_PUBLIC_BASE_URL": "http://cible.example.com"}, "CIBLE_PUBLIC_BASE_URL=https://"),
        ({"CONSENT_HASH_KEY": None}, "production needs its own CONSENT_HASH_KEY"),
        ({"CONSENT_HASH_KEY": PRODUCTION["SECRET_KEY"]}, "its own CONSENT_HASH_KEY"),
    ],
)
def test_production_refuses_to_start_unsafe_with_one_line(overrides, expected):
    result = run_production("check", **overrides)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Configuration error: ") and expected in lines[0]


def test_production_with_only_a_secret_key_names_every_missing_piece():
    result = run_production(
        "check",
        DATABASE_URL=None,
        CACHE_URL=None,
        CELERY_BROKER_URL=None,
        CIBLE_PUBLIC_BASE_URL=None,
        CONSENT_HASH_KEY=None,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 5, result.stderr
    assert all(line.startswith("Configuration error: production needs") for line in lines)
