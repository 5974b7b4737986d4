"""``manage.py import_contacts FILE.csv`` — contact fields by column name (external_id, email,
phone, first_name, last_name, country, city, timezone, locale, birth_year); every other column
goes into attributes."""

from contacts.management.commands._csv_command import CsvImportCommand


class Command(CsvImportCommand):
    help = __doc__
    kind = "contacts"
