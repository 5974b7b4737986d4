"""The ML feature snapshot computes each feature as the catalogue defines it, the same on
SQLite and PostgreSQL (whose refresh reads every event in one statement and swaps a fresh table
in): checked against values worked out by hand for a small fixed population."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from segments.ml.catalogue import FEATURE_NAMES
from segments.ml.extraction import features_snapshot_refresh
from segments.ml.models import ContactMlFeatures
from tests.factories import ContactFactory, EventFactory

NOW = datetime(2026, 6, 30, 12, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request, db) -> str:
    from django.db import connection

    if connection.vendor != request.param:
        pytest.skip(f"this copy runs in the {request.param} pass of `make test`")
    return request.param


def _event(contact, type_, when, **fields):
    return EventFactory(contact=contact, type=type_, occurred_at=when, **fields)


def test_snapshot_values_match_the_catalogue_definitions(backend):
    buyer = ContactFactory(created_at=NOW - timedelta(days=100), birth_year=1990)
    # Saturday 27 June (weekend, last five days of June), Wednesday 3 June, Thursday 28 May (last five days of May).
    _event(
        buyer,
        "purchase",
        datetime(2026, 6, 27, 10, tzinfo=UTC),
        properties={"amount": 120},
        device="mobile",
        channel="web",
    )
    _event(
        buyer,
        "purchase",
        datetime(2026, 6, 3, 10, tzinfo=UTC),
        properties={"amount": 30.5},
        device="desktop",
        channel="web",
    )
    _event(
        buyer,
        "purchase",
        datetime(2026, 5, 28, 10, tzinfo=UTC),
        properties={"amount": "n/a"},
        device="desktop",
        channel="app",
    )
    _event(buyer, "email_open", NOW - timedelta(days=40), device="mobile", channel="email")
    _event(buyer, "page_view", NOW - timedelta(days=1), device="tablet", channel="web")
    _event(buyer, "page_view", NOW + timedelta(days=2), device="tablet", channel="web")  # later
    idle = ContactFactory(created_at=NOW - timedelta(days=10), birth_year=None)
    ContactFactory(created_at=NOW + timedelta(days=1))  # signs up after the snapshot

    result = features_snapshot_refresh(now=NOW)

    assert result.contacts == 2
    b = ContactMlFeatures.objects.get(contact=buyer)
    assert (b.events_total, b.purchases) == (5, 3)
    assert b.spend_total == pytest.approx(150.5)
    assert b.avg_basket == pytest.approx(75.25)  # the two numeric amounts
    assert b.days_since_last_event == pytest.approx(1)
    assert b.days_since_first_event == pytest.approx(40)
    assert b.days_since_last_purchase == pytest.approx(3 + 2 / 24)
    assert b.days_since_signup == pytest.approx(100)
    assert b.share_purchase == pytest.approx(3 / 5)
    assert (b.share_email_open, b.share_page_view, b.share_email_click) == pytest.approx(
        (1 / 5, 1 / 5, 0)
    )
    assert (b.share_desktop, b.share_mobile, b.share_tablet) == pytest.approx((2 / 5, 2 / 5, 1 / 5))
    assert (b.share_channel_email, b.share_channel_web, b.share_channel_app) == pytest.approx(
        (1 / 5, 3 / 5, 1 / 5)
    )
    assert b.purchase_weekend_share == pytest.approx(1 / 3)
    assert b.purchase_month_end_share == pytest.approx(2 / 3)  # 27 June and 28 May
    assert b.age == 36
    i = ContactMlFeatures.objects.get(contact=idle)
    assert (i.events_total, i.purchases, i.spend_total) == (0, 0, 0)
    assert i.avg_basket is None and i.share_purchase is None and i.age is None
    assert i.days_since_last_event is None and i.purchase_weekend_share is None


def test_a_second_refresh_rewrites_the_snapshot_and_counts_who_left(backend):
    from consent.services.ledger import consent_record

    stays, leaves = (
        ContactFactory(created_at=NOW - timedelta(days=5)),
        ContactFactory(created_at=NOW - timedelta(days=5)),
    )
    _event(stays, "page_view", NOW - timedelta(days=2))
    first = features_snapshot_refresh(now=NOW)
    consent_record(
        contact=leaves.pk,
        purpose="profiling",
        channel="any",
        granted=False,
        source="preference_centre",
        at=NOW,
    )
    _event(stays, "purchase", NOW - timedelta(days=1), properties={"amount": 10})

    second = features_snapshot_refresh(now=NOW)

    assert (first.contacts, second.contacts, second.removed) == (2, 1, 1)
    rows = list(ContactMlFeatures.objects.values_list("contact_id", "events_total", "purchases"))
    assert rows == [(stays.pk, 2, 1)]
    assert set(FEATURE_NAMES) <= {f.name for f in ContactMlFeatures._meta.get_fields()}
