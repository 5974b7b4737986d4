"""Signal receivers: forget a contact's ML data as soon as it is being erased; recount the
survivor of a merge."""

from __future__ import annotations

from django.dispatch import receiver

from contacts.signals import contact_erasing, contacts_merged


@receiver(contact_erasing, dispatch_uid="segments_ml.forget_erased_contact")
def forget_erased_contact(sender, contact_id: int, **kwargs) -> None:
    """Delete the contact's counters, feature snapshot and cluster assignments (right to
    erasure)."""
    from segments.ml.models import ClusterAssignment, ContactMlCounters, ContactMlFeatures

    ContactMlCounters.objects.filter(contact_id=contact_id).delete()
    ContactMlFeatures.objects.filter(contact_id=contact_id).delete()
    ClusterAssignment.objects.filter(contact_id=contact_id).delete()


@receiver(contacts_merged, dispatch_uid="segments_ml.recount_merged_contacts")
def recount_merged_contacts(sender, *, survivor_id: int, merged_ids: list[int], **kwargs) -> None:
    """Inside the merge's transaction, once the events moved: the survivor's counters are
    recounted from its events, the duplicates' dropped (their events are the survivor's now)."""
    from segments.ml.extraction import counters_recount

    counters_recount(contact_id=survivor_id, forget=list(merged_ids))
