"""``manage.py train_propensity --target churn|purchase --as-of ISO_DATE --horizon DAYS``."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from segments.scoring.management.commands.fit_clv import parse_instant
from segments.scoring.services import ScoringError, propensity_train


class Command(BaseCommand):
    help = (
        "Train a churn or purchase propensity model on a time split (features as of a past "
        "date, outcome of the following days), print its held-out AUC and Brier score and "
        "store every eligible contact's score."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--target", choices=("churn", "purchase"), required=True)
        parser.add_argument(
            "--as-of",
            type=parse_instant,
            default=None,
            help="start of the held-out period (default: today minus the horizon)",
        )
        parser.add_argument(
            "--horizon",
            type=int,
            default=None,
            help="days of outcome after each reference date (default: 90 churn, 30 purchase)",
        )

    def handle(self, *args, target: str, as_of, horizon: int | None, **options):
        try:
            model = propensity_train(
                target=target, now=timezone.now(), as_of=as_of, horizon_days=horizon
            )
        except ScoringError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"AUC {model.auc:.4f}")
        self.stdout.write(f"Brier {model.brier:.4f}")
        self.stdout.write(
            self.style.SUCCESS(
                f"{model} ({model.parameters['estimator']}): trained on "
                f"{model.training_rows:,} contacts, {model.scored_contacts:,} contacts scored."
            )
        )
