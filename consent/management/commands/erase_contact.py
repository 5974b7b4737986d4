"""``manage.py erase_contact ID --actor NAME`` — right to erasure (Art. 17)."""

import json

from django.core.management.base import BaseCommand

from consent.management.commands._contact_lookup import contact_from_argument
from consent.services import erase_contact


class Command(BaseCommand):
    help = (
        "Erase a contact (ID = external ID or numeric id): anonymise the profile, strip personal "
        "data from events and messages, keep aggregate counts, and block re-import."
    )

    def add_arguments(self, parser):
        parser.add_argument("id")
        parser.add_argument("--actor", default="manage.py erase_contact", help="who asked (logged)")

    def handle(self, *args, id: str, actor: str, **options):
        report = erase_contact(contact=contact_from_argument(id), actor=actor)
        self.stdout.write(json.dumps(report.as_dict(), indent=2))
        self.stdout.write(self.style.SUCCESS(f"Contact #{report.contact_id} erased."))
