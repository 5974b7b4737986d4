from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command

from segments.features import FEATURE_COLUMNS
from segments.models import ContactFeatures
from segments.services import features_refresh, features_refresh_incremental
from tests.factories import ContactFactory, EventFactory
from tests.segments.conftest import AS_OF


def _day(month: int, day: int, year: int = 2026) -> datetime:
    return datetime(year, month, day, 12, tzinfo=UTC)


def _shopper():
    contact = ContactFactory(created_at=datetime(2026, 1, 1, tzinfo=UTC))
    for when, amount in [
        (_day(6, 20), 100),
        (_day(5, 21), 50),
        (_day(12, 22, 2025), 30),
        (_day(3, 2), None),
    ]:
        properties = {"category": "shoes"} if amount is None else {"amount": amount}
        EventFactory(
            contact=contact, type="purchase", occurred_at=when, properties=properties, channel="web"
        )
    EventFactory(
        contact=contact, type="email_open", occurred_at=AS_OF - timedelta(days=30), channel="email"
    )
    EventFactory(contact=contact, type="email_click", occurred_at=AS_OF, channel="email")
    EventFactory(
        contact=contact, type="page_view", occurred_at=AS_OF + timedelta(days=1), channel="email"
    )
    return contact


def test_full_refresh_computes_every_feature_as_of_a_date(backend):
    shopper = _shopper()
    idle = ContactFactory(created_at=datetime(2026, 6, 1, tzinfo=UTC))
    future = ContactFactory(created_at=AS_OF + timedelta(days=3))

    result = features_refresh(as_of=AS_OF)

    assert result.contacts == 2
    f = ContactFeatures.objects.get(contact=shopper)
    assert f.recency_days == 10
    assert (f.frequency_90d, f.frequency_365d) == (2, 4)
    assert f.monetary_total == pytest.approx(180)
    assert f.avg_basket == pytest.approx(60)
    assert f.mean_interpurchase_days == pytest.approx(60)
    # email_click today (3 × 1) + email_open one half-life ago (1 × 0.5); later page_view ignored.
    assert f.engagement_score == pytest.approx(3.5, rel=1e-6)
    assert f.last_activity_at == AS_OF
    assert f.preferred_channel == "web"
    assert f.days_since_signup == 180
    assert f.as_of == AS_OF
    g = ContactFeatures.objects.get(contact=idle)
    assert g.recency_days is None and g.avg_basket is None and g.mean_interpurchase_days is None
    assert (g.frequency_365d, g.monetary_total, g.engagement_score) == (0, 0, 0)
    assert g.preferred_channel == "" and g.days_since_signup == 29
    assert not ContactFeatures.objects.filter(contact=future).exists()


def test_refresh_as_of_an_earlier_date_ignores_later_events_and_contacts(backend):
    shopper = _shopper()
    late = ContactFactory(created_at=datetime(2026, 5, 1, tzinfo=UTC))
    features_refresh(as_of=AS_OF)
    features_refresh(as_of=_day(4, 1))
    f = ContactFeatures.objects.get(contact=shopper)
    assert f.frequency_365d == 2  # the December and March purchases only
    assert f.recency_days == 30
    assert f.monetary_total == pytest.approx(30)
    assert not ContactFeatures.objects.filter(contact=late).exists()


def test_refresh_of_named_contacts_leaves_the_others_alone(backend):
    shopper = _shopper()
    other = _shopper()
    features_refresh(as_of=AS_OF, contact_ids=[shopper.pk])
    assert ContactFeatures.objects.filter(contact=shopper).exists()
    assert not ContactFeatures.objects.filter(contact=other).exists()


def test_refresh_of_several_named_contacts_gives_the_full_refreshs_values(backend):
    """The restricted statement (incremental refresh, real-time batches; on PostgreSQL it runs
    without JIT) writes exactly the rows a full refresh writes."""
    shoppers = [_shopper() for _ in range(3)]
    idle = ContactFactory(created_at=datetime(2026, 6, 1, tzinfo=UTC))
    columns = ["contact_id", *(c for c in FEATURE_COLUMNS if c != "computed_at")]

    features_refresh(as_of=AS_OF)
    full = sorted(ContactFeatures.objects.values_list(*columns))
    ContactFeatures.objects.all().delete()
    result = features_refresh(as_of=AS_OF, contact_ids=[idle.pk, *(s.pk for s in shoppers)])

    assert result.contacts == 4
    assert sorted(ContactFeatures.objects.values_list(*columns)) == full


def test_incremental_refresh_touches_only_contacts_with_new_events(backend):
    a, b = _shopper(), _shopper()
    first = features_refresh_incremental(now=AS_OF)
    assert first.contacts == 2
    b_computed = ContactFeatures.objects.get(contact=b).computed_at

    EventFactory(
        contact=a,
        type="purchase",
        occurred_at=AS_OF - timedelta(hours=1),
        properties={"amount": 20},
    )
    second = features_refresh_incremental(now=AS_OF)

    assert second.contacts == 1
    assert ContactFeatures.objects.get(contact=a).frequency_90d == 3
    assert ContactFeatures.objects.get(contact=b).computed_at == b_computed
    assert features_refresh_incremental(now=AS_OF).contacts == 0


def test_refresh_features_command_accepts_as_of_and_contacts(backend, capsys):
    shopper = _shopper()
    call_command(
        "refresh_features", "--as-of", "2026-06-30T12:00:00+00:00", "--contacts", str(shopper.pk)
    )
    assert "Features of 1 contacts refreshed as of 2026-06-30" in capsys.readouterr().out
    assert ContactFeatures.objects.get(contact=shopper).recency_days == 10


def test_refresh_features_command_rejects_a_bad_date(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="not an ISO 8601 date"):
        call_command("refresh_features", "--as-of", "30/06/2026")


@pytest.mark.postgres
def test_full_refresh_rebuild_keeps_the_table_keyed_to_contacts(db):
    from django.db import connection, transaction

    def constraints() -> dict:
        with connection.cursor() as cursor:
            found = connection.introspection.get_constraints(cursor, "segments_contactfeatures")
        return {
            name: (c["columns"], c["primary_key"], c["foreign_key"], c["unique"])
            for name, c in found.items()
        }

    def columns() -> list:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
                "pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a LEFT JOIN pg_attrdef d "
                "ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
                "WHERE a.attrelid = 'segments_contactfeatures'::regclass AND a.attnum > 0 "
                "AND NOT a.attisdropped ORDER BY a.attnum"
            )
            return cursor.fetchall()

    before, columns_before = constraints(), columns()
    first, second = ContactFactory(), ContactFactory()
    ContactFeatures.objects.create(
        contact=first, days_since_signup=0, computed_at=AS_OF, as_of=AS_OF
    )
    # A full refresh in a transaction that already wrote feature rows (pending deferred checks).
    with transaction.atomic():
        features_refresh(contact_ids=[second.pk], as_of=AS_OF)
        result = features_refresh(as_of=AS_OF)

    assert result.contacts == 2
    assert set(ContactFeatures.objects.values_list("contact_id", flat=True)) == {
        first.pk,
        second.pk,
    }
    assert constraints() == before
    assert columns() == columns_before  # same names, types, NOT NULLs and defaults, in order
    assert not any(foreign_key for *_, foreign_key, _unique in constraints().values())
    second.delete()
    assert list(ContactFeatures.objects.values_list("contact_id", flat=True)) == [first.pk]


def test_a_row_left_by_a_contact_deleted_behind_djangos_back_is_ignored_then_removed(backend):
    """The feature table has no database-level foreign key (it is rebuilt and swapped in like a
    materialised view): a row whose contact vanished — deleted by raw SQL, or while a full
    refresh was running — is never read (rules start from contacts) and the next full refresh
    drops it."""
    from segments.services import segment_create, segments_compute

    shopper = _shopper()
    features_refresh(as_of=AS_OF)
    gone = shopper.pk + 10_000
    ContactFeatures.objects.create(
        contact_id=gone, frequency_90d=9, days_since_signup=0, computed_at=AS_OF, as_of=AS_OF
    )
    segment = segment_create(
        name="Bought recently",
        rule={"type": "feature", "feature": "frequency_90d", "op": "gte", "value": 1},
    )
    segments_compute(segment_ids=[segment.pk], now=AS_OF)
    segment.refresh_from_db()
    assert segment.size == 1
    assert list(segment.memberships.values_list("contact_id", flat=True)) == [shopper.pk]

    features_refresh(as_of=AS_OF)
    assert list(ContactFeatures.objects.values_list("contact_id", flat=True)) == [shopper.pk]
