"""The ML feature snapshot as of now is derived from per-contact counters that each refresh
brings up to date by reading only the events stored since the last one. Whatever happened in
between (new events of every kind, a merge, an erasure, a stale build), the snapshot must be the
one computed from every event in the statement — the path a snapshot as of a past date takes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from contacts.models import Contact, Event
from contacts.services.merge import merge_contacts
from segments.ml import extraction
from segments.ml.catalogue import FEATURE_NAMES
from segments.ml.extraction import features_snapshot_refresh
from segments.ml.models import ContactMlCounters, ContactMlFeatures
from segments.models import FeatureWatermark


def _rows() -> dict[int, tuple]:
    return {
        row[0]: row[1:]
        for row in ContactMlFeatures.objects.values_list("contact_id", *FEATURE_NAMES)
    }


def _direct(now: datetime, monkeypatch) -> dict[int, tuple]:
    """The snapshot computed from every event in the statement (the as-of-a-past-date path)."""
    with monkeypatch.context() as m:
        m.setattr(extraction, "PRESENT_TOLERANCE", timedelta(minutes=-10))
        assert features_snapshot_refresh(now=now).counters == "none"
    return _rows()


def _assert_same(left: dict[int, tuple], right: dict[int, tuple]) -> None:
    assert left.keys() == right.keys()
    for contact_id, values in left.items():
        expected = right[contact_id]
        for name, a, b in zip(FEATURE_NAMES, values, expected, strict=True):
            assert (a is None) == (b is None), (contact_id, name, a, b)
            if a is not None:
                assert a == pytest.approx(b, rel=1e-9, abs=1e-9), (contact_id, name)


def _add_events(contact_ids: list[int], tag: str) -> int:
    """Events of every kind the counters keep: purchases with and without a numeric amount, on
    a weekend and at a month's end, earlier than anything stored and recent, on each device and
    channel."""
    moments = [
        datetime(2019, 1, 5, 10, tzinfo=UTC),  # a Saturday, earlier than the demo's history
        datetime(2026, 1, 29, 9, tzinfo=UTC),  # the last days of a month
        timezone.now() - timedelta(hours=3),
    ]
    kinds = [
        ("purchase", {"amount": 19.5}, "desktop", "web"),
        ("purchase", {"amount": "n/a"}, "mobile", "app"),
        ("page_view", {}, "tablet", "web"),
        ("email_open", {}, "", "email"),
        ("app_open", {}, "mobile", "app"),
        ("cart_updated", {}, "desktop", "web"),
    ]
    events = [
        Event(
            contact_id=cid,
            type=kind,
            properties=props,
            device=device,
            channel=channel,
            occurred_at=moments[(cid + k) % len(moments)],
            source="test",
            idempotency_key=f"{tag}-{cid}-{k}",
        )
        for cid in contact_ids
        for k, (kind, props, device, channel) in enumerate(kinds)
        if (cid + k) % 3
    ]
    Event.objects.bulk_create(events)
    return len(events)


def _fold_matches_a_full_computation(seed_population, monkeypatch) -> None:
    seed_population(240, 8, 2)
    now = timezone.now() + timedelta(minutes=1)
    first = features_snapshot_refresh(now=now)
    assert first.counters == "rebuilt"
    assert first.events_read == Event.objects.count()

    ids = list(Contact.objects.order_by("pk").values_list("pk", flat=True))
    quiet = Contact.objects.create(  # no events at the first build
        email="new-after-the-build@example.com", created_at=timezone.now() - timedelta(days=1)
    )
    added = _add_events([*ids[::4], quiet.pk], tag="fold")
    folded = features_snapshot_refresh(now=now)
    assert (folded.counters, folded.events_read) == ("folded", added)
    from_counters = _rows()
    assert from_counters[quiet.pk][FEATURE_NAMES.index("events_total")] > 0

    _assert_same(from_counters, _direct(now, monkeypatch))
    assert features_snapshot_refresh(now=now).counters == "current"
    _assert_same(_rows(), from_counters)


@pytest.mark.django_db
def test_folded_counters_give_the_snapshot_of_every_event(seed_population, monkeypatch):
    _fold_matches_a_full_computation(seed_population, monkeypatch)


@pytest.mark.postgres
@pytest.mark.django_db
def test_folded_counters_give_the_snapshot_of_every_event_on_postgresql(
    seed_population, monkeypatch
):
    _fold_matches_a_full_computation(seed_population, monkeypatch)


def _merge_and_erasure_keep_counters_exact(seed_population, monkeypatch) -> None:
    seed_population(150, 6, 4)
    now = timezone.now() + timedelta(minutes=1)
    features_snapshot_refresh(now=now)
    with_events = list(
        Contact.objects.filter(events__isnull=False).distinct().order_by("pk")[:3]
    )
    survivor, duplicate, erased = with_events
    merge_contacts(survivor=survivor, duplicates=[duplicate])
    assert not ContactMlCounters.objects.filter(contact_id=duplicate.pk).exists()
    from consent.services.rights import erase_contact

    erase_contact(contact=erased, actor="test")
    assert not ContactMlCounters.objects.filter(contact_id=erased.pk).exists()
    _add_events([survivor.pk], tag="after-merge")  # folded on top of the recount

    assert features_snapshot_refresh(now=now).counters == "folded"
    _assert_same(_rows(), _direct(now, monkeypatch))


@pytest.mark.django_db
def test_a_merge_recounts_the_survivor_and_an_erasure_forgets_the_contact(
    seed_population, monkeypatch
):
    _merge_and_erasure_keep_counters_exact(seed_population, monkeypatch)


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_merge_recounts_the_survivor_on_postgresql(seed_population, monkeypatch):
    _merge_and_erasure_keep_counters_exact(seed_population, monkeypatch)


@pytest.mark.django_db
def test_stale_counters_are_rebuilt_and_forget_removed_events(seed_population, monkeypatch):
    seed_population(120, 6, 5)
    now = timezone.now() + timedelta(minutes=1)
    features_snapshot_refresh(now=now)
    cutoff = Event.objects.order_by("occurred_at").values_list("occurred_at", flat=True)[200]
    Event.objects.filter(occurred_at__lt=cutoff).delete()  # retention removed old history

    FeatureWatermark.objects.filter(name=extraction._watermark_name()).update(
        rebuilt_at=timezone.now() - timedelta(hours=25)
    )
    rebuilt = features_snapshot_refresh(now=now)
    assert rebuilt.counters == "rebuilt" and rebuilt.events_read == Event.objects.count()
    _assert_same(_rows(), _direct(now, monkeypatch))


@pytest.mark.django_db
def test_changing_the_purchase_event_type_rebuilds_the_counters(
    seed_population, settings, monkeypatch
):
    seed_population(80, 6, 6)
    now = timezone.now() + timedelta(minutes=1)
    features_snapshot_refresh(now=now)
    settings.CIBLE_PURCHASE_EVENT_TYPE = "cart_updated"
    assert features_snapshot_refresh(now=now).counters == "rebuilt"
    _assert_same(_rows(), _direct(now, monkeypatch))
