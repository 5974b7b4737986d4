"""``run_campaign ID [--dry-run] [--deliver]``: launch a campaign run from the command line.

The first line says what happened — whether a run was created, its id, and what to do next —
and the exit status means the same thing:

* 0 — run created and delivery started (or, with ``--deliver``, every message dealt with and
  none failed); dry run reported.
* 1 — nothing was created (unknown campaign, database unreachable): safe to launch again.
* 3 — the run WAS created but is not finished: the broker refused the delivery tasks, or
  ``--deliver`` left messages waiting for a retry. Do not launch again (that would be a second
  run, i.e. a second message to everyone): resume with ``manage.py deliver_outbox CHANNEL``.
* 4 — ``--deliver`` finished and some messages failed for good (run "done with failures").
"""

from __future__ import annotations

import sys

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from django.utils import timezone

from activation import services
from activation.journeys.services import campaign_launch
from activation.models import Campaign, CampaignRun, RunStatus, SkipReason
from activation.selectors import run_channels, run_progress

EXIT_NOT_FINISHED = 3
EXIT_FAILURES = 4


class Command(BaseCommand):
    help = (
        "Launch a run of campaign ID (or only report who would receive it with --dry-run). "
        "Exit status: 0 done/started, 1 nothing created, 3 run created but not finished "
        "(resume with deliver_outbox, do not launch again), 4 delivered with failures."
    )

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
        try:
            campaign = Campaign.objects.filter(pk=campaign_id).first()
        except DatabaseError as exc:
            raise CommandError(
                f"No run created: the database is unreachable ({_first_line(exc)})."
            ) from None
        if campaign is None:
            raise CommandError(f"campaign {campaign_id} does not exist")
        try:
            if dry_run:
                run = services.campaign_run_launch(
                    campaign=campaign, now=timezone.now(), dry_run=True
                )
            else:
                # The same launch as the admin's (state, template, approval checked);
                # refused → the reason, nothing written.
                with services.delivery_enqueues_recorded() as enqueued:
                    occurrence = campaign_launch(campaign=campaign, now=timezone.now())
                run = occurrence.run
                if run is not None:
                    run.refresh_from_db()  # prepared by another instance of the row
                if run is None:
                    self.stdout.write(
                        f"{campaign.name!r}: {occurrence.enrolled} contacts enrolled in its "
                        f"workflow; its steps are sent by the workers."
                    )
                    return
        except ValidationError as exc:
            raise CommandError("No run created: " + "; ".join(exc.messages)) from None
        except DatabaseError as exc:
            raise CommandError(
                f"No run created: the database failed during the launch ({_first_line(exc)}); "
                f"the transaction was rolled back. If the connection dropped while committing, "
                f"check the runs of campaign {campaign.pk} in the admin before launching again."
            ) from None
        if dry_run:
            self.stdout.write(
                f"Dry run #{run.pk} of {campaign.name!r}: audience {run.audience_size}, "
                f"would receive: {run.counts['eligible']}; nothing sent."
            )
            for where, names in run.report.get("unknown_variables", {}).items():
                self.stdout.write(
                    f"  unknown variables in the template ({where}), rendered blank: "
                    + ", ".join(names)
                )
            self._reasons(run)
            return
        queued = run.counts.get("by_state", {})
        waiting = queued.get("queued", 0) + queued.get("deferred", 0)
        head = (
            f"Run #{run.pk} of {campaign.name!r} created: audience {run.audience_size}, "
            f"{waiting} to send"
        )
        if deliver:
            self._deliver_here(run, campaign, head)
        else:
            self._enqueue(run, campaign, head, waiting, enqueued)

    def _enqueue(
        self, run: CampaignRun, campaign: Campaign, head: str, waiting: int, enqueued: list
    ) -> None:
        if not waiting:
            self.stdout.write(f"{head}; nothing to deliver, the run is {run.status}.")
            self._reasons(run)
            return
        if enqueued:  # the launch service started delivery itself: report, do not enqueue twice
            started = sum(sent for _channel, _count, sent in enqueued)
        else:
            started = sum(
                services.delivery_tasks_enqueue(
                    channel=channel, count=settings.ACTIVATION_DELIVERY_TASKS
                )
                for channel in run_channels(run) or [campaign.channel]
            )
        if started:
            self.stdout.write(
                f"{head}; delivery started ({started} tasks on the 'send' queue). "
                f"Follow it in the admin (campaign runs)."
            )
            self._reasons(run)
            return
        self.stderr.write(
            f"{head}, but the broker is unreachable: no delivery task was enqueued. "
            f"Do NOT launch it again (a second run would message everyone twice). "
            f"The outbox sweep starts run #{run.pk} once the broker is back; to deliver it now "
            f"from this process: manage.py deliver_outbox {campaign.channel} --here"
        )
        self._reasons(run)
        sys.exit(EXIT_NOT_FINISHED)

    def _deliver_here(self, run: CampaignRun, campaign: Campaign, head: str) -> None:
        channels = run_channels(run) or [campaign.channel]
        stats, next_due = services.outbox_deliver_pending(channel=channels[0], budget_seconds=3600)
        for channel in channels[1:]:
            more, more_due = services.outbox_deliver_pending(channel=channel, budget_seconds=3600)
            stats.add(more)
            if more_due is not None:
                next_due = more_due if next_due is None else min(next_due, more_due)
        run.refresh_from_db()
        progress = run_progress(run)
        pending = sum(progress.get(state, 0) for state in ("queued", "deferred", "sending"))
        numbers = f"sent {stats.sent}, failed {stats.failed}, skipped at send time {stats.skipped}"
        if pending:
            when = f" (next attempt in {next_due:.0f} s)" if next_due is not None else ""
            self.stderr.write(
                f"{head}; NOT finished: {numbers}, {pending} still waiting for a retry{when}. "
                f"Do not launch it again; workers retry them, or run "
                f"manage.py deliver_outbox {campaign.channel} --here later."
            )
            self._reasons(run)
            sys.exit(EXIT_NOT_FINISHED)
        if run.status == RunStatus.DONE_WITH_FAILURES:
            self.stderr.write(
                f"{head}; done with failures: {numbers}. The errors are on the run's "
                f"failed messages in the admin (action: retry failed messages)."
            )
            for error in stats.errors[:5]:
                self.stderr.write(f"  e.g. {error}")
            sys.exit(EXIT_FAILURES)
        self.stdout.write(f"{head}; done: {numbers}.")
        self._reasons(run)

    def _reasons(self, run: CampaignRun) -> None:
        labels = dict(SkipReason.choices)
        for reason, count in run.counts.get("by_reason", {}).items():
            self.stdout.write(f"  {labels.get(reason, reason)}: {count}")
            for sample in run.report.get("samples", {}).get(reason, []):
                self.stdout.write(f"    e.g. {sample['external_id']}")


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
