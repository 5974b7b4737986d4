"""``manage.py seed_demo --contacts N --events-per-contact M --seed S`` — reproducible demo data."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from contacts.services import demo_population_seed


class Command(BaseCommand):
    help = (
        "Generate a reproducible demo population (personas, French names, events, consent answers) "
        "and bulk-load it (COPY on PostgreSQL, batched inserts on SQLite)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--contacts", type=int, default=2000, help="number of contacts (default 2000)"
        )
        parser.add_argument(
            "--events-per-contact",
            type=float,
            default=25.0,
            help="average events per contact (default 25)",
        )
        parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="do nothing when the database already holds contacts (used by `make demo`)",
        )

    def handle(
        self, *args, contacts: int, events_per_contact: float, seed: int, if_empty: bool, **options
    ):
        if contacts <= 0 or contacts > 50_000_000:
            raise CommandError("--contacts must be between 1 and 50,000,000")
        if not (0 <= events_per_contact <= 1000):
            raise CommandError("--events-per-contact must be between 0 and 1000")
        if seed < 0:
            raise CommandError("--seed must be ≥ 0")
        from contacts.models import Contact

        if if_empty and Contact.objects.exists():
            self.stdout.write("Database already holds contacts; demo data not reloaded.")
            return
        started = time.perf_counter()
        last = {"stage": "", "at": 0.0}

        def progress(stage: str, done: int, total: int) -> None:
            now = time.perf_counter()
            if stage != last["stage"] or done == total or now - last["at"] > 2:
                pct = 100.0 * done / total if total else 100.0
                self.stdout.write(f"  {stage}: {done:,}/{total:,} ({pct:.0f} %)")
                last.update(stage=stage, at=now)

        try:
            result = demo_population_seed(
                contacts=contacts,
                events_per_contact=events_per_contact,
                seed=seed,
                now=timezone.now(),
                progress=progress,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Loaded {result.contacts:,} contacts and {result.events:,} events "
                f"in {time.perf_counter() - started:.1f} s."
            )
        )
