"""Issue 18: delivery tells the truth and degrades instead of crashing — run_campaign's
outcome line and exit status, the rate limiter without Redis, the per-slice consent re-check,
the circuit breaker, time-budgeted retries and "done with failures"."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from activation.models import CampaignRun, OutboxMessage, RunStatus
from tests.activation.conftest import quiet_hours_elsewhere
from tests.services import free_port


@pytest.fixture(autouse=True)
def _empty_cache():
    """Breaker state and counters live in the cache: each test starts from a closed breaker."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def unreachable_broker():
    """The Celery app pointed at a Redis port nobody listens on (as when Redis is down)."""
    from config.celery import app
    from tests.workers import reset_producer_pools

    before = app.conf.broker_url
    app.conf.broker_url = f"redis://127.0.0.1:{free_port()}/0"
    app.conf.broker_connection_timeout = 1
    reset_producer_pools(app)
    yield
    app.conf.broker_url = before
    reset_producer_pools(app)


def test_run_campaign_with_the_broker_down_says_the_run_exists_and_exits_3(
    consenting, make_campaign, unreachable_broker
):
    campaign = make_campaign(consenting(3), **quiet_hours_elsewhere())
    out, err = StringIO(), StringIO()

    with pytest.raises(SystemExit) as exit_info:
        call_command("run_campaign", campaign.pk, stdout=out, stderr=err)

    run = CampaignRun.objects.get(campaign=campaign)
    assert exit_info.value.code == 3
    first_line = err.getvalue().splitlines()[0]
    assert first_line.startswith(f"Run #{run.pk} of {campaign.name!r} created: audience 3, 3 to")
    assert "broker is unreachable" in first_line and "Do NOT launch it again" in first_line
    assert f"deliver_outbox {campaign.channel}" in first_line
    assert "Traceback" not in err.getvalue() + out.getvalue()
    assert run.messages.filter(state="queued").count() == 3  # kept for the sweep / a resume


def test_deliver_outbox_here_resumes_a_run_created_while_the_broker_was_down(
    consenting, make_campaign, unreachable_broker
):
    from django.core import mail

    contacts = consenting(2)
    campaign = make_campaign(contacts, **quiet_hours_elsewhere())
    with pytest.raises(SystemExit):
        call_command("run_campaign", campaign.pk, stdout=StringIO(), stderr=StringIO())
    out = StringIO()

    call_command("deliver_outbox", "email", "--here", stdout=out)

    assert "sent 2" in out.getvalue()
    assert sorted(m.to[0] for m in mail.outbox) == sorted(c.email for c in contacts)
    assert CampaignRun.objects.get(campaign=campaign).status == RunStatus.DONE


def test_run_campaign_deliver_reports_retries_as_not_done(smtp_settings, consenting, make_campaign):
    ok, later = consenting(2)
    smtp_settings.rcpt_replies[later.email] = ["451 try later"]
    campaign = make_campaign([ok, later], **quiet_hours_elsewhere())
    err = StringIO()

    with pytest.raises(SystemExit) as exit_info:
        call_command("run_campaign", campaign.pk, "--deliver", stdout=StringIO(), stderr=err)

    assert exit_info.value.code == 3
    line = err.getvalue().splitlines()[0]
    assert "NOT finished: sent 1, failed 0" in line and "1 still waiting for a retry" in line
    assert CampaignRun.objects.get(campaign=campaign).status == RunStatus.SENDING


def test_a_run_with_failed_rows_ends_done_with_failures_visibly(
    smtp_settings, consenting, make_campaign, admin_client
):
    ok, never = consenting(2)
    smtp_settings.rcpt_replies[never.email] = ["550 no such user"]
    campaign = make_campaign([ok, never], **quiet_hours_elsewhere())
    err = StringIO()

    with pytest.raises(SystemExit) as exit_info:
        call_command("run_campaign", campaign.pk, "--deliver", stdout=StringIO(), stderr=err)

    run = CampaignRun.objects.get(campaign=campaign)
    assert exit_info.value.code == 4
    assert "done with failures: sent 1, failed 1" in err.getvalue()
    assert run.status == RunStatus.DONE_WITH_FAILURES
    page = admin_client.get("/admin/activation/campaignrun/")
    assert "Done with failures" in page.content.decode()


def test_run_campaign_with_the_database_down_says_no_run_was_created(monkeypatch):
    from django.core.management import CommandError
    from django.db import OperationalError

    from activation.models import Campaign

    def refuse(*args, **kwargs):
        raise OperationalError("connection to server at 127.0.0.1 failed: Connection refused")

    monkeypatch.setattr(Campaign.objects, "filter", refuse)
    with pytest.raises(CommandError, match="No run created: the database is unreachable"):
        call_command("run_campaign", 1)


def test_retryable_failures_are_retried_for_the_time_window_not_a_count(
    settings, smtp_settings, consenting, make_campaign
):
    from activation.services import campaign_run_launch, outbox_deliver_batch
    from tests.activation.conftest import NOW

    settings.ACTIVATION_MAX_ATTEMPTS = 0
    settings.ACTIVATION_RETRY_WINDOW_HOURS = 2
    [later] = consenting(1)
    smtp_settings.rcpt_replies[later.email] = ["451 try later"] * 10
    run = campaign_run_launch(campaign=make_campaign([later]), now=NOW)
    message = run.messages.get()
    start = timezone.now()
    for attempt in range(8):  # far more than the old 5-attempt limit, still inside 2 hours
        OutboxMessage.objects.filter(pk=message.pk).update(next_attempt_at=start)
        outbox_deliver_batch(channel="email", limit=10, now=start + timedelta(minutes=attempt))
    message.refresh_from_db()
    assert (message.state, message.attempts) == ("deferred", 8)
    # Past the window, the next retryable failure gives up.
    message.attempt_log.update(at=start - timedelta(hours=3))
    OutboxMessage.objects.filter(pk=message.pk).update(next_attempt_at=start)
    outbox_deliver_batch(channel="email", limit=10, now=start)
    message.refresh_from_db()
    assert message.state == "failed"


@pytest.mark.django_db
def test_open_breaker_and_old_queue_are_reported(client, settings, consenting, make_campaign):
    from activation.breaker import breaker_record
    from activation.services import campaign_run_launch
    from tests.activation.conftest import NOW

    settings.ACTIVATION_BREAKER_FAILURES = 3
    from tests.ops.test_readiness import alive

    alive()
    campaign_run_launch(campaign=make_campaign(consenting(1)), now=NOW)  # due since NOW
    breaker_record("email", failures=3, successes=0)

    body = client.get("/readyz").json()

    assert body["ready"] is False
    assert body["checks"]["providers"]["channels"]["email"]["state"] == "open"
    assert body["checks"]["outbox"]["ok"] is False
    assert body["checks"]["outbox"]["oldest_due_age_seconds"]["email"] > 3600


def test_rate_limiter_falls_back_to_a_local_bucket_when_redis_is_down_then_shares_again(
    settings, redis_url
):
    from activation import ratelimit

    settings.ACTIVATION_RATE_LIMITS = {"email": 50.0}
    settings.ACTIVATION_DELIVERY_TASKS = 5  # fallback share: 50 / 5 = 10 per second here
    settings.ACTIVATION_RATE_LIMIT_RETRY_SECONDS = 0
    settings.ACTIVATION_RATE_LIMIT_REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    ratelimit._fallback.clear()

    waited = sum(ratelimit.rate_limit_acquire("email", 1) for _ in range(12))  # no exception

    # Burst of 10 from the local bucket, then 2 more at 10/s: about 0.2 s of waiting.
    assert 0.1 <= waited <= 1.5
    assert ratelimit._fallback["email"].rate == 10.0
    settings.ACTIVATION_RATE_LIMIT_REDIS_URL = redis_url  # Redis answers again
    assert ratelimit.rate_limit_acquire("email", 1) == 0.0
    assert settings.ACTIVATION_RATE_LIMIT_REDIS_URL not in ratelimit._redis_down_until


def test_breaker_opens_after_failures_in_a_row_and_hands_back_the_unsent_rows(
    settings, smtp_settings, consenting, make_campaign
):
    from activation.breaker import breaker_wait_seconds
    from activation.services import campaign_run_launch, outbox_deliver_batch
    from tests.activation.conftest import NOW

    settings.ACTIVATION_BREAKER_FAILURES = 3
    settings.ACTIVATION_BREAKER_COOLDOWN_SECONDS = 60
    people = consenting(8)
    for person in people:
        smtp_settings.rcpt_replies[person.email] = ["421 service not available"]
    run = campaign_run_launch(campaign=make_campaign(people), now=NOW)

    stats = outbox_deliver_batch(channel="email", limit=10)

    assert (stats.retried, stats.released) == (3, 5)
    assert 55 < stats.paused_for <= 60 and breaker_wait_seconds("email") > 55
    assert run.messages.filter(state="deferred", attempts=1).count() == 3
    # Handed back untouched (the provider never saw them), due when the breaker closes.
    assert run.messages.filter(state="queued", attempts=0, claim_token="").count() == 5
    assert len(smtp_settings.messages) == 0
    # While open, nothing is claimed.
    assert outbox_deliver_batch(channel="email", limit=10).claimed == 0


@pytest.mark.django_db(transaction=True)
def test_the_lease_is_renewed_while_a_batch_is_held(settings, consenting, make_campaign):
    from activation.delivery import LeaseKeeper, outbox_claim, outbox_leases_recover
    from activation.services import campaign_run_launch
    from tests.activation.conftest import NOW
    from tests.workers import wait_until

    settings.ACTIVATION_LEASE_SECONDS = 0.9  # renewed every 0.3 s
    run = campaign_run_launch(campaign=make_campaign(consenting(3)), now=NOW)
    token = outbox_claim(channel="email", limit=10, now=timezone.now())
    first = run.messages.values_list("lease_expires_at", flat=True).first()

    with LeaseKeeper(token):
        wait_until(
            lambda: (
                run.messages.filter(lease_expires_at__gt=first + timedelta(seconds=1)).count() == 3
            ),
            timeout=10,
            what="the lease to be renewed",
        )
        assert outbox_leases_recover(now=first + timedelta(seconds=0.5)) == 0
    # Once the holder is gone, the rows come back one lease later.
    assert outbox_leases_recover(now=timezone.now() + timedelta(seconds=5)) == 3


def test_consent_rechecked_before_every_message_when_configured_so(
    settings, smtp_settings, consenting, make_campaign
):
    from activation.services import campaign_run_launch, outbox_deliver_batch
    from tests.activation.conftest import NOW

    settings.ACTIVATION_CONSENT_RECHECK_SLICE = 1
    settings.ACTIVATION_CONSENT_RECHECK_MS = 0  # every hand-off re-checks (and still ends)
    people = consenting(4)
    from tests.activation.conftest import withdraw

    withdraw(people[2], at=timezone.now())  # after the snapshot, before the hand-off
    run = campaign_run_launch(campaign=make_campaign(people), now=NOW)

    stats = outbox_deliver_batch(channel="email", limit=10)

    assert (stats.sent, stats.skipped) == (3, 1)
    assert {m["To"] for m in smtp_settings.messages} == {p.email for p in people} - {
        people[2].email
    }
    assert run.messages.get(contact=people[2]).skip_reason == "consent_withdrawn"


@pytest.mark.django_db(transaction=True)
def test_a_starting_worker_restarts_due_delivery_without_beat(
    tmp_path, smtp_sink, consenting, make_campaign
):
    """Rows queued while no task exists (broker lost them, beat dead): the worker that starts
    sweeps and delivers them; nothing else sends a task."""
    from activation.services import campaign_run_launch
    from tests.activation.conftest import NOW
    from tests.workers import celery_worker, filesystem_broker_folder, wait_until

    sink, port = smtp_sink
    contacts = consenting(3)
    run = campaign_run_launch(campaign=make_campaign(contacts), now=NOW)  # no task enqueued
    folder, _options = filesystem_broker_folder(tmp_path)
    env = {"EMAIL_URL": f"smtp://127.0.0.1:{port}", "EMAIL_RATE_PER_SECOND": "0"}

    with celery_worker(
        broker_url="filesystem://", broker_folder=folder, queues="send", extra_env=env
    ):
        wait_until(
            lambda: run.messages.filter(state="sent").count() == 3,
            timeout=60,
            what="the starting worker to deliver the due rows",
        )

    assert sorted(sink.recipients()) == sorted(c.email for c in contacts)
