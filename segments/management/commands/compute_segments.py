"""``manage.py compute_segments [--segment ID ...]``."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = "Recompute segment memberships (entered/exited diff) in dependency order."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--segment", nargs="+", type=int, help="segment ids (default: all)")

    def handle(self, *args, segment=None, **options):
        from django.utils import timezone

        from segments.models import Segment, SegmentComputation
        from segments.services import segments_compute

        if segment:
            missing = set(segment) - set(
                Segment.objects.filter(pk__in=segment).values_list("pk", flat=True)
            )
            if missing:
                raise CommandError(f"unknown segment id(s): {', '.join(map(str, sorted(missing)))}")
        started = timezone.now()
        rows = segments_compute(segment_ids=segment, trigger=SegmentComputation.Trigger.MANUAL)
        names = dict(Segment.objects.values_list("pk", "name"))
        for row in rows:
            self.stdout.write(
                f"{names[row.segment_id]}: {row.size:,} contacts "
                f"(+{row.entered:,} / -{row.exited:,}) in {row.duration_ms} ms"
            )
        self.stdout.write(self.style.SUCCESS(f"{len(rows)} segment(s) computed."))
        failed = Segment.objects.filter(compute_failed_at__gte=started).order_by("pk")
        for name, error in failed.values_list("name", "compute_error"):
            self.stderr.write(f"{name}: not computed — {error}")
        if failed:
            raise CommandError(f"{len(failed)} segment(s) could not be computed (see above).")
