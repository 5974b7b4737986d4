"""A variant's template becomes a foreign key to an existing activation template.

The free-text ``template_name`` of each variant is mapped to the template of that name (exact
name first, then ignoring case and surrounding spaces); a name that matches no template is
dropped (the variant then uses the campaign's template) and reported on the console. Channel
values that are not sending channels (web, app, store) are cleared the same way.
"""

import django.db.models.deletion
from django.db import migrations, models


def map_template_names(apps, schema_editor):
    Template = apps.get_model("activation", "Template")
    Variant = apps.get_model("experiments", "Variant")
    by_name = {t.name: t.pk for t in Template.objects.all()}
    by_folded = {name.strip().casefold(): pk for name, pk in by_name.items()}
    for variant in Variant.objects.exclude(template_name=""):
        name = variant.template_name
        pk = by_name.get(name) or by_folded.get(name.strip().casefold())
        if pk is None:
            print(  # noqa: T201 — a migration's only way to tell the operator
                f"\n  variant #{variant.pk} ({variant.key}): no template named {name!r}; "
                "it now uses its campaign's template"
            )
            continue
        Variant.objects.filter(pk=variant.pk).update(template_id=pk)
    Variant.objects.exclude(channel__in=["", "email", "sms", "push"]).update(channel="")


def template_names_back(apps, schema_editor):
    Variant = apps.get_model("experiments", "Variant")
    for variant in Variant.objects.exclude(template=None).select_related("template"):
        Variant.objects.filter(pk=variant.pk).update(template_name=variant.template.name)


class Migration(migrations.Migration):
    dependencies = [
        ("activation", "0003_outbox_claim_order"),
        ("experiments", "0003_assignment_outcomes"),
    ]

    operations = [
        migrations.AddField(
            model_name="variant",
            name="template",
            field=models.ForeignKey(
                blank=True,
                help_text="Sent instead of the campaign's template (its own locales).",
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="variants",
                to="activation.template",
                verbose_name="template",
            ),
        ),
        migrations.RunPython(map_template_names, template_names_back),
        migrations.RemoveField(model_name="variant", name="template_name"),
        migrations.AlterField(
            model_name="variant",
            name="channel",
            field=models.CharField(
                blank=True,
                choices=[("email", "Email"), ("sms", "SMS"), ("push", "Push")],
                default="",
                max_length=16,
                verbose_name="channel",
            ),
        ),
        migrations.AlterField(
            model_name="variant",
            name="content",
            field=models.TextField(
                blank=True,
                default="",
                help_text="Email HTML body, SMS body or push body, per the variant's channel.",
                verbose_name="content",
            ),
        ),
        migrations.AlterField(
            model_name="variant",
            name="subject",
            field=models.CharField(
                blank=True,
                default="",
                help_text="Email subject (push title); template language, every locale.",
                max_length=300,
                verbose_name="subject",
            ),
        ),
    ]
