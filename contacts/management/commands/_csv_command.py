"""Shared body of ``import_contacts`` and ``import_events``."""

from __future__ import annotations

import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.translation import gettext as _

from contacts.services.csv_import import CsvImportError, csv_import


class CsvImportCommand(BaseCommand):
    kind = ""

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        parser.add_argument("--source", default="csv", help="source name (default: csv)")
        parser.add_argument("--delimiter", default="", help="default: detected (, ; tab |)")
        parser.add_argument("--encoding", default="", help="default: detected (UTF-8, Latin-1)")
        parser.add_argument(
            "--default-timezone",
            default="",
            help="IANA zone for timestamps without offset (default: such lines are rejected)",
        )
        parser.add_argument(
            "--rejects", type=Path, default=None, help="write bad lines here (line, reason, row)"
        )

    def handle(
        self, *args, file: Path, source, delimiter, encoding, default_timezone, rejects, **o
    ):
        if not file.is_file():
            raise CommandError(f"{file}: no such file")
        started = time.perf_counter()
        last = [0.0]

        def progress(done: int, total: int) -> None:
            now = time.perf_counter()
            if done == total or now - last[0] > 2:
                pct = 100.0 * done / total if total else 100.0
                self.stdout.write(f"  {done:,}/{total:,} lines ({pct:.0f} %)")
                last[0] = now

        try:
            counts = csv_import(
                kind=self.kind,
                path=file,
                source=source,
                delimiter=delimiter,
                encoding=encoding,
                default_timezone=default_timezone,
                rejects_path=rejects,
                progress=progress,
            )
        except CsvImportError as exc:
            raise CommandError(str(exc)) from exc
        summary = (
            f"{counts.lines:,} lines in {time.perf_counter() - started:.1f} s "
            f"(encoding {counts.encoding}, delimiter {counts.delimiter!r}): "
            f"{counts.created:,} created, {counts.updated:,} updated, "
            f"{counts.duplicates:,} duplicates, {counts.rejected:,} rejected"
        )
        if counts.rejected and rejects:
            summary += f" — see {rejects}"
        elif counts.rejected:
            summary += " — add --rejects FILE to see why"
        self.stdout.write(self.style.SUCCESS(summary) if not counts.rejected else summary)
        if counts.ignored_columns:
            self.stdout.write(
                self.style.WARNING(
                    _("Ignored columns (not stored): %(columns)s")
                    % {"columns": ", ".join(counts.ignored_columns)}
                )
            )
        if counts.extra_columns:
            nested = "properties" if self.kind == "events" else "attributes"
            self.stdout.write(
                _("Columns Cible does not know, stored as %(nested)s.<name>: %(columns)s")
                % {"nested": nested, "columns": ", ".join(counts.extra_columns)}
            )
