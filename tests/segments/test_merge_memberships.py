"""Merging contacts keeps one open membership per segment on the survivor (history kept)."""

from datetime import UTC, datetime

import pytest

from contacts.models import Contact
from contacts.services import merge_contacts
from segments.models import SegmentMembership
from segments.services import segment_create
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db

AT = datetime(2026, 6, 1, tzinfo=UTC)


def test_merge_moves_memberships_without_doubling_an_open_one():
    survivor, dup_a, dup_b = ContactFactory(), ContactFactory(), ContactFactory()
    shared = segment_create(
        name="Shared", rule={"type": "field", "field": "country", "op": "eq", "value": "FR"}
    )
    only_dups = segment_create(
        name="Only dups", rule={"type": "field", "field": "city", "op": "eq", "value": "Paris"}
    )
    for contact in (survivor, dup_a):
        SegmentMembership.objects.create(segment=shared, contact=contact, entered_at=AT)
    SegmentMembership.objects.create(segment=only_dups, contact=dup_a, entered_at=AT)
    SegmentMembership.objects.create(segment=only_dups, contact=dup_b, entered_at=AT)

    merge_contacts(survivor=survivor, duplicates=[dup_a, dup_b])

    assert list(Contact.objects.values_list("pk", flat=True)) == [survivor.pk]
    open_rows = SegmentMembership.objects.filter(contact=survivor, exited_at__isnull=True)
    assert sorted(open_rows.values_list("segment__name", flat=True)) == ["Only dups", "Shared"]
    # the closed duplicates' rows are history on the survivor, not lost
    assert SegmentMembership.objects.filter(contact=survivor).count() == 4
