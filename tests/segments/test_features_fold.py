"""The incremental feature refresh on PostgreSQL folds a row forward from its running totals
(``segments.features.features_fold_execute``): every value must be exactly what reading all the
contact's events gives, and rows the fold cannot trust are read in full instead."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.db.models import Max

from contacts.models import Event
from contacts.services import merge_contacts
from contacts.services.partitions import events_delete_before
from segments.features import FEATURE_COLUMNS, STATE_COLUMNS, features_sql_execute
from segments.models import ContactFeatures, FeatureWatermark
from segments.services import features_refresh, features_refresh_incremental
from tests.factories import ContactFactory, EventFactory
from tests.segments.conftest import AS_OF
from tests.segments.test_features import _shopper

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

COMPARED = ("contact_id", *(c for c in (*FEATURE_COLUMNS, *STATE_COLUMNS) if c != "computed_at"))
FLOATS = {"monetary_total", "avg_basket", "mean_interpurchase_days", "engagement_score", "spend"}


def _rows(ids) -> dict[int, dict]:
    return {
        row["contact_id"]: row
        for row in ContactFeatures.objects.filter(contact_id__in=ids).values(*COMPARED)
    }


def _direct(as_of, ids) -> dict[int, dict]:
    """The rows of ``ids`` computed from all their events, as of ``as_of`` (rolled back)."""
    with transaction.atomic():
        features_sql_execute(as_of=as_of, computed_at=as_of, contact_ids=list(ids))
        rows = _rows(ids)
        transaction.set_rollback(True)
    return rows


def _assert_same(folded: dict[int, dict], direct: dict[int, dict]) -> None:
    assert folded.keys() == direct.keys()
    for contact_id, row in direct.items():
        for column, expected in row.items():
            got = folded[contact_id][column]
            if column in FLOATS and expected is not None:
                assert got == pytest.approx(expected, rel=1e-9, abs=1e-9), (contact_id, column)
            else:
                assert got == expected, (contact_id, column)


def _watermark_at_the_newest_event() -> None:
    newest = Event.objects.aggregate(top=Max("id"))["top"]
    FeatureWatermark.objects.update_or_create(
        name="incremental", defaults={"last_event_id": newest}
    )


def _buyer():
    """Purchases just inside the 90- and 365-day windows of AS_OF, which leave them when the
    clock moves on two days."""
    contact = ContactFactory(created_at=AS_OF - timedelta(days=500))
    for days, amount, channel in [(89.5, 40, "web"), (364.5, 12.5, "store"), (20, 7, "app")]:
        EventFactory(
            contact=contact,
            type="purchase",
            occurred_at=AS_OF - timedelta(days=days),
            properties={"amount": amount},
            channel=channel,
        )
    return contact


def test_fold_gives_what_reading_every_event_gives():
    assert connection.vendor == "postgresql"
    shopper, buyer, idle = _shopper(), _buyer(), ContactFactory(created_at=AS_OF)
    assert features_refresh(as_of=AS_OF).contacts == 3
    _watermark_at_the_newest_event()

    later = AS_OF + timedelta(days=2)
    EventFactory(  # a new purchase, on another channel
        contact=shopper,
        type="purchase",
        occurred_at=AS_OF + timedelta(days=1),
        properties={"amount": 25.25},
        channel="sms",
    )
    EventFactory(  # an engagement event (weighted, decays)
        contact=idle, type="email_click", occurred_at=AS_OF + timedelta(hours=30), channel="email"
    )
    EventFactory(  # stored late: its time is before the row's as_of
        contact=buyer,
        type="purchase",
        occurred_at=AS_OF - timedelta(days=100),
        properties={"amount": 3},
        channel="web",
    )
    EventFactory(  # a purchase without a numeric amount
        contact=buyer,
        type="purchase",
        occurred_at=AS_OF + timedelta(hours=1),
        properties={"amount": "n/a"},
        channel="store",
    )
    second = features_refresh_incremental(now=later)

    assert (second.contacts, second.folded) == (3, 3)
    ids = [shopper.pk, buyer.pk, idle.pk]
    _assert_same(_rows(ids), _direct(later, ids))
    row = ContactFeatures.objects.get(contact=buyer)
    # The 89.5- and 364.5-day purchases left their windows; the late one is counted once.
    assert (row.frequency_90d, row.frequency_365d) == (2, 4)
    assert row.monetary_total == pytest.approx(62.5)
    assert row.purchases == 5 and row.amounts == 4


def test_each_refresh_folds_the_previous_fold():
    shopper = _shopper()
    features_refresh(as_of=AS_OF)
    now = AS_OF
    for step in range(1, 4):
        now += timedelta(hours=13)
        EventFactory(
            contact=shopper,
            type="purchase" if step % 2 else "email_open",
            occurred_at=now - timedelta(hours=1),
            properties={"amount": step * 1.1} if step % 2 else {},
            channel="email",
        )
        assert features_refresh_incremental(now=now).folded == 1
    _assert_same(_rows([shopper.pk]), _direct(now, [shopper.pk]))


def test_rows_the_fold_cannot_trust_are_read_in_full(settings):
    old, kept, merged_into, duplicate = _shopper(), _shopper(), _shopper(), _shopper()
    features_refresh(as_of=AS_OF - timedelta(days=8))  # old's row: more than 7 days old
    features_refresh(as_of=AS_OF, contact_ids=[kept.pk, merged_into.pk, duplicate.pk])
    _watermark_at_the_newest_event()
    merge_contacts(survivor=merged_into, duplicates=[duplicate])
    for contact in (old, kept, merged_into):
        EventFactory(contact=contact, type="email_click", occurred_at=AS_OF, channel="email")

    result = features_refresh_incremental(now=AS_OF + timedelta(hours=1))

    assert (result.contacts, result.folded) == (3, 1)  # kept's row only
    ids = [old.pk, kept.pk, merged_into.pk]
    _assert_same(_rows(ids), _direct(AS_OF + timedelta(hours=1), ids))
    # The survivor counts the duplicate's purchases (moved by the merge) too.
    assert ContactFeatures.objects.get(contact=merged_into).purchases == 8

    settings.SEGMENTS_ENGAGEMENT_WEIGHTS = {
        **settings.SEGMENTS_ENGAGEMENT_WEIGHTS,
        "email_click": 5.0,
    }
    EventFactory(contact=kept, type="email_click", occurred_at=AS_OF, channel="email")
    result = features_refresh_incremental(now=AS_OF + timedelta(hours=2))

    assert (result.contacts, result.folded) == (1, 0)  # computed with other weights
    _assert_same(_rows([kept.pk]), _direct(AS_OF + timedelta(hours=2), [kept.pk]))


def test_after_retention_deleted_events_rows_are_read_in_full(django_capture_on_commit_callbacks):
    shopper = _shopper()
    features_refresh(as_of=AS_OF)
    features_refresh_incremental(now=AS_OF)
    with django_capture_on_commit_callbacks(execute=True):
        assert events_delete_before(cutoff=AS_OF - timedelta(days=150)) == 1  # December's
    EventFactory(contact=shopper, type="email_open", occurred_at=AS_OF, channel="email")

    result = features_refresh_incremental(now=AS_OF + timedelta(hours=1))

    assert (result.contacts, result.folded) == (1, 0)
    row = ContactFeatures.objects.get(contact=shopper)
    assert row.frequency_365d == 3 and row.monetary_total == pytest.approx(150)
    _assert_same(_rows([shopper.pk]), _direct(AS_OF + timedelta(hours=1), [shopper.pk]))
