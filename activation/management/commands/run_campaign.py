"""``run_campaign ID [--dry-run] [--deliver]``: launch a campaign run from the command line."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from activation import services
from activation.journeys.services import campaign_launch
from activation.models import Campaign, SkipReason
from activation.selectors import run_channels


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
        if dry_run:
            run = services.campaign_run_launch(campaign=campaign, now=timezone.now(), dry_run=True)
        else:
            # The same launch as the admin's (state, template, approval checked); refused →
            # the reason, nothing written.
            try:
                occurrence = campaign_launch(campaign=campaign, now=timezone.now())
            except ValidationError as exc:
                raise CommandError("; ".join(exc.messages)) from exc
            run = occurrence.run
            if run is None:
                self.stdout.write(
                    f"{campaign.name!r}: {occurrence.enrolled} contacts enrolled in its workflow"
                )
                return
        labels = dict(SkipReason.choices)
        self.stdout.write(f"Run #{run.pk} of {campaign.name!r}: audience {run.audience_size}")
        if dry_run:
            self.stdout.write(f"  would receive: {run.counts['eligible']}")
            for where, names in run.report.get("unknown_variables", {}).items():
                self.stdout.write(
                    f"  unknown variables in the template ({where}), rendered blank: "
                    + ", ".join(names)
                )
        for reason, count in run.counts.get("by_reason", {}).items():
            self.stdout.write(f"  {labels.get(reason, reason)}: {count}")
            for sample in run.report.get("samples", {}).get(reason, []):
                self.stdout.write(f"    e.g. {sample['external_id']}")
        if dry_run:
            return
        channels = run_channels(run) or [campaign.channel]
        if deliver:
            for channel in channels:
                stats, _next = services.outbox_deliver_pending(channel=channel, budget_seconds=3600)
                self.stdout.write(
                    f"  {channel}: sent {stats.sent}, retrying {stats.retried}, "
                    f"failed {stats.failed}, skipped at send time {stats.skipped}"
                )
        else:
            for channel in channels:
                services.outbox_delivery_start(channel=channel)
            self.stdout.write("  delivery tasks enqueued on the 'send' queue")
