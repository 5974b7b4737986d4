from django.core.management.base import BaseCommand, CommandError

from contacts.api_keys import KNOWN_SCOPES, api_key_create


class Command(BaseCommand):
    help = "Create a REST API key and print it once (only a hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument(
            "--scopes",
            nargs="+",
            default=["*"],
            help=f"scopes (default: all). Known: {', '.join(KNOWN_SCOPES)}",
        )

    def handle(self, *args, name: str, scopes: list[str], **options):
        try:
            key, raw = api_key_create(name=name, scopes=scopes)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"API key {key.name!r} created with scopes {', '.join(key.scopes)}.")
        self.stdout.write("Store it now; it cannot be shown again:")
        self.stdout.write(raw)
