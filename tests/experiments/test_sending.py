"""With activation: a campaign run asks the experiment for each contact's variant; the rollout
run sends the decided winner to the remainder only. Nothing lost, nothing doubled."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from activation.models import CampaignRun, OutboxMessage
from activation.services import campaign_run_launch, campaign_run_prepare
from experiments.models import Assignment, ExperimentStatus, Fallback
from experiments.selectors import delivery_counts
from experiments.services import auto_winner_decide, experiment_start
from tests.activation.conftest import NOW
from tests.experiments.builders import events
from tests.factories import ExperimentFactory, VariantFactory

pytestmark = pytest.mark.django_db


def experiment_on(campaign, **fields):
    experiment = ExperimentFactory(campaign=campaign, primary_metric="click", **fields)
    VariantFactory(experiment=experiment, key="A", is_control=True, position=0)
    VariantFactory(experiment=experiment, key="B", position=1, subject="Nouveau : -20 %")
    return experiment


def test_run_writes_each_contacts_stored_variant_and_skips_the_holdout(consenting, make_campaign):
    contacts = consenting(60)
    campaign = make_campaign(contacts)
    experiment = experiment_on(campaign)
    VariantFactory(experiment=experiment, key="H", is_holdout=True, position=2)
    experiment_start(experiment=experiment, now=NOW - timedelta(minutes=1))
    run = campaign_run_launch(campaign=campaign, now=NOW)
    stored = dict(
        Assignment.objects.filter(experiment=experiment).values_list("contact_id", "variant__key")
    )
    rows = {m.contact_id: m for m in OutboxMessage.objects.filter(run=run)}
    assert set(stored) == {c.pk for c in contacts} == set(rows)
    for cid, key in stored.items():
        if key == "H":
            assert rows[cid].state == "skipped" and rows[cid].skip_reason == "holdout"
        else:
            assert rows[cid].variant == key and rows[cid].state == "queued"
    assert set(stored.values()) == {"A", "B", "H"}


def test_rollout_sends_the_winner_to_the_remainder_and_nobody_twice(
    consenting, make_campaign, django_capture_on_commit_callbacks
):
    contacts = consenting(80)
    campaign = make_campaign(contacts)
    experiment = experiment_on(
        campaign, auto_winner=True, sample_share=0.5, decision_wait_hours=1, fallback=Fallback.ASK
    )
    experiment_start(experiment=experiment, now=NOW - timedelta(minutes=1))
    test_run = campaign_run_launch(campaign=campaign, now=NOW)
    sample = dict(
        Assignment.objects.filter(experiment=experiment).values_list("contact_id", "variant__key")
    )
    assert 20 <= len(sample) <= 60  # about half of 80
    test_rows = OutboxMessage.objects.filter(run=test_run)
    assert {m.contact_id for m in test_rows.filter(state="queued")} == set(sample)
    # Everyone in B clicks, nobody in A: a clear winner.
    events(
        [cid for cid, key in sample.items() if key == "B"],
        "email_click",
        at=NOW,
        campaign_id=campaign.pk,
    )
    with django_capture_on_commit_callbacks(execute=True):
        log = auto_winner_decide(experiment=experiment, now=NOW + timedelta(hours=2))
    assert log.variant.key == "B"
    rollout_run = CampaignRun.objects.filter(campaign=campaign).exclude(pk=test_run.pk).get()
    campaign_run_prepare(run=rollout_run, now=NOW + timedelta(hours=2))
    rollout_rows = OutboxMessage.objects.filter(run=rollout_run)
    remainder = {c.pk for c in contacts} - set(sample)
    assert {m.contact_id for m in rollout_rows.filter(state="queued")} == remainder
    assert set(rollout_rows.filter(state="queued").values_list("variant", flat=True)) == {"B"}
    # Each contact gets exactly one message across the two runs.
    sent_to = Counter(
        OutboxMessage.objects.filter(run__campaign=campaign, state="queued").values_list(
            "contact_id", flat=True
        )
    )
    assert set(sent_to) == {c.pk for c in contacts} and set(sent_to.values()) == {1}
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.ROLLING_OUT


def test_results_count_deliveries_of_the_test_runs(consenting, make_campaign):
    contacts = consenting(30)
    campaign = make_campaign(contacts)
    experiment = experiment_on(campaign)
    experiment_start(experiment=experiment, now=NOW - timedelta(minutes=1))
    run = campaign_run_launch(campaign=campaign, now=NOW)
    OutboxMessage.objects.filter(run=run, variant="B").update(state="sent", sent_at=NOW)
    by_variant = delivery_counts(experiment=experiment)
    b = experiment.variants.get(key="B")
    assert by_variant[b.pk] == OutboxMessage.objects.filter(run=run, variant="B").count() > 0
    assert by_variant[experiment.variants.get(key="A").pk] == 0


def test_rollout_is_not_launched_for_a_campaign_paused_since_the_test(
    consenting, make_campaign, django_capture_on_commit_callbacks
):
    contacts = consenting(40)
    campaign = make_campaign(contacts)
    experiment = experiment_on(
        campaign, auto_winner=True, sample_share=0.5, decision_wait_hours=1, fallback=Fallback.ASK
    )
    experiment_start(experiment=experiment, now=NOW - timedelta(minutes=1))
    test_run = campaign_run_launch(campaign=campaign, now=NOW)
    sample = dict(
        Assignment.objects.filter(experiment=experiment).values_list("contact_id", "variant__key")
    )
    events(
        [cid for cid, key in sample.items() if key == "B"],
        "email_click",
        at=NOW,
        campaign_id=campaign.pk,
    )
    campaign.status = "paused"
    campaign.save(update_fields=["status"])
    with django_capture_on_commit_callbacks(execute=True):
        auto_winner_decide(experiment=experiment, now=NOW + timedelta(hours=2))
    assert list(CampaignRun.objects.filter(campaign=campaign)) == [test_run]
