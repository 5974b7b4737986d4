"""Receivers of contacts' signals: keep assignments right when contacts are merged."""

from django.dispatch import receiver

from contacts.signals import contacts_merged
from experiments import services


@receiver(contacts_merged, dispatch_uid="experiments-assignments-merged")
def move_assignments_on_merge(sender, *, survivor_id: int, merged_ids: list[int], **kwargs):
    services.assignments_move_merged(survivor_id=survivor_id, merged_ids=merged_ids)
