"""``run_campaign ID [--dry-run] [--deliver]``: launch a campaign run from the command line."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from activation import services
from activation.models import Campaign, SkipReason


class Command(BaseCommand):
    help = "Launch a run of campaign ID (or only report who would receive it with --dry-run)."

    def add_arguments(self, parser):
        parser.add_argument("campaign_id", type=int)
        parser.add_argument(
            "--dry-run", action="store_true", help="Count eligible contacts; send nothing."
        )
        parser.add_argument(
            "--deliver",
            action="store_true",
            help="Deliver in this process until nothing is due (default: enqueue worker tasks).",
        )

    def handle(self, *args, campaign_id: int, dry_run: bool, deliver: bool, **options):
        campaign = Campaign.objects.filter(pk=campaign_id).first()
        if campaign is None:
            raise CommandError(f"campaign {campaign_id} does not exist")
        run = services.campaign_run_launch(campaign=campaign, now=timezone.now(), dry_run=dry_run)
        labels = dict(SkipReason.choices)
        self.stdout.write(f"Run #{run.pk} of {campaign.name!r}: audience {run.audience_size}")
        if dry_run:
            self.stdout.write(f"  would receive: {run.counts['eligible']}")
        for reason, count in run.counts.get("by_reason", {}).items():
            self.stdout.write(f"  {labels.get(reason, reason)}: {count}")
            for sample in run.report.get("samples", {}).get(reason, []):
                self.stdout.write(f"    e.g. {sample['external_id']}")
        if dry_run:
            return
        if deliver:
            stats, _next = services.outbox_deliver_pending(
                channel=campaign.channel, budget_seconds=3600
            )
            self.stdout.write(
                f"  sent {stats.sent}, retrying {stats.retried}, failed {stats.failed}, "
                f"skipped at send time {stats.skipped}"
            )
        else:
            services.outbox_delivery_start(channel=campaign.channel)
            self.stdout.write("  delivery tasks enqueued on the 'send' queue")
