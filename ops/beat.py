"""Beat that survives a database outage.

django-celery-beat's ``DatabaseScheduler`` reads its schedule from the database; a query that
fails inside ``tick()`` (PostgreSQL restarting, failing over) propagates and beat exits, so
nothing periodic runs again until someone restarts it. ``ResilientDatabaseScheduler`` catches
lost-connection errors in ``tick()`` and at start-up, closes the connection, logs one line and
tries again ``OPS_BEAT_DB_RETRY_SECONDS`` later. It also records beat's own heartbeat (at most
every ``OPS_BEAT_HEARTBEAT_SECONDS``), which ``/readyz`` reports.
"""

from __future__ import annotations

import logging
import socket
import time

from django.conf import settings
from django.db import DatabaseError, InterfaceError, close_old_connections, connection
from django.utils import timezone
from django_celery_beat.schedulers import DatabaseScheduler

from ops.health import beat_heartbeat_record

logger = logging.getLogger(__name__)

DATABASE_ERRORS = (DatabaseError, InterfaceError)


def _reset_connection() -> None:
    try:
        connection.close()
    except Exception:  # noqa: BLE001 - the socket is gone either way
        connection.connection = None


class ResilientDatabaseScheduler(DatabaseScheduler):
    _heartbeat_at = 0.0
    _database_down_since: float | None = None

    def setup_schedule(self):
        delay = settings.OPS_BEAT_DB_RETRY_SECONDS
        while True:
            try:
                return super().setup_schedule()
            except DATABASE_ERRORS as exc:
                logger.warning(
                    "beat: database unavailable at start (%s); retrying in %s s", exc, delay
                )
                _reset_connection()
                time.sleep(delay)

    def tick(self, *args, **kwargs):
        try:
            interval = super().tick(*args, **kwargs)
            self._beat_heartbeat()
        except DATABASE_ERRORS as exc:
            if self._database_down_since is None:
                self._database_down_since = time.monotonic()
                logger.warning(
                    "beat: database unavailable (%s); retrying every %s s",
                    exc,
                    settings.OPS_BEAT_DB_RETRY_SECONDS,
                )
            _reset_connection()
            return settings.OPS_BEAT_DB_RETRY_SECONDS
        if self._database_down_since is not None:
            logger.info(
                "beat: database back after %.0f s", time.monotonic() - self._database_down_since
            )
            self._database_down_since = None
        return interval

    def _beat_heartbeat(self) -> None:
        if time.monotonic() - self._heartbeat_at < settings.OPS_BEAT_HEARTBEAT_SECONDS:
            return
        close_old_connections()
        beat_heartbeat_record(hostname=socket.gethostname(), now=timezone.now())
        self._heartbeat_at = time.monotonic()
