"""``manage.py import_events FILE.csv`` — columns external_id (or email/phone), type, timestamp,
idempotency_key; every other column becomes a property (numbers parsed)."""

from contacts.management.commands._csv_command import CsvImportCommand


class Command(CsvImportCommand):
    help = __doc__
    kind = "events"
