"""Events partitioned by month on a real PostgreSQL: the migration keeps every row (outliers in
DEFAULT), ingestion stays idempotent across partitions, beat creates months ahead, retention
drops whole months, and a segment's time window reads only the months it covers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from activation.models import Attribution, CampaignRun, OutboxMessage
from config.celery import app as celery_app
from consent.services import retention_purge
from contacts import partitions
from contacts.models import Contact, Event
from contacts.services import events_record_bulk
from contacts.services.partitions import event_partitions_list, events_delete_before
from contacts.tasks import event_partitions_ahead
from segments.rules import rule_compile, rule_validate
from tests.factories import CampaignFactory, ContactFactory, EventFactory

pytestmark = pytest.mark.postgres

BEFORE = ("contacts", "0005_event_contact_index_covered")


def _partition_of(event_id: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text FROM contacts_event WHERE id = %s", [event_id]
        )
        return cursor.fetchone()[0]


def _migrate(target) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(target if isinstance(target, list) else [target])


def _leaf() -> list:
    executor = MigrationExecutor(connection)
    return executor.loader.graph.leaf_nodes()


@pytest.mark.django_db(transaction=True)
def test_migration_keeps_every_row_and_the_default_partition_catches_outliers():
    leaf = _leaf()
    try:
        _migrate(BEFORE)
        with connection.cursor() as cursor:
            assert not partitions.is_partitioned(cursor)
        now = timezone.now()
        contact = ContactFactory()
        moments = {
            "year-1": datetime(1, 1, 1, tzinfo=UTC),
            "year-9999": datetime(9999, 12, 31, 23, tzinfo=UTC),
            "twenty-years-ago": now - timedelta(days=7300),
            "last-month": now - timedelta(days=31),
            "now": now,
        }
        for key, moment in moments.items():
            Event.objects.create(
                contact=contact,
                type="page_view",
                occurred_at=moment,
                source="api",
                idempotency_key=key,
            )
        before = sorted(Event.objects.values_list("id", "idempotency_key", "occurred_at"))

        _migrate(leaf)

        with connection.cursor() as cursor:
            assert partitions.is_partitioned(cursor)
        assert sorted(Event.objects.values_list("id", "idempotency_key", "occurred_at")) == before
        where = {key: _partition_of(pk) for pk, key, _at in before}
        assert where["year-1"] == where["year-9999"] == partitions.DEFAULT
        assert where["twenty-years-ago"] == partitions.DEFAULT  # older than 10 years back
        assert where["now"] == partitions.partition_name(partitions.month_start(now))
        assert where["last-month"] == partitions.partition_name(
            partitions.month_start(now - timedelta(days=31))
        )
        # ids continue after the copied rows, and the same key at the same instant is refused
        fresh = Event.objects.create(
            contact=contact, type="page_view", occurred_at=now, source="api", idempotency_key="new"
        )
        assert fresh.pk > max(pk for pk, _key, _at in before)
        assert Event.objects.get(pk=fresh.pk).idempotency_key == "new"
    finally:
        _migrate(leaf)


def _items(keys_and_stamps):
    return [
        {"external_id": "C-1", "type": "page_view", "timestamp": stamp, "idempotency_key": key}
        for key, stamp in keys_and_stamps
    ]


@pytest.mark.django_db
def test_the_same_events_sent_twice_are_stored_once_across_partitions():
    ContactFactory(external_id="C-1")
    now = timezone.now()
    stamps = [(now - timedelta(days=d)).isoformat() for d in (0, 35, 70, 300)]
    items = _items((f"k{i}", stamp) for i, stamp in enumerate(stamps))

    first = events_record_bulk(items=items, source="api")
    again = events_record_bulk(items=items, source="api")

    assert first.counts["created"] == 4
    assert (again.counts["created"], again.counts["duplicate"]) == (0, 4)
    assert Event.objects.count() == 4
    assert len({_partition_of(pk) for pk in Event.objects.values_list("pk", flat=True)}) == 4


@pytest.mark.django_db
def test_same_key_at_another_instant_is_a_second_event_on_partitioned_postgresql():
    """Documented (docs/decisions.md): on PostgreSQL the unique key includes occurred_at, so a
    key reused for another instant is stored; a true repeat (same instant) is a duplicate."""
    ContactFactory(external_id="C-1")
    now = timezone.now()
    first = events_record_bulk(items=_items([("k", now.isoformat())]), source="api")
    other = events_record_bulk(
        items=_items([("k", (now - timedelta(days=40)).isoformat())]), source="api"
    )
    repeat = events_record_bulk(items=_items([("k", now.isoformat())]), source="api")

    assert first.counts["created"] == other.counts["created"] == 1
    assert (repeat.counts["created"], repeat.counts["duplicate"]) == (0, 1)
    assert Event.objects.filter(source="api", idempotency_key="k").count() == 2


@pytest.mark.django_db
def test_database_unique_key_on_partitioned_postgresql_includes_occurred_at():
    """What the database alone guarantees (docs/decisions.md): the same key at the same instant
    is refused; at another instant only the ingestion services refuse it."""
    now = timezone.now()
    event = EventFactory(source="api", idempotency_key="k", occurred_at=now)
    with pytest.raises(IntegrityError), transaction.atomic():
        EventFactory(contact=event.contact, source="api", idempotency_key="k", occurred_at=now)
    EventFactory(
        contact=event.contact,
        source="api",
        idempotency_key="k",
        occurred_at=now - timedelta(days=40),
    )
    assert Event.objects.filter(idempotency_key="k").count() == 2


@pytest.mark.django_db
def test_beat_task_creates_the_months_ahead_once_and_moves_default_rows_of_a_new_month():
    entry = settings.CELERY_BEAT_SCHEDULE["contacts-event-partitions-ahead"]
    assert entry["task"] == "contacts.tasks.event_partitions_ahead"
    assert entry["task"] in celery_app.tasks

    now = timezone.now()
    assert event_partitions_ahead() == []  # the migration created this month and 3 ahead
    far = partitions.month_add(partitions.month_start(now), 24)
    stray = EventFactory(occurred_at=far + timedelta(days=3))  # no partition yet: DEFAULT
    assert _partition_of(stray.pk) == partitions.DEFAULT

    from contacts.services.partitions import event_partitions_ahead as ahead

    created = ahead(now=far, months=2)
    assert created == [partitions.partition_name(partitions.month_add(far, i)) for i in range(3)]
    assert ahead(now=far, months=2) == []
    assert _partition_of(stray.pk) == partitions.partition_name(far)
    assert Event.objects.filter(pk=stray.pk).exists()


@pytest.mark.django_db
def test_event_partitions_command_creates_past_months_and_lists_them(capsys):
    stray = EventFactory(occurred_at=datetime(2001, 5, 17, tzinfo=UTC))
    assert _partition_of(stray.pk) == partitions.DEFAULT
    call_command("event_partitions", "--from", "2001-05", "--ahead", "3")
    out = capsys.readouterr().out
    assert "contacts_event_y2001m05" in out and "DEFAULT" in out
    assert _partition_of(stray.pk) == "contacts_event_y2001m05"


@pytest.mark.django_db
def test_retention_drops_whole_months_and_deletes_only_in_the_boundary_month(settings):
    settings.CONSENT_RETENTION_EVENTS_DAYS = 400
    settings.CONSENT_RETENTION_INACTIVE_CONTACT_DAYS = 100_000  # erase nobody here
    now = timezone.now()
    cutoff = now - timedelta(days=400)
    boundary = partitions.month_start(cutoff)
    contact = ContactFactory(created_at=now)
    old = [
        EventFactory(contact=contact, occurred_at=now - timedelta(days=d), type="purchase")
        for d in (600, 550, 500)
    ]
    in_boundary_old = EventFactory(
        contact=contact, occurred_at=max(boundary, cutoff - timedelta(hours=1))
    )
    outlier = EventFactory(contact=contact, occurred_at=datetime(1, 1, 1, tzinfo=UTC))
    kept = [
        EventFactory(contact=contact, occurred_at=cutoff + timedelta(hours=1)),
        EventFactory(contact=contact, occurred_at=now - timedelta(days=3)),
    ]
    run = CampaignRun.objects.create(campaign=CampaignFactory(), status="done", created_at=now)
    message = OutboxMessage.objects.create(
        run=run, contact=contact, channel="email", next_attempt_at=now, created_at=now
    )
    Attribution.objects.create(event=old[0], message=message, run=run, attributed_at=now)
    Attribution.objects.create(event=kept[1], message=message, run=run, attributed_at=now)
    months_before = {p.name for p in event_partitions_list() if p.end and p.end <= cutoff}
    assert partitions.partition_name(partitions.month_start(old[0].occurred_at)) in months_before

    report = retention_purge(now=now, dry_run=False)

    assert report.events_deleted == 5  # 3 in dropped months, 1 in the boundary, 1 in DEFAULT
    assert report.report["events_by_type"] == {"purchase": 3, "page_view": 2}
    assert sorted(Event.objects.values_list("pk", flat=True)) == sorted(e.pk for e in kept)
    remaining = {p.name for p in event_partitions_list()}
    assert not months_before & remaining  # whole months dropped
    assert partitions.partition_name(boundary) in remaining  # boundary month kept, rows deleted
    assert partitions.DEFAULT in remaining
    assert list(Attribution.objects.values_list("event_id", flat=True)) == [kept[1].pk]
    assert not Event.objects.filter(pk__in=[in_boundary_old.pk, outlier.pk]).exists()


@pytest.mark.django_db
def test_events_delete_before_counts_rows_of_dropped_months():
    now = timezone.now()
    for days in (700, 650, 10):
        EventFactory(occurred_at=now - timedelta(days=days))
    assert events_delete_before(cutoff=now - timedelta(days=365)) == 2
    assert Event.objects.count() == 1


@pytest.mark.django_db
def test_an_event_window_condition_reads_only_the_months_of_its_window():
    now = timezone.now()
    contact = ContactFactory()
    for days in (1, 100, 400):
        EventFactory(contact=contact, type="purchase", occurred_at=now - timedelta(days=days))
    rule = {"type": "event", "event_type": "purchase", "within_days": 30}
    members = Contact.objects.filter(rule_compile(rule_validate(rule), now=now))
    assert list(members.values_list("pk", flat=True)) == [contact.pk]

    plan = members.explain()

    current = partitions.partition_name(partitions.month_start(now))
    assert current in plan
    old_months = [
        partitions.partition_name(partitions.month_start(now - timedelta(days=d)))
        for d in (100, 200, 400)
    ]
    assert not [name for name in old_months if name in plan], plan
    # [now - 30 days, now] is covered by month partitions: DEFAULT is pruned as well.
    assert partitions.DEFAULT not in plan


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_upkeep_runs_create_each_month_once():
    from contacts.services.partitions import event_partitions_ahead as ahead
    from tests.contacts.test_postgres_ingest import run_concurrently

    far = partitions.month_add(partitions.month_start(timezone.now()), 60)
    try:
        outcomes = run_concurrently(lambda: ahead(now=far, months=2))
        assert sorted(name for created in outcomes for name in created) == [
            partitions.partition_name(partitions.month_add(far, i)) for i in range(3)
        ]
    finally:
        with connection.cursor() as cursor:
            for i in range(3):
                name = partitions.partition_name(partitions.month_add(far, i))
                cursor.execute(f'DROP TABLE IF EXISTS "{name}"')
