"""``manage.py refresh_features [--as-of ISO_DATE] [--contacts ID ...] [--incremental]``."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from segments.rules.operators import parse_moment


class Command(BaseCommand):
    help = (
        "Recompute contact features (recency, frequency, monetary, engagement…) in one SQL "
        "statement, as of a date (default now), for all or some contacts; or incrementally."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--as-of", help="reference date, ISO 8601 (default: now)")
        parser.add_argument("--contacts", nargs="+", type=int, help="contact ids (default: all)")
        parser.add_argument(
            "--incremental",
            action="store_true",
            help="only contacts with events stored since the last incremental run",
        )

    def handle(self, *args, as_of=None, contacts=None, incremental=False, **options):
        from segments.services import features_refresh, features_refresh_incremental

        moment = None
        if as_of:
            moment = parse_moment(as_of)
            if moment is None:
                raise CommandError(f"--as-of {as_of!r} is not an ISO 8601 date (YYYY-MM-DD).")
        if incremental:
            if moment or contacts:
                raise CommandError("--incremental cannot be combined with --as-of or --contacts.")
            result = features_refresh_incremental()
        else:
            result = features_refresh(as_of=moment, contact_ids=contacts)
        self.stdout.write(
            self.style.SUCCESS(
                f"Features of {result.contacts:,} contacts refreshed as of "
                f"{result.as_of:%Y-%m-%d %H:%M:%S} UTC in {result.seconds:.2f} s."
            )
        )
