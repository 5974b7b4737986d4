"""``manage.py export_contact ID [--output FILE]`` — right of access / portability as JSON."""

import json

from django.core.management.base import BaseCommand

from consent.management.commands._contact_lookup import contact_from_argument
from consent.services import export_contact_data


class Command(BaseCommand):
    help = "Export everything held about a contact (ID = external ID or numeric id) as JSON."

    def add_arguments(self, parser):
        parser.add_argument("id")
        parser.add_argument("--output", help="write to this file instead of standard output")

    def handle(self, *args, id: str, output: str | None, **options):
        data = export_contact_data(contact=contact_from_argument(id))
        text = json.dumps(data, ensure_ascii=False, indent=2)
        if output:
            with open(output, "w", encoding="utf-8") as fh:
                fh.write(text + "\n")
            self.stderr.write(f"Written to {output}")
        else:
            self.stdout.write(text)
