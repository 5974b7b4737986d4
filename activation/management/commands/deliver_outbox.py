"""``deliver_outbox CHANNEL [--here]``: resume delivery of every due outbox row of a channel.

Safe to run any number of times (rows are claimed, never re-sent): enqueue delivery tasks on
the ``send`` queue, or with ``--here`` deliver in this process until nothing is due. Exit
status 0 when started/finished, 3 when the broker refused the tasks or rows are still waiting
for a retry, 4 when messages failed for good.
"""

from __future__ import annotations

import sys

from django.conf import settings
from django.core.management.base import BaseCommand

from activation import services

EXIT_NOT_FINISHED = 3
EXIT_FAILURES = 4


class Command(BaseCommand):
    help = "Resume delivery of the due outbox rows of CHANNEL (email, sms or push)."

    def add_arguments(self, parser):
        parser.add_argument("channel", choices=["email", "sms", "push"])
        parser.add_argument(
            "--here", action="store_true", help="Deliver in this process until nothing is due."
        )

    def handle(self, *args, channel: str, here: bool, **options):
        if not here:
            started = services.delivery_tasks_enqueue(
                channel=channel, count=settings.ACTIVATION_DELIVERY_TASKS
            )
            if not started:
                self.stderr.write(
                    f"The broker is unreachable: no {channel} delivery task was enqueued. "
                    f"Nothing was sent or lost; run again later, or with --here."
                )
                sys.exit(EXIT_NOT_FINISHED)
            self.stdout.write(f"{started} {channel} delivery tasks enqueued on the 'send' queue.")
            return
        stats, next_due = services.outbox_deliver_pending(channel=channel, budget_seconds=3600)
        numbers = f"sent {stats.sent}, failed {stats.failed}, skipped at send time {stats.skipped}"
        if next_due is not None or stats.retried or stats.paused_for:
            when = f"; next attempt in {next_due:.0f} s" if next_due is not None else ""
            self.stderr.write(
                f"{channel}: {numbers}; NOT finished: {stats.retried} retries pending{when}."
            )
            sys.exit(EXIT_NOT_FINISHED)
        if stats.failed:
            self.stderr.write(f"{channel}: {numbers}; some messages failed for good.")
            sys.exit(EXIT_FAILURES)
        self.stdout.write(f"{channel}: {numbers}; nothing left to deliver.")
