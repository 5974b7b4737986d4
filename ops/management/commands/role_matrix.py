"""``manage.py role_matrix [--write]`` — the role matrix (ops/roles.py) as Markdown tables."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from ops.roles import role_matrix_markdown

DOC = Path(settings.BASE_DIR) / "docs" / "operations.md"
START, END = "<!-- role-matrix:start -->", "<!-- role-matrix:end -->"


def documented_matrix(text: str) -> str | None:
    """The text between the role-matrix markers of a document, or None without markers."""
    if START not in text or END not in text:
        return None
    return text.split(START, 1)[1].split(END, 1)[0].strip("\n") + "\n"


class Command(BaseCommand):
    help = "Print the role matrix; with --write, replace it in docs/operations.md."

    def add_arguments(self, parser):
        parser.add_argument("--write", action="store_true", help="update docs/operations.md")

    def handle(self, *args, write: bool, **options):
        table = role_matrix_markdown()
        if not write:
            self.stdout.write(table, ending="")
            return
        text = DOC.read_text(encoding="utf-8")
        if documented_matrix(text) is None:
            raise CommandError(f"{DOC} has no {START} … {END} markers")
        before, rest = text.split(START, 1)
        after = rest.split(END, 1)[1]
        DOC.write_text(f"{before}{START}\n{table}{END}{after}", encoding="utf-8")
        self.stdout.write(f"Role matrix written to {DOC}.")
