"""Upkeep of the monthly event partitions (PostgreSQL) and retention's delete of old events.

On SQLite (one plain table) :func:`event_partitions_ahead` does nothing and
:func:`events_delete_before` is a set-based ``DELETE``; the DDL itself is in ``contacts.partitions``.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.db import connection, models, transaction

from contacts import partitions
from contacts.models import Event
from contacts.signals import events_deleted

logger = logging.getLogger(__name__)


def events_partitioned() -> bool:
    """True when the events table is partitioned (PostgreSQL after ``contacts.0007``)."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        return partitions.is_partitioned(cursor)


def event_partitions_ahead(*, now: datetime, months: int | None = None) -> list[str]:
    """Create the partitions of ``now``'s month and the ``months`` following (default
    ``CONTACTS_EVENT_PARTITIONS_AHEAD``); return the names created. Idempotent: months that
    exist are left alone. Rows already sitting in the DEFAULT partition for a new month move
    with it (none in normal running: the month exists before its first event)."""
    if not events_partitioned():
        return []
    months = settings.CONTACTS_EVENT_PARTITIONS_AHEAD if months is None else months
    first = partitions.month_start(now)
    wanted = partitions.month_range(first, partitions.month_add(first, months))
    with transaction.atomic(), connection.cursor() as cursor:
        created = partitions.months_ensure(cursor, wanted)
        cursor.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {partitions.DEFAULT} LIMIT 1000000) d"  # noqa: S608
        )
        stray = cursor.fetchone()[0]
    if stray:
        logger.warning(
            "events: %s%s row(s) in %s (timestamps outside every month partition); "
            "`manage.py event_partitions --from YYYY-MM` gives them their months",
            stray,
            "+" if stray >= 1_000_000 else "",
            partitions.DEFAULT,
        )
    return created


def event_partitions_create(*, first: datetime, last: datetime) -> list[str]:
    """Create the month partitions from ``first``'s month to ``last``'s (bulk loads of past
    events, an operator splitting DEFAULT); return the names created. SQLite: nothing."""
    if not events_partitioned():
        return []
    with transaction.atomic(), connection.cursor() as cursor:
        return partitions.months_ensure(cursor, partitions.month_range(first, last))


def event_partitions_list() -> list[partitions.Partition]:
    """The partitions with their bounds and estimated rows (empty on SQLite)."""
    if not events_partitioned():
        return []
    with connection.cursor() as cursor:
        return partitions.partitions(cursor)


def events_delete_before(*, cutoff: datetime) -> int:
    """Delete every event with ``occurred_at < cutoff`` and the rows that cascade from them;
    return the number of events deleted.

    On partitioned PostgreSQL a month partition wholly older than ``cutoff`` is detached and
    dropped (no row deleted one by one, no dead tuples left to vacuum; its rows are counted
    and the rows referencing its events deleted first); only the boundary month and the
    DEFAULT partition are deleted from row by row, the others pruned by ``occurred_at``.
    Event deletions send no model signals (none are connected; the ORM's cascade is done here,
    set-based, for every relation to events); ``events_deleted`` is sent once, at the end."""
    deleted = 0
    with transaction.atomic():
        if events_partitioned():
            with connection.cursor() as cursor:
                # Deferred foreign-key checks of rows written earlier in this transaction must
                # fire before a table they touch is dropped (PostgreSQL refuses otherwise).
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                for part in partitions.partitions_before(cursor, cutoff):
                    cursor.execute(f'SELECT count(*) FROM "{part.name}"')  # noqa: S608
                    deleted += cursor.fetchone()[0]
                    ids = models.expressions.RawSQL(f'SELECT id FROM "{part.name}"', ())  # noqa: S608, S611
                    _delete_dependents(ids)
                    partitions.partition_drop(cursor, part.name)
        rest = Event.objects.filter(occurred_at__lt=cutoff)
        _delete_dependents(rest.values("id"))
        deleted += rest._raw_delete(rest.db)
        events_deleted.send(sender=Event, cutoff=cutoff, deleted=deleted)
    return deleted


def _delete_dependents(event_ids) -> None:
    """Delete (with their own cascades) the rows of other apps that reference these events:
    found through Django's relations, so contacts imports none of the apps that point at it."""
    for relation in Event._meta.related_objects:
        if relation.on_delete is not models.CASCADE:
            raise NotImplementedError(
                f"{relation.related_model.__name__}.{relation.field.name}: only CASCADE "
                "relations to events can be purged set-based"
            )
        relation.related_model._base_manager.filter(
            **{f"{relation.field.name}__in": event_ids}
        ).delete()
