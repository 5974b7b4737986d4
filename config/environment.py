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
    sys.stderr.write(f"Configuration error: {message}\n")
    raise SystemExit(2)


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
