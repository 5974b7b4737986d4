"""Drop the single-column index on ``contacts_event.contact_id``: ``event_contact_by_time``
(contact_id, occurred_at) serves every lookup by contact, and one fewer index is one fewer
random page write per ingested event. Only the index goes (not the foreign key, which Django's
``AlterField`` would drop and re-validate over the whole table)."""

import django.db.models.deletion
from django.db import migrations, models

INDEX = "contacts_event_contact_id_6a5dd8b9"


class Migration(migrations.Migration):
    dependencies = [
        ("contacts", "0004_default_aliases"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="event",
                    name="contact",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="events",
                        to="contacts.contact",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{INDEX}"',
                    reverse_sql=f'CREATE INDEX IF NOT EXISTS "{INDEX}" ON "contacts_event" ("contact_id")',
                ),
            ],
        ),
    ]
