"""Merging duplicate contacts into a survivor, and the scheduled duplicate report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Count
from django.utils.translation import gettext_lazy as _

from contacts.models import Contact, ContactMerge, DuplicateReport, Event, PushSubscription
from contacts.selectors import duplicate_groups
from contacts.signals import contacts_merged, events_ingested

FILLABLE_FIELDS = ("email", "phone", "first_name", "last_name", "country", "city", "birth_year")


class MergeError(ValueError):
    """The merge was refused; ``str(exc)`` says why (translated)."""


@dataclass(frozen=True)
class MergePreview:
    survivor: Contact
    duplicates: list[Contact]
    fields_filled: dict[str, str]  # field → external_id of the duplicate it comes from
    events: dict[int, int]  # contact id → events it holds
    push_subscriptions: dict[int, int]

    @property
    def events_to_move(self) -> int:
        return sum(n for pk, n in self.events.items() if pk != self.survivor.pk)


def merge_preview(*, survivor: Contact, duplicates: Sequence[Contact]) -> MergePreview:
    """What :func:`merge_contacts` would do (no writes): fields filled, rows moved."""
    duplicates = sorted(
        (d for d in duplicates if d.pk != survivor.pk), key=lambda c: (c.created_at, c.pk)
    )
    ids = [survivor.pk, *[d.pk for d in duplicates]]
    filled: dict[str, str] = {}
    for name in FILLABLE_FIELDS:
        if getattr(survivor, name) in ("", None):
            donor = next((d for d in duplicates if getattr(d, name) not in ("", None)), None)
            if donor is not None:
                filled[name] = donor.external_id
    events = dict(
        Event.objects.filter(contact_id__in=ids)
        .values("contact_id")
        .annotate(n=Count("id"))
        .values_list("contact_id", "n")
    )
    pushes = dict(
        PushSubscription.objects.filter(contact_id__in=ids)
        .values("contact_id")
        .annotate(n=Count("id"))
        .values_list("contact_id", "n")
    )
    return MergePreview(survivor, duplicates, filled, events, pushes)


def merge_contacts(
    *, survivor: Contact, duplicates: Sequence[Contact], actor=None, actor_label: str = ""
) -> ContactMerge:
    """Fold ``duplicates`` into ``survivor`` in one transaction and delete them.

    Moves events and push subscriptions, fills the survivor's empty fields from the oldest
    duplicate that has them, merges attributes (the survivor's values win), then sends
    ``contacts_merged`` *inside* the transaction so other apps move their rows (consent,
    memberships, outbox) before the duplicates are deleted — all or nothing. Writes a
    :class:`ContactMerge` audit row; sends ``events_ingested`` for the survivor after commit.
    """
    duplicate_ids = sorted({d.pk for d in duplicates} - {survivor.pk})
    if not duplicate_ids:
        raise MergeError(_("Choose at least one contact other than the survivor."))
    with transaction.atomic():
        locked = Contact.objects.select_for_update().in_bulk([survivor.pk, *duplicate_ids])
        if survivor.pk not in locked or len(locked) != len(duplicate_ids) + 1:
            raise MergeError(_("A contact of this merge no longer exists."))
        survivor = locked[survivor.pk]
        dups = [locked[pk] for pk in duplicate_ids]
        preview = merge_preview(survivor=survivor, duplicates=dups)
        by_external_id = {d.external_id: d for d in dups}
        for name, donor_external_id in preview.fields_filled.items():
            setattr(survivor, name, getattr(by_external_id[donor_external_id], name))
        attributes: dict = {}
        for dup in reversed(preview.duplicates):  # newest first, so older values win among dups
            attributes.update(dup.attributes or {})
        survivor.attributes = {**attributes, **(survivor.attributes or {})}
        survivor.is_anonymous = survivor.is_anonymous and all(d.is_anonymous for d in dups)
        moved_types = set(
            Event.objects.filter(contact_id__in=duplicate_ids)
            .values_list("type", flat=True)
            .distinct()
        )
        moved_events = Event.objects.filter(contact_id__in=duplicate_ids).update(contact=survivor)
        moved_push = PushSubscription.objects.filter(contact_id__in=duplicate_ids).update(
            contact=survivor
        )
        contacts_merged.send(sender=Contact, survivor_id=survivor.pk, merged_ids=duplicate_ids)
        merge = ContactMerge.objects.create(
            survivor=survivor,
            survivor_external_id=survivor.external_id,
            merged_ids=duplicate_ids,
            merged_external_ids=[d.external_id for d in preview.duplicates],
            fields_filled=preview.fields_filled,
            moved_events=moved_events,
            moved_push_subscriptions=moved_push,
            actor=actor if getattr(actor, "pk", None) else None,
            actor_label=actor_label or (str(actor) if actor is not None else ""),
        )
        Contact.objects.filter(pk__in=duplicate_ids).delete()
        survivor.save()
        if moved_events:
            transaction.on_commit(
                lambda: events_ingested.send(
                    sender=Event,
                    contact_ids=[survivor.pk],
                    event_types=moved_types,
                    source="merge",
                )
            )
    return merge


def duplicate_report_create(*, limit: int = 1000) -> DuplicateReport:
    """Scan for probable duplicates (same email, phone, or external ID up to case/spaces) and
    store the groups found (at most ``limit``) with their counts per key."""
    groups = duplicate_groups(limit=limit)
    counts = {key: 0 for key in ("email", "phone", "external_id")}
    involved: set[int] = set()
    for group in groups:
        counts[group["key"]] += 1
        involved.update(group["contact_ids"])
    return DuplicateReport.objects.create(
        group_counts=counts, contacts_involved=len(involved), groups=groups
    )
