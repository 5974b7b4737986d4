"""``manage.py retention_purge [--apply]`` — dry run by default; prints the purge report."""

import json

from django.core.management.base import BaseCommand
from django.utils import timezone

from consent.services import retention_purge


class Command(BaseCommand):
    help = "Purge events and inactive contacts past the retention periods (dry run unless --apply)."

    def add_arguments(self, parser):
        parser.add_argument("--apply", action="store_true", help="really delete/erase")

    def handle(self, *args, apply: bool, **options):
        purge = retention_purge(now=timezone.now(), dry_run=not apply)
        verb = "Deleted" if apply else "Would delete"
        self.stdout.write(
            f"{verb} {purge.events_deleted} events older than {purge.events_cutoff:%Y-%m-%d} and "
            f"{'erased' if apply else 'erase'} {purge.contacts_erased} contacts inactive since "
            f"{purge.contacts_cutoff:%Y-%m-%d}."
        )
        self.stdout.write(json.dumps(purge.report, indent=2))
