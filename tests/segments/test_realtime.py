from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from contacts.signals import events_ingested
from segments.models import ContactFeatures, Segment, SegmentMembership
from segments.selectors import segment_members
from segments.services import contacts_reevaluate, segment_create, segments_compute
from tests.factories import ContactFactory, EventFactory
from tests.workers import celery_worker, wait_until

TWO_PURCHASES = {
    "type": "event",
    "event_type": "purchase",
    "op": "gte",
    "value": 2,
    "within_days": 30,
}


def _buy(contact, minutes_ago: int = 5):
    return EventFactory(
        contact=contact,
        type="purchase",
        occurred_at=timezone.now() - timedelta(minutes=minutes_ago),
        properties={"amount": 30},
    )


def test_new_event_enters_the_contact_and_segments_reading_it(
    backend, received, django_capture_on_commit_callbacks
):
    contact = ContactFactory(city="Paris")
    _buy(contact, 60)
    buyers = segment_create(name="Two purchases", rule=TWO_PURCHASES)
    fans = segment_create(
        name="Parisian buyers",
        rule={
            "all": [
                {"type": "segment", "segment": buyers.pk},
                {"type": "field", "field": "city", "op": "eq", "value": "Paris"},
            ]
        },
    )
    unrelated = segment_create(
        name="Parisians", rule={"type": "field", "field": "city", "op": "eq", "value": "Paris"}
    )
    segments_compute()
    SegmentMembership.objects.filter(segment=unrelated).delete()  # stale on purpose
    received.clear()

    _buy(contact)
    with django_capture_on_commit_callbacks(execute=True):
        diffs = contacts_reevaluate(contact_ids=[contact.pk], event_types={"purchase"})

    assert received == [("entered", buyers.pk, [contact.pk]), ("entered", fans.pk, [contact.pk])]
    assert [d.segment_id for d in diffs] == [buyers.pk, fans.pk]
    assert contact in segment_members(fans)
    assert contact not in segment_members(unrelated)  # purchases cannot change a city rule
    assert ContactFeatures.objects.get(contact=contact).frequency_90d == 2
    buyers.refresh_from_db()
    assert buyers.size == 1


def test_contact_exits_when_its_feature_no_longer_matches(
    backend, received, django_capture_on_commit_callbacks
):
    contact = ContactFactory()
    segment = segment_create(
        name="Never bought", rule={"type": "feature", "feature": "recency_days", "op": "is_not_set"}
    )
    contacts_reevaluate(contact_ids=[contact.pk], event_types={"page_view"})
    assert contact not in segment_members(segment)  # a page view cannot change recency
    contacts_reevaluate(contact_ids=[contact.pk], event_types=None)  # None: every segment
    assert contact in segment_members(segment)
    _buy(contact)
    with django_capture_on_commit_callbacks(execute=True):
        contacts_reevaluate(contact_ids=[contact.pk], event_types={"purchase"})
    assert received[-1] == ("exited", segment.pk, [contact.pk])
    assert contact not in segment_members(segment)


@pytest.mark.django_db(transaction=True)
def test_events_ingested_signal_reaches_a_real_worker(isolated_broker):
    contact = ContactFactory()
    segment = segment_create(name="Two purchases", rule=TWO_PURCHASES)
    _buy(contact, 30)
    _buy(contact, 10)
    with celery_worker(
        broker_url="filesystem://", broker_folder=isolated_broker, queues="segments"
    ):
        events_ingested.send(
            sender=None, contact_ids=[contact.pk], event_types={"purchase"}, source="test"
        )
        wait_until(
            lambda: SegmentMembership.objects.filter(segment=segment, contact=contact).exists(),
            timeout=90,
            what="the worker to enter the contact in the segment",
        )
    assert Segment.objects.get(pk=segment.pk).size == 1
    assert ContactFeatures.objects.get(contact=contact).frequency_90d == 2
