"""Runs of workflow send steps were left with audience 0 (their rows are inserted step by step,
never by a snapshot): set it to their number of outbox rows, in one UPDATE."""

from django.db import migrations
from django.db.models import Count, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce


def audience_from_outbox(apps, schema_editor):
    CampaignRun = apps.get_model("activation", "CampaignRun")
    OutboxMessage = apps.get_model("activation", "OutboxMessage")
    rows = (
        OutboxMessage.objects.filter(run_id=OuterRef("pk"))
        .order_by()
        .values("run_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    CampaignRun.objects.filter(audience_size=0, dry_run=False).update(
        audience_size=Coalesce(Subquery(rows, output_field=IntegerField()), 0)
    )


class Migration(migrations.Migration):
    dependencies = [("activation", "0003_outbox_claim_order")]

    operations = [migrations.RunPython(audience_from_outbox, migrations.RunPython.noop)]
