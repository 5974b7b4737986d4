"""Validation of the two URLs everything depends on, so a typo fails in one clear line.

A bad ``DATABASE_URL`` or ``CELERY_BROKER_URL`` stops the process at start with
``Configuration error: …`` on stderr and exit status 2, instead of a traceback later.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import environ

SUPPORTED_DATABASE_SCHEMES = ("sqlite", "postgres", "postgresql", "pgsql", "psql")
SUPPORTED_BROKER_SCHEMES = ("filesystem", "redis", "rediss", "memory", "amqp", "pyamqp")


def configuration_error(message: str) -> NoReturn:
    """Print one line and exit with status 2 (usage/configuration error)."""
    configuration_errors([message])


def configuration_errors(messages: list[str]) -> NoReturn:
    """Print one ``Configuration error: …`` line per problem and exit with status 2."""
    for message in messages:
        sys.stderr.write(f"Configuration error: {message}\n")
    raise SystemExit(2)


PER_PROCESS_CACHES = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
    "django.core.cache.backends.filebased.FileBasedCache",
)


def production_problems(
    *,
    database: dict[str, Any],
    cache: dict[str, Any],
    broker_url: str,
    public_base_url: str,
    consent_hash_key: str,
    secret_key: str,
) -> list[str]:
    """What production cannot run with, one sentence each (empty when all is well).

    Several processes on several machines share one database, one cache (rate limits, failed
    API-key counters, login lockouts), one broker; links in messages need the public https
    address; erased people's hashes need a key of their own, so rotating SECRET_KEY does not
    silently lift every erasure and hashed suppression."""
    problems = []
    if database.get("ENGINE") != "django.db.backends.postgresql":
        problems.append(
            "production needs PostgreSQL: set DATABASE_URL=postgres://user:pass@host:5432/cible "
            "(SQLite is for the embedded mode only)."
        )
    if cache.get("BACKEND") in PER_PROCESS_CACHES:
        problems.append(
            "production needs a shared cache: set CACHE_URL=rediscache://host:6379/1 "
            "(or a memcached/database cache); a per-process cache breaks rate limits and lockouts."
        )
    if urlsplit(broker_url).scheme not in ("redis", "rediss", "amqp", "pyamqp"):
        problems.append(
            "production needs a shared broker: set CELERY_BROKER_URL=redis://host:6379/0 "
            "(the filesystem broker is for the embedded mode only)."
        )
    base = urlsplit(public_base_url)
    if base.scheme != "https" or not base.hostname or base.hostname in ("127.0.0.1", "localhost"):
        problems.append(
            "production needs its public address for links in messages: set "
            "CIBLE_PUBLIC_BASE_URL=https://cible.example.com (https, the address people reach)."
        )
    if not consent_hash_key or consent_hash_key == secret_key:
        problems.append(
            "production needs its own CONSENT_HASH_KEY (a long random string, distinct from "
            "SECRET_KEY, never changed): it keys the hashes that keep erased people erased."
        )
    return problems


# Embedded mode's SQLite: writers queue instead of failing with "database is locked". WAL lets
# readers run beside the writer; IMMEDIATE transactions take the write lock when they begin, so
# a transaction never has to upgrade a read lock (SQLite answers that deadlock with an
# immediate SQLITE_BUSY, whatever the timeout); ``timeout`` (seconds, the busy timeout) is how
# long a writer waits for the lock. Past it, the API answers 503 with Retry-After
# (``contacts.middleware.DatabaseBusyMiddleware``).
SQLITE_BUSY_TIMEOUT_SECONDS = 20


def sqlite_options(env: environ.Env) -> dict[str, Any]:
    return {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": env.int("SQLITE_BUSY_TIMEOUT_SECONDS", default=SQLITE_BUSY_TIMEOUT_SECONDS),
    }


def database_settings(env: environ.Env, *, default_sqlite: Path) -> dict[str, Any]:
    raw = env.str("DATABASE_URL", default="")
    if not raw:
        default_sqlite.parent.mkdir(parents=True, exist_ok=True)
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(default_sqlite),
            "OPTIONS": sqlite_options(env),
        }
    scheme = urlsplit(raw).scheme
    if scheme not in SUPPORTED_DATABASE_SCHEMES:
        configuration_error(
            f"DATABASE_URL has scheme {scheme or '(none)'!r}; expected one of "
            f"{', '.join(SUPPORTED_DATABASE_SCHEMES)} (e.g. postgres://user:pass@host:5432/cible)."
        )
    try:
        config = env.db_url_config(raw)
    except Exception as exc:  # django-environ raises several types for malformed URLs
        configuration_error(f"DATABASE_URL could not be parsed ({exc}).")
    if config["ENGINE"] != "django.db.backends.sqlite3" and not config.get("NAME"):
        configuration_error("DATABASE_URL names no database (e.g. postgres://host:5432/cible).")
    if config["ENGINE"] != "django.db.backends.sqlite3":
        config.setdefault("CONN_MAX_AGE", 60)
        config["CONN_HEALTH_CHECKS"] = True
    else:
        config["OPTIONS"] = {**sqlite_options(env), **config.get("OPTIONS", {})}
    return config


def broker_settings(env: environ.Env, *, default_folder: Path) -> dict[str, Any]:
    raw = env.str("CELERY_BROKER_URL", default="filesystem://")
    scheme = urlsplit(raw).scheme
    if scheme not in SUPPORTED_BROKER_SCHEMES:
        configuration_error(
            f"CELERY_BROKER_URL has scheme {scheme or '(none)'!r}; expected one of "
            f"{', '.join(SUPPORTED_BROKER_SCHEMES)} (e.g. redis://localhost:6379/0 or filesystem://)."
        )
    options: dict[str, Any] = {}
    if scheme == "filesystem":
        folder = Path(env.str("CELERY_BROKER_FOLDER", default=str(default_folder)))
        (folder / "queue").mkdir(parents=True, exist_ok=True)
        (folder / "processed").mkdir(parents=True, exist_ok=True)
        (folder / "control").mkdir(parents=True, exist_ok=True)
        options = {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),
            "store_processed": False,
        }
    elif scheme in ("redis", "rediss"):
        # A task not acknowledged within this many seconds is redelivered (acks_late).
        options = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)}
    return {"url": raw, "transport_options": options}
