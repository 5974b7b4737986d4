"""Create the monthly event partitions by hand (what the daily beat task does), or past ones."""

from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from contacts.services.partitions import (
    event_partitions_ahead,
    event_partitions_create,
    event_partitions_list,
    events_partitioned,
)


def _month(text: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y-%m").replace(tzinfo=UTC)
    except ValueError as exc:
        raise CommandError(f"--from expects a month as YYYY-MM, got {text!r}") from exc


class Command(BaseCommand):
    help = (
        "PostgreSQL: create the events partitions of this month and the next ones (the daily "
        "beat task 'contacts.tasks.event_partitions_ahead'); with --from, also every month "
        "since then (rows of those months waiting in the DEFAULT partition move in). "
        "Idempotent. Lists the partitions afterwards."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--ahead", type=int, default=None, help="months ahead (default: setting)"
        )
        parser.add_argument("--from", dest="first", default="", help="first month, YYYY-MM")

    def handle(self, *args, ahead: int | None, first: str, **options):
        if not events_partitioned():
            self.stdout.write(
                "Events are one table on this database (not partitioned): nothing to do."
            )
            return
        if ahead is not None and ahead < 0:
            raise CommandError("--ahead must be 0 or more")
        now = timezone.now()
        created = event_partitions_create(first=_month(first), last=now) if first else []
        created += event_partitions_ahead(now=now, months=ahead)
        self.stdout.write(
            f"Created {len(created)} partition(s){': ' if created else '.'}" + ", ".join(created)
        )
        for part in event_partitions_list():
            span = f"{part.start:%Y-%m-%d} → {part.end:%Y-%m-%d}" if part.start else "DEFAULT"
            self.stdout.write(f"  {part.name:<28} {span:<25} ~{part.rows_estimate:,} rows")
