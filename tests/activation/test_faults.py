"""Fault tests (issue 18): real PostgreSQL, real Redis (broker, cache, rate limit), a real SMTP
server and real Celery worker processes; a fault is injected mid-run. Each test asserts exactly
one message per eligible contact, none to the withdrawn, no row left in ``sending``, and a
recovery within a stated bound. Runs are small (≤ 150 contacts) and leases short (settings)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
import redis
from aiosmtpd.controller import Controller
from celery import Celery
from django.db import connection
from django.utils import timezone

from activation.models import DeliveryAttempt
from activation.services import campaign_run_launch
from ops.models import WorkerHeartbeat
from tests.activation.conftest import NOW, SinkHandler, SmtpSink, withdraw
from tests.factories import ContactFactory
from tests.services import free_port, postgres_restart
from tests.workers import ROOT, celery_worker, subprocess_database_url, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

LEASE = 4  # seconds: a dead worker's rows come back within one lease (+ one delivery pass)


@pytest.fixture
def cache_url(redis_url):
    """A shared cache (breaker state, counters) on the session's Redis, emptied per test."""
    url = redis_url.rsplit("/", 1)[0] + "/1"
    redis.Redis.from_url(url).flushdb()
    redis.Redis.from_url(redis_url).flushdb()  # no task left over from another test
    return url.replace("redis://", "rediscache://")


def worker_env(smtp_port: int, cache_url: str, **extra) -> dict[str, str]:
    return {
        "EMAIL_URL": f"smtp://127.0.0.1:{smtp_port}",
        "CACHE_URL": cache_url,
        "ACTIVATION_LEASE_SECONDS": str(LEASE),
        "ACTIVATION_BATCH_SIZE": "20",
        "ACTIVATION_DELIVERY_TASKS": "1",
        "ACTIVATION_RETRY_BASE_SECONDS": "1",
        "ACTIVATION_RETRY_MAX_SECONDS": "2",
        "EMAIL_RATE_PER_SECOND": "0",
        "SMS_RATE_PER_SECOND": "0",
        **{key: str(value) for key, value in extra.items()},
    }


def enqueue_delivery(redis_url: str, n: int = 1) -> None:
    producer = Celery("faults-producer", broker=redis_url, set_as_current=False)
    for _ in range(n):
        producer.send_task("activation.tasks.deliver", args=["email"], queue="send")


def launch(consenting, make_campaign, n: int, *, strangers: int = 5):
    contacts = consenting(n)
    run = campaign_run_launch(
        campaign=make_campaign(contacts + ContactFactory.create_batch(strangers)), now=NOW
    )
    assert run.messages.filter(state="queued").count() == n
    return run, contacts


def assert_exactly_once(sink: SmtpSink, run, contacts, *, withdrawn=()) -> None:
    received = sink.recipients()
    expected = {c.email for c in contacts} - {c.email for c in withdrawn}
    duplicates = {to: n for to, n in received.items() if n > 1}
    assert not duplicates, f"sent twice: {duplicates}"
    assert set(received) == expected
    assert not run.messages.filter(state__in=["sending", "queued", "deferred", "failed"]).exists()


def all_sent(run, n: int):
    return lambda: run.messages.filter(state="sent").count() == n


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_postgresql_restart_mid_send_records_the_result_and_sends_nobody_twice(
    mode, redis_url, cache_url, smtp_sink, consenting, make_campaign
):
    sink, port = smtp_sink
    run, contacts = launch(consenting, make_campaign, 60)
    sink.block_after = 15  # the 16th message waits for "250" while the database restarts

    # The throwaway server runs with synchronous_commit=off (speed); a crash ("immediate")
    # would lose the last commits, which production's default (on) never does: the worker
    # commits as production does.
    durable = subprocess_database_url() + "?options=-c%20synchronous_commit%3Don"
    env = worker_env(port, cache_url, DATABASE_URL=durable)
    with celery_worker(broker_url=redis_url, queues="send", extra_env=env):
        enqueue_delivery(redis_url)
        wait_until(lambda: sink.held >= 1, timeout=60, what="a message in flight")
        postgres_restart(connection, mode=mode)
        sink.gate.set()  # the provider accepts it: its result must still land
        started = time.monotonic()
        wait_until(all_sent(run, 60), timeout=60, what="every message sent")
        recovery = time.monotonic() - started

    assert_exactly_once(sink, run, contacts)
    # The in-flight result was written after reconnecting, not abandoned to the lease: no
    # row was claimed twice, and delivery went on well within one lease of the restart.
    assert not run.messages.filter(attempts__gt=1).exists()
    assert recovery < 30


def test_postgresql_outage_beat_survives_and_delivery_resumes_by_itself(
    redis_url, cache_url, smtp_sink, consenting, make_campaign
):
    sink, port = smtp_sink
    run, contacts = launch(consenting, make_campaign, 40)
    sink.block_after = 10
    env = {
        **os.environ,
        **worker_env(port, cache_url),
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DATABASE_URL": subprocess_database_url(),
        "CELERY_BROKER_URL": redis_url,
        "OPS_BEAT_HEARTBEAT_SECONDS": "1",
        "OPS_BEAT_DB_RETRY_SECONDS": "1",
    }
    beat = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "beat", "-l", "INFO", "--pidfile="],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with celery_worker(
            broker_url=redis_url, queues="send", extra_env=worker_env(port, cache_url)
        ):
            wait_until(
                lambda: WorkerHeartbeat.objects.filter(worker__startswith="beat@").exists(),
                timeout=60,
                what="beat's first heartbeat",
            )
            enqueue_delivery(redis_url)
            wait_until(lambda: sink.held >= 1, timeout=60, what="a message in flight")
            sink.gate.set()  # accepted while PostgreSQL is down (below)
            postgres_restart(connection, mode="fast", down_seconds=8)
            back = timezone.now()
            started = time.monotonic()
            wait_until(all_sent(run, 40), timeout=60, what="delivery to resume on its own")
            recovery = time.monotonic() - started
            wait_until(
                lambda: WorkerHeartbeat.objects.filter(
                    worker__startswith="beat@", last_seen_at__gt=back
                ).exists(),
                timeout=30,
                what="beat to record a heartbeat after the outage",
            )
        assert beat.poll() is None, "beat exited during the database outage"
    finally:
        beat.terminate()
        beat.wait(timeout=20)

    assert_exactly_once(sink, run, contacts)
    assert recovery < 30


def test_redis_restart_mid_run_with_a_rate_limit(
    redis_proc, redis_url, cache_url, smtp_sink, consenting, make_campaign
):
    sink, port = smtp_sink
    run, contacts = launch(consenting, make_campaign, 120)
    env = worker_env(port, cache_url, EMAIL_RATE_PER_SECOND=30)

    with celery_worker(broker_url=redis_url, queues="send", extra_env=env) as worker:
        enqueue_delivery(redis_url)
        wait_until(lambda: len(sink.messages) >= 20, timeout=60, what="delivery to start")
        redis_proc.stop()
        outage_started = time.monotonic()
        wait_until(
            lambda: any("falls back to a local bucket" in line for line in worker.output),
            timeout=20,
            what="the rate limiter to fall back",
        )
        sent_during_outage = len(sink.messages)
        redis_proc.start()
        wait_until(all_sent(run, 120), timeout=60, what="every message sent")
        total = time.monotonic() - outage_started

    assert_exactly_once(sink, run, contacts)
    assert sent_during_outage >= 20
    assert not any("Traceback" in line for line in worker.output), "a task crashed"
    assert total < 40


class Provider:
    """An SMTP server that can be stopped (connection refused) and started on the same port."""

    def __init__(self):
        self.sink = SmtpSink()
        self.port = free_port()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(SinkHandler(self.sink), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


def test_smtp_refusing_then_back_breaker_pauses_then_everyone_gets_one_message(
    redis_url, cache_url, consenting, make_campaign
):
    provider = Provider()  # down at first: connection refused
    run, contacts = launch(consenting, make_campaign, 60)
    env = worker_env(
        provider.port,
        cache_url,
        ACTIVATION_BREAKER_FAILURES=5,
        ACTIVATION_BREAKER_COOLDOWN_SECONDS=1,
        ACTIVATION_BREAKER_MAX_COOLDOWN_SECONDS=2,
    )
    try:
        with celery_worker(broker_url=redis_url, queues="send", extra_env=env) as worker:
            enqueue_delivery(redis_url)
            wait_until(
                lambda: any("circuit breaker of email open" in line for line in worker.output),
                timeout=60,
                what="the breaker to open",
            )
            time.sleep(6)  # the outage goes on (not a timing assertion)
            attempts_during_outage = DeliveryAttempt.objects.count()
            provider.start()
            started = time.monotonic()
            wait_until(all_sent(run, 60), timeout=60, what="delivery to resume")
            recovery = time.monotonic() - started
    finally:
        provider.stop()

    assert_exactly_once(provider.sink, run, contacts)
    # Paused, not hammering: a handful of probes per cooldown instead of a failed attempt per
    # message per backoff step (the pre-breaker code failed 60 rows × 5 attempts).
    assert attempts_during_outage <= 60, attempts_during_outage
    assert recovery < 20
    run.refresh_from_db()
    assert run.status == "done"


def test_worker_killed_its_rows_come_back_within_30_seconds_with_the_default_lease(
    redis_url, cache_url, smtp_sink, consenting, make_campaign
):
    sink, port = smtp_sink
    run, contacts = launch(consenting, make_campaign, 80)
    sink.block_after = 10
    env = worker_env(port, cache_url)
    del env["ACTIVATION_LEASE_SECONDS"]  # the production default: 30 s, renewed while working
    worker = dict(broker_url=redis_url, queues="send", extra_env=env)

    with celery_worker(**worker) as doomed, celery_worker(**worker):
        enqueue_delivery(redis_url, 2)
        wait_until(lambda: sink.held >= 2, timeout=90, what="both workers mid-send")
        os.kill(doomed.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        doomed.wait(timeout=20)
        wait_until(lambda: sink.dropped == 1, what="the killed worker's connection to drop")
        sink.gate.set()
        wait_until(all_sent(run, 80), timeout=60, what="the dead worker's rows to be sent")
        recovery = time.monotonic() - killed_at

    assert_exactly_once(sink, run, contacts)
    assert run.messages.filter(attempts=2).exists()  # the dead worker's rows, re-claimed
    assert recovery < 35  # lease 30 s + one delivery pass (was 5 minutes)


class SlowSinkHandler(SinkHandler):
    """A provider taking 40 ms per message, as a remote SMTP relay does."""

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        await asyncio.sleep(0.04)
        return await super().handle_DATA(server, session, envelope)


def test_consent_withdrawn_mid_batch_is_honoured_to_the_message(
    redis_url, cache_url, consenting, make_campaign
):
    sink = SmtpSink()
    controller = Controller(SlowSinkHandler(sink), hostname="127.0.0.1", port=free_port())
    controller.start()
    run, contacts = launch(consenting, make_campaign, 60)
    env = worker_env(controller.port, cache_url, ACTIVATION_BATCH_SIZE=60)
    try:
        with celery_worker(broker_url=redis_url, queues="send", extra_env=env):
            enqueue_delivery(redis_url)
            wait_until(lambda: len(sink.messages) >= 5, timeout=60, what="the batch to start")
            assert run.messages.filter(state="sending").count() > 40  # one claimed batch
            # The last 15 rows of the batch (hand-off order): due ≥ 1.5 s from now.
            late_ids = list(
                run.messages.filter(state="sending")
                .order_by("-id")
                .values_list("contact_id", flat=True)[:15]
            )
            late = [c for c in contacts if c.pk in late_ids]
            for contact in late:  # committed one by one, as the API would
                withdraw(contact, at=timezone.now())
            withdrawn_at = time.monotonic()
            wait_until(
                lambda: not run.messages.filter(state__in=["queued", "sending"]).exists(),
                timeout=60,
                what="the batch to finish",
            )
            took = time.monotonic() - withdrawn_at
    finally:
        controller.stop()

    assert_exactly_once(sink, run, contacts, withdrawn=late)
    skipped = run.messages.filter(state="skipped", skip_reason="consent_withdrawn")
    assert set(skipped.values_list("contact_id", flat=True)) == {c.pk for c in late}
    assert took < 20
    assert Counter(m["To"] for m in sink.messages).keys().isdisjoint({c.email for c in late})
