"""``event_type_by_time`` (type, occurred_at) also carries ``contact_id`` (``INCLUDE``): a segment
condition counting one type's events in a time window is answered by an index-only scan instead
of one heap page read per event (segments.rules.shared_events). Same number of indexes; each
entry grows by the 8-byte contact id. Plain SQL on PostgreSQL, so it also applies to a table
partitioned by month (the index is created on every partition); SQLite ignores ``INCLUDE``."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("contacts", "0005_event_contact_index_covered"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="event",
            name="event_type_by_time",
        ),
        migrations.AddIndex(
            model_name="event",
            index=models.Index(
                fields=["type", "occurred_at"], include=("contact",), name="event_type_by_time"
            ),
        ),
    ]
