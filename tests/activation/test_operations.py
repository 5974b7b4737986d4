"""Operator-facing behaviour: idempotent preparation, sweep, cancel, rate limits, sinks."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from activation.models import CampaignRun, OutboxMessage, RunStatus
from activation.services import (
    campaign_run_cancel,
    campaign_run_create,
    campaign_run_launch,
    campaign_run_prepare,
    outbox_deliver_batch,
    outbox_sweep,
)
from tests.activation.conftest import NOW

pytestmark = pytest.mark.django_db


def test_preparing_a_run_twice_never_doubles_its_messages(consenting, make_campaign):
    """A redelivered prepare_run task (acks_late) finds the run prepared and does nothing."""
    campaign = make_campaign(consenting(3))
    run = campaign_run_create(campaign=campaign, now=NOW)

    first = campaign_run_prepare(run=run, now=NOW)
    second = campaign_run_prepare(run=CampaignRun.objects.get(pk=run.pk), now=NOW)

    assert first.status == second.status == RunStatus.SENDING
    assert OutboxMessage.objects.filter(run=run).count() == 3


def test_cancelled_run_sends_nothing_more(consenting, make_campaign):
    run = campaign_run_launch(campaign=make_campaign(consenting(3)), now=NOW)
    assert campaign_run_cancel(run=run, now=NOW) == 3
    assert outbox_deliver_batch(channel="email", limit=10).claimed == 0
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert run.counts["by_state"]["cancelled"] == 3


def test_sweep_recovers_expired_leases_and_closes_drained_runs(
    consenting, make_campaign, django_capture_on_commit_callbacks, settings
):
    from activation.delivery import outbox_claim

    contacts = consenting(2)
    run = campaign_run_launch(campaign=make_campaign(contacts), now=NOW)
    outbox_claim(channel="email", limit=10, now=timezone.now())
    later = timezone.now() + timedelta(seconds=settings.ACTIVATION_LEASE_SECONDS + 5)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        done = outbox_sweep(now=later)

    assert done == {"recovered": 2, "finished": 0, "started": 1}
    assert len(callbacks) == 1  # delivery tasks enqueued after commit
    outbox_deliver_batch(channel="email", limit=10, now=later)
    assert outbox_sweep(now=later)["finished"] == 1
    run.refresh_from_db()
    assert run.status == RunStatus.DONE and run.counts["by_state"]["sent"] == 2


def test_sms_file_sink_of_the_embedded_mode(settings, tmp_path, consenting, make_campaign):
    settings.SMS_PROVIDER_URL = f"file://{tmp_path}"
    settings.SMS_STOP_MENTION = "STOP au 36111"
    contact = consenting(1, channel="sms")[0]
    campaign_run_launch(campaign=make_campaign([contact], channel="sms"), now=NOW)
    outbox_deliver_batch(channel="sms", limit=10)
    [path] = tmp_path.glob("sms-*.jsonl")
    record = json.loads(path.read_text())
    assert record["to"] == contact.phone
    assert record["body"].endswith("STOP au 36111")
    assert record["segments"] == "GSM-7: 48 / 1 SMS"


def test_local_token_bucket_grants_the_burst_then_asks_to_wait():
    from activation.ratelimit import LocalBucket

    bucket = LocalBucket(rate=10)
    assert [bucket.take(1) for _ in range(10)] == [0.0] * 10
    assert 0 < bucket.take(1) <= 0.1


@pytest.mark.redis
def test_redis_token_bucket_is_shared_by_every_worker(redis_url, settings):
    from activation.ratelimit import TOKEN_BUCKET_LUA, _redis_script

    script = _redis_script(redis_url)
    key = ["cible:ratelimit:test"]
    granted = [float(script(keys=key, args=[5, 5, 1])) for _ in range(5)]
    assert granted == [0.0] * 5
    assert 0 < float(script(keys=key, args=[5, 5, 1])) <= 0.2
    assert "redis.call('TIME')" in TOKEN_BUCKET_LUA  # one clock for all workers
