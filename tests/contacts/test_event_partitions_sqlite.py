"""SQLite keeps one events table: partition upkeep does nothing there, retention deletes rows,
and a key repeated with another timestamp is still refused (the one-table unique key)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from contacts.models import Event
from contacts.services import events_record_bulk
from contacts.services.partitions import event_partitions_list, events_delete_before
from contacts.tasks import event_partitions_ahead
from tests.factories import ContactFactory, EventFactory

pytestmark = pytest.mark.django_db


def test_partition_upkeep_does_nothing_on_sqlite(capsys):
    assert connection.vendor == "sqlite"
    assert event_partitions_ahead() == []
    assert event_partitions_list() == []
    call_command("event_partitions")
    assert "not partitioned" in capsys.readouterr().out


def test_events_delete_before_deletes_old_rows_on_sqlite():
    now = timezone.now()
    old = EventFactory(occurred_at=now - timedelta(days=500))
    kept = EventFactory(occurred_at=now - timedelta(days=5))
    assert events_delete_before(cutoff=now - timedelta(days=365)) == 1
    assert list(Event.objects.values_list("pk", flat=True)) == [kept.pk]
    assert not Event.objects.filter(pk=old.pk).exists()


def test_same_key_with_another_timestamp_is_a_duplicate_on_sqlite():
    ContactFactory(external_id="C-1")
    now = timezone.now()

    def send(moment):
        item = {"external_id": "C-1", "type": "page_view", "timestamp": moment.isoformat()}
        return events_record_bulk(items=[{**item, "idempotency_key": "k"}], source="api")

    assert send(now).counts["created"] == 1
    assert send(now - timedelta(days=40)).counts["duplicate"] == 1
    assert Event.objects.count() == 1
