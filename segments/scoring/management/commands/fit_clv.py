"""``manage.py fit_clv [--calibration-end ISO_DATE] [--time-unit day|week] [--json]``."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from segments.scoring.services import ScoringError, clv_fit


def parse_instant(value: str) -> datetime:
    """An ISO date or date-time; naive values are read in UTC (a date means its midnight)."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"not an ISO date: {value!r} (e.g. 2026-03-31)") from exc
    return moment if timezone.is_aware(moment) else moment.replace(tzinfo=UTC)


def parse_calibration_end(value: str) -> datetime | date:
    """An ISO date, kept a date (that whole UTC day's purchases are calibration and T counts to
    it, as lifetimes' ``observation_period_end``), or a date-time (an instant, see
    :func:`parse_instant`)."""
    if len(value.strip()) == 10:
        try:
            return date.fromisoformat(value.strip())
        except ValueError as exc:
            raise CommandError(f"not an ISO date: {value!r} (e.g. 2026-03-31)") from exc
    return parse_instant(value)


class Command(BaseCommand):
    help = (
        "Fit the CLV model (BG/NBD + Gamma-Gamma) on purchases up to the calibration end, "
        "store the model version and every customer's P(alive), expected purchases and CLV."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--calibration-end",
            type=parse_calibration_end,
            default=None,
            help="ISO date (that whole day's purchases are fitted, T counts to it) or date-time "
            "(purchases before it); default: now",
        )
        parser.add_argument(
            "--time-unit",
            choices=("day", "week"),
            default="day",
            help="time unit of the fitted parameters (default: day)",
        )
        parser.add_argument("--json", action="store_true", help="print the parameters as JSON")

    def handle(self, *args, calibration_end, time_unit: str, json: bool, **options):
        try:
            fit = clv_fit(now=timezone.now(), calibration_end=calibration_end, time_unit=time_unit)
        except ScoringError as exc:
            raise CommandError(str(exc)) from exc
        if json:
            self.stdout.write(_dumps(fit.as_json()))
            return
        p, g = fit.bgnbd, fit.gamma_gamma
        self.stdout.write(
            self.style.SUCCESS(
                f"CLV model v{fit.model.version}: {fit.customers:,} customers, "
                f"{fit.model.scored_contacts:,} contacts scored, log-likelihood {fit.log_likelihood:,.1f}"
            )
        )
        self.stdout.write(
            f"BG/NBD ({time_unit}s): r={p.r:.4g} alpha={p.alpha:.4g} a={p.a:.4g} b={p.b:.4g}; "
            f"Gamma-Gamma: p={g.p:.4g} q={g.q:.4g} gamma={g.gamma:.4g}"
        )


def _dumps(payload: dict) -> str:
    return json.dumps(payload, indent=2, sort_keys=False)
