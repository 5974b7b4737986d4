"""Test session set-up.

`make test` runs two passes: SQLite (everything not marked ``postgres``) and PostgreSQL
(``CIBLE_TEST_DATABASE=postgresql``, tests marked ``postgres``) against a throwaway server this
session starts. A plain ``pytest`` is the SQLite pass: it skips ``postgres`` tests, saying why. Redis is started per session by pytest-redis for tests that ask for it.
A missing server binary skips those tests with the reason; with ``REQUIRE_SERVICES=1`` it fails.
"""

from __future__ import annotations

import os
import shutil

import environ
import pytest
from pytest_redis import factories as redis_factories

from tests.services import PostgresServer, ServiceUnavailable

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"
POSTGRES_PASS = os.environ.get("CIBLE_TEST_DATABASE") == "postgresql"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"

_postgres: PostgresServer | None = None
_postgres_error: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _postgres, _postgres_error
    if not POSTGRES_PASS:
        return
    try:
        _postgres = PostgresServer.start()
    except ServiceUnavailable as exc:
        _postgres_error = str(exc)
        if REQUIRE_SERVICES:
            pytest.exit(f"REQUIRE_SERVICES=1 and PostgreSQL is unavailable: {exc}", returncode=1)
        return
    config.add_cleanup(_postgres.stop)
    from django.conf import settings
    from django.db import connections

    # pytest-django imported the settings already: point the default alias at the new server
    # and rebuild the connection handler's view of them (no connection has been opened yet).
    settings.DATABASES["default"] = environ.Env.db_url_config(_postgres.url)
    settings.DATABASES["default"]["TEST"] = {"NAME": "test_cible"}
    connections.close_all()
    connections.__dict__["settings"] = connections.configure_settings(settings.DATABASES)
    if hasattr(connections._connections, "default"):
        delattr(connections._connections, "default")
    os.environ["DATABASE_URL"] = _postgres.url


NOT_THE_POSTGRES_PASS = (
    "needs PostgreSQL: runs in the PostgreSQL pass "
    "(CIBLE_TEST_DATABASE=postgresql pytest -m postgres, the second half of `make test`)"
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``postgres`` tests run only in the PostgreSQL pass: a plain ``pytest`` (SQLite) skips
    them with the reason instead of running them on the wrong database."""
    for item in items:
        if "postgres" not in item.keywords:
            continue
        if not POSTGRES_PASS:
            item.add_marker(pytest.mark.skip(reason=NOT_THE_POSTGRES_PASS))
        elif _postgres is None:
            item.add_marker(pytest.mark.skip(reason=f"PostgreSQL unavailable: {_postgres_error}"))


@pytest.fixture(autouse=True)
def _default_language():
    """Each test starts in the default language: a request with a French cookie leaves French
    active in the thread (LocaleMiddleware), which would leak into the next test's messages."""
    from django.conf import settings
    from django.utils import translation

    yield
    translation.activate(settings.LANGUAGE_CODE)


@pytest.fixture(autouse=True)
def _fresh_local_cache():
    """Each test starts with an empty per-process cache: counters kept there (bad API keys per
    client address, tracker rate limit) would otherwise carry over from earlier tests."""
    from django.core.cache import caches
    from django.core.cache.backends.locmem import LocMemCache

    if isinstance(caches["default"], LocMemCache):
        caches["default"].clear()
    yield


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of the session's PostgreSQL server (only in the PostgreSQL pass)."""
    if _postgres is None:
        pytest.fail("postgres_url used by a test not marked @pytest.mark.postgres")
    return _postgres.url


redis_proc = redis_factories.redis_proc(executable=REDIS_SERVER, port=None)


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest) -> str:
    """A real Redis server for this session (pytest-redis), as a URL."""
    if not os.path.exists(REDIS_SERVER):
        message = "redis-server binary not found (apt-get install redis-server)"
        if REQUIRE_SERVICES:
            pytest.fail(f"REQUIRE_SERVICES=1 and {message}")
        pytest.skip(message)
    proc = request.getfixturevalue("redis_proc")
    return f"redis://{proc.host}:{proc.port}/0"


@pytest.fixture
def api_key_value(db) -> str:
    """Clear-text value of a fresh all-scopes API key."""
    from contacts.api_keys import api_key_create

    _key, raw = api_key_create(name="test", scopes=["*"])
    return raw


@pytest.fixture
def api_client(api_key_value):
    """DRF test client authenticated with ``Authorization: Api-Key …``."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key_value}")
    return client


@pytest.fixture
def isolated_broker(tmp_path, monkeypatch):
    """A private filesystem broker for this test: the test's .delay() calls and the worker it
    starts (``celery_worker(broker_url="filesystem://", broker_folder=…)``) share it, and no
    backlog left by earlier tests is in the way. Yields the folder."""
    from config.celery import app as celery_app
    from tests.workers import filesystem_broker_folder, reset_producer_pools

    folder, options = filesystem_broker_folder(tmp_path)
    monkeypatch.setattr(celery_app.conf, "broker_url", "filesystem://")
    monkeypatch.setattr(celery_app.conf, "broker_transport_options", options)
    reset_producer_pools(celery_app)
    yield folder
    monkeypatch.undo()
    reset_producer_pools(celery_app)
