"""Signal receivers: forget a contact's ML data as soon as it is being erased."""

from __future__ import annotations

from django.dispatch import receiver

from contacts.signals import contact_erasing


@receiver(contact_erasing, dispatch_uid="segments_ml.forget_erased_contact")
def forget_erased_contact(sender, contact_id: int, **kwargs) -> None:
    """Delete the contact's feature snapshot and cluster assignments (right to erasure)."""
    from segments.ml.models import ClusterAssignment, ContactMlFeatures

    ContactMlFeatures.objects.filter(contact_id=contact_id).delete()
    ClusterAssignment.objects.filter(contact_id=contact_id).delete()
