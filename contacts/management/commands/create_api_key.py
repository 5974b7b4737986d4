from django.core.management.base import BaseCommand, CommandError

from contacts.api_keys import KNOWN_SCOPES, api_key_create


class Command(BaseCommand):
    help = (
        "Create a REST API key and print it once (only a hash is stored). Scopes are required: "
        "name each one, or '*' for every scope."
    )

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument(
            "--scopes",
            nargs="+",
            required=True,
            help=f"what the key may do ('*' = every scope). Known: {', '.join(KNOWN_SCOPES)}",
        )

    def handle(self, *args, name: str, scopes: list[str], **options):
        try:
            key, raw = api_key_create(name=name, scopes=scopes)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if "*" in key.scopes:
            self.stdout.write(
                self.style.WARNING(
                    f"API key {key.name!r} created with EVERY scope (*): it can read and write "
                    "contacts, consent, segments and campaigns."
                )
            )
        else:
            self.stdout.write(f"API key {key.name!r} created with scopes {', '.join(key.scopes)}.")
        self.stdout.write("Store it now; it cannot be shown again:")
        self.stdout.write(raw)
