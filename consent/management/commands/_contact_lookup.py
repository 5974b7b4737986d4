"""Shared by export_contact and erase_contact: ID is an external ID or a numeric id."""

from django.core.management.base import CommandError

from contacts.models import Contact


def contact_from_argument(value: str) -> Contact:
    contact = Contact.objects.filter(external_id=value).first()
    if contact is None and value.isdigit():
        contact = Contact.objects.filter(pk=int(value)).first()
    if contact is None:
        raise CommandError(f"no contact with external ID or id {value!r}")
    return contact
