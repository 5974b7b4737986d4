from __future__ import annotations

import pytest
from django.db.models import Count

from ops.signals import demo_ready
from segments.demo import example_segments
from segments.models import Segment, SegmentMembership
from tests.factories import ContactFactory, EventFactory

pytestmark = pytest.mark.django_db


def test_demo_ready_creates_the_example_segments_once_and_computes_them():
    for _ in range(5):
        EventFactory(contact=ContactFactory(), type="purchase", properties={"amount": 20})
    demo_ready.send(sender=None)
    demo_ready.send(sender=None)
    names = [spec["name"] for spec in example_segments()]
    assert Segment.objects.filter(name__in=names).count() == 20 == len(names)
    assert Segment.objects.get(name="Lifecycle: Others").last_computed_at is not None
    # The lifecycle family is exclusive: every contact is in exactly one of its segments.
    per_contact = (
        SegmentMembership.objects.filter(segment__family__name="Lifecycle", exited_at__isnull=True)
        .values("contact")
        .annotate(n=Count("id"))
    )
    assert len(per_contact) == 5 and {row["n"] for row in per_contact} == {1}
