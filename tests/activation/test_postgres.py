"""PostgreSQL (+ Redis) behaviour: set-based launch, SKIP LOCKED claims, and the kill test —
two real Celery workers, one SIGKILLed mid-run, every eligible contact gets exactly one email."""

from __future__ import annotations

import os
import signal
import threading
from datetime import timedelta

import pytest
from celery import Celery
from django.db import connections
from django.utils import timezone

from activation.delivery import outbox_claim
from activation.models import OutboxMessage
from activation.services import campaign_run_launch, eligibility_report
from tests.activation.conftest import NOW
from tests.factories import ContactFactory
from tests.workers import celery_worker, wait_until

pytestmark = [pytest.mark.postgres]


@pytest.mark.django_db
def test_launch_on_postgresql_snapshots_with_reasons(consenting, make_campaign):
    ok = consenting(3)
    stranger = ContactFactory()
    deferred = consenting(1, timezone="Pacific/Auckland")  # 22:00 there
    campaign = make_campaign(ok + [stranger] + deferred)

    assert eligibility_report(campaign=campaign, now=NOW).by_reason == {
        "no_consent": 1,
        "quiet_hours": 1,
    }
    run = campaign_run_launch(campaign=campaign, now=NOW)
    states = sorted(OutboxMessage.objects.filter(run=run).values_list("state", "skip_reason"))
    assert states == [
        ("deferred", "quiet_hours"),
        ("queued", ""),
        ("queued", ""),
        ("queued", ""),
        ("skipped", "no_consent"),
    ]


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_take_disjoint_rows_with_skip_locked(consenting, make_campaign):
    contacts = consenting(40)
    run = campaign_run_launch(campaign=make_campaign(contacts), now=NOW)
    tokens: list[str] = []
    barrier = threading.Barrier(4)

    def claim():
        barrier.wait()
        try:
            tokens.append(outbox_claim(channel="email", limit=15, now=timezone.now()))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    claimed = {
        token: set(OutboxMessage.objects.filter(claim_token=token).values_list("id", flat=True))
        for token in tokens
    }
    sizes = sorted(len(ids) for ids in claimed.values())
    assert sum(sizes) == 40  # every row claimed once, none twice
    union = set().union(*claimed.values())
    assert len(union) == 40
    assert run.messages.filter(state="sending").count() == 40


def enqueue_delivery(redis_url: str, n: int) -> None:
    producer = Celery("test-producer", broker=redis_url, set_as_current=False)
    for _ in range(n):
        producer.send_task("activation.tasks.deliver", args=["email"], queue="send")


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_worker_killed_mid_run_every_eligible_contact_gets_exactly_one_email(
    redis_url, smtp_sink, consenting, make_campaign
):
    sink, port = smtp_sink
    contacts = consenting(150)
    not_consenting = ContactFactory.create_batch(10)
    run = campaign_run_launch(campaign=make_campaign(contacts + not_consenting), now=NOW)
    assert run.messages.filter(state="queued").count() == 150
    sink.block_after = 40
    env = {
        "EMAIL_URL": f"smtp://127.0.0.1:{port}",
        "ACTIVATION_LEASE_SECONDS": "5",
        "ACTIVATION_BATCH_SIZE": "10",
        "EMAIL_RATE_PER_SECOND": "0",
    }
    worker = dict(broker_url=redis_url, queues="send", extra_env=env)

    with celery_worker(**worker) as doomed, celery_worker(**worker):
        enqueue_delivery(redis_url, 2)
        # Both workers are now inside an SMTP transaction, waiting for "250".
        wait_until(lambda: sink.held >= 2, timeout=90, what="both workers to be mid-send")
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait(timeout=20)
        wait_until(lambda: sink.dropped == 1, what="the killed worker's connection to drop")
        sink.gate.set()
        with celery_worker(**worker):  # the killed worker comes back
            wait_until(
                lambda: run.messages.filter(state="sent").count() == 150,
                timeout=120,
                what="every eligible message to be sent",
            )

    received = sink.recipients()
    assert sum(received.values()) == 150
    assert set(received) == {c.email for c in contacts}
    assert set(received.values()) == {1}  # nobody got two
    assert run.messages.filter(state="skipped", skip_reason="no_consent").count() == 10
    assert not run.messages.filter(state__in=["queued", "sending", "deferred", "failed"]).exists()
    # Rows of the killed worker were recovered after their lease expired, then sent.
    assert run.messages.filter(attempts=2).exists()
    assert all(
        m.message_id and m.sent_at and m.sent_at > NOW - timedelta(days=1)
        for m in run.messages.filter(state="sent")[:10]
    )


@pytest.mark.django_db
def test_results_are_recorded_in_one_statement_with_their_log_on_postgresql(
    smtp_settings, consenting, make_campaign
):
    from activation.models import DeliveryAttempt
    from activation.services import outbox_deliver_batch

    ok, later, never = consenting(3)
    smtp_settings.rcpt_replies[later.email] = ["451 try later"]
    smtp_settings.rcpt_replies[never.email] = ["550 no such user"]
    run = campaign_run_launch(campaign=make_campaign([ok, later, never]), now=NOW)

    stats = outbox_deliver_batch(channel="email", limit=10)

    assert (stats.sent, stats.retried, stats.failed) == (1, 1, 1)
    states = dict(run.messages.values_list("contact_id", "state"))
    assert states == {ok.pk: "sent", later.pk: "deferred", never.pk: "failed"}
    outcomes = dict(DeliveryAttempt.objects.values_list("message__contact_id", "outcome"))
    assert outcomes == {ok.pk: "sent", later.pk: "retryable", never.pk: "permanent"}
    assert not run.messages.exclude(claim_token="").exists()
