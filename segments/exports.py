"""The ``memberships`` section of a contact's data export (right of access)."""

from __future__ import annotations

from contacts.models import Contact
from segments.models import SegmentMembership


def memberships_export(contact: Contact) -> list[dict]:
    """Every segment stay of ``contact`` (history included), oldest first."""
    return [
        {
            "segment": row["segment__name"],
            "entered_at": row["entered_at"],
            "exited_at": row["exited_at"],
        }
        for row in SegmentMembership.objects.filter(contact=contact)
        .order_by("entered_at", "pk")
        .values("segment__name", "entered_at", "exited_at")
    ]
