"""Migration experiments.0004: a variant's free-text template name becomes a foreign key to the
template of that name; a name matching no template is dropped (the campaign's template then
applies), and channels that are not sending channels are cleared."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)


def activation_leaf():
    executor = MigrationExecutor(connection)
    return executor.loader.graph.leaf_nodes("activation")[0]


BEFORE = [("experiments", "0003_assignment_outcomes")]
AFTER = [("experiments", "0004_variant_template_from_existing_templates")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_template_names_become_links_to_existing_templates(capsys):
    old = migrate([*BEFORE, activation_leaf()])
    Template = old.get_model("activation", "Template")
    Experiment = old.get_model("experiments", "Experiment")
    Variant = old.get_model("experiments", "Variant")
    rentree = Template.objects.create(name="Rentrée 2026", channel="email")
    experiment = Experiment.objects.create(name="Objet", salt="s")
    Variant.objects.create(experiment=experiment, key="A", name="A", is_control=True)
    Variant.objects.create(experiment=experiment, key="B", name="B", template_name="Rentrée 2026")
    Variant.objects.create(experiment=experiment, key="C", name="C", template_name=" rentrée 2026 ")
    Variant.objects.create(
        experiment=experiment, key="D", name="D", template_name="Soldes", channel="web"
    )
    try:
        new = migrate(AFTER)
        variants = new.get_model("experiments", "Variant").objects.order_by("key")
        assert [(v.key, v.template_id, v.channel) for v in variants] == [
            ("A", None, ""),
            ("B", rentree.pk, ""),
            ("C", rentree.pk, ""),
            ("D", None, ""),
        ]
        assert "no template named 'Soldes'" in capsys.readouterr().out
    finally:
        migrate([*AFTER, activation_leaf()])
