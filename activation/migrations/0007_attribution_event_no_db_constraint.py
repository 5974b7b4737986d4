"""Attribution.event keeps no database foreign key: on PostgreSQL contacts.0007 partitions the
events table, whose primary key becomes (id, occurred_at), and PostgreSQL refuses a foreign key
to ``id`` alone. Runs before that migration; Django still cascades ORM deletes of events."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("activation", "0006_merge_20261204_1904"),
        ("contacts", "0005_event_contact_index_covered"),
    ]
    run_before = [
        ("contacts", "0007_event_partitioned_by_month"),
    ]

    operations = [
        migrations.AlterField(
            model_name="attribution",
            name="event",
            field=models.OneToOneField(
                db_constraint=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="attribution",
                to="contacts.event",
                verbose_name="conversion",
            ),
        ),
    ]
