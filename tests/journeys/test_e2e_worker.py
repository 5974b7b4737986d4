"""End to end with real Celery worker processes: the embedded filesystem broker on SQLite,
and Redis + PostgreSQL in the service-marked pass. Email goes to a real SMTP server
(aiosmtpd), SMS to a local HTTP server. Beat's decisions are driven with a controlled clock:
the crontab of the django-celery-beat row is evaluated at chosen instants and, when due, its
task is sent to the worker exactly as beat sends it (plus the instant, so the run is dated)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from celery import Celery
from django_celery_beat.models import PeriodicTask

from activation.journeys.models import CampaignSchedule, WorkflowEnrollment
from activation.models import CampaignRun, OutboxMessage
from activation.services import tracking_open_record
from tests.factories import CampaignFactory, EventFactory, TemplateFactory
from tests.journeys.conftest import NOW, grant, segment_with, welcome_workflow
from tests.workers import celery_worker, wait_until


class Broker:
    """Where the test sends tasks: the same broker the worker consumes."""

    def __init__(self, url: str, folder: Path | None = None):
        self.url, self.folder = url, folder
        self.log: list[str] = []
        self.app = Celery("journeys-test-producer", broker=url, set_as_current=False)
        if folder is not None:
            for name in ("queue", "processed", "control"):
                (folder / name).mkdir(parents=True, exist_ok=True)
            self.app.conf.broker_transport_options = {
                "data_folder_in": str(folder / "queue"),
                "data_folder_out": str(folder / "queue"),
                "processed_folder": str(folder / "processed"),
                "control_folder": str(folder / "control"),
            }

    def send(self, name: str, *args, **kwargs) -> None:
        self.app.send_task(name, args=args, kwargs=kwargs, queue="send")

    @contextlib.contextmanager
    def worker(self, env: dict):
        """A worker whose output (drained by ``celery_worker``) is kept in ``self.log``."""
        with celery_worker(
            broker_url=self.url, broker_folder=self.folder, queues="send,default", extra_env=env
        ) as process:
            self.log = process.output
            yield process


def beat_tick(broker: Broker, *, at: datetime) -> list[str]:
    """One tick of beat at ``at``: every enabled journeys PeriodicTask whose schedule is due
    (django-celery-beat's own schedule object, its clock set to ``at``) is sent, and its
    ``last_run_at`` moved to ``at``, as DatabaseScheduler does. Returns the tasks sent."""
    sent = []
    for task in PeriodicTask.objects.filter(enabled=True, task__startswith="activation.journeys"):
        schedule = task.schedule
        schedule.nowfun = lambda: at
        last = task.last_run_at or (at - timedelta(minutes=1))
        due, _next = schedule.is_due(last)
        if due:
            broker.send(task.task, *json.loads(task.args or "[]"), now=at.isoformat())
            PeriodicTask.objects.filter(pk=task.pk).update(last_run_at=at)
            sent.append(task.name)
    return sent


def worker_env(smtp_port: int, sms_url: str) -> dict[str, str]:
    return {
        "EMAIL_URL": f"smtp://127.0.0.1:{smtp_port}",
        "SMS_PROVIDER_URL": sms_url + "/v3/transactionalSMS/sms",
        "SMS_PROVIDER_API_KEY": "xkeysib-test",
        "SMS_RATE_PER_SECOND": "0",
        "ACTIVATION_LEASE_SECONDS": "2",
        "ACTIVATION_DELIVERY_TASKS": "1",
        "LOG_LEVEL": "WARNING",
    }


def contacts_with_email_and_sms(consenting, n):
    people = consenting(n)
    for person in people:
        grant(person, channel="sms")
    return people


def run_welcome_series_with_a_crash(broker: Broker, smtp_sink, sms_sink, consenting) -> None:
    sink, port = smtp_sink
    opener, silent, buyer = contacts_with_email_and_sms(consenting, 3)
    segment = segment_with([])
    workflow = welcome_workflow(segment=segment)
    from segments.signals import contact_entered_segment

    contact_entered_segment.send(
        sender=None, segment_id=segment.pk, contact_ids=[opener.pk, silent.pk, buyer.pk], at=NOW
    )
    assert WorkflowEnrollment.objects.filter(workflow=workflow).count() == 3

    env = worker_env(port, sms_sink.url)
    sink.block_after = 0  # every DATA waits for the gate
    with broker.worker(env) as first:
        broker.send("activation.journeys.tasks.advance", now=NOW.isoformat())
        wait_until(lambda: sink.held >= 1, what="the first email to reach the SMTP server")
        os.kill(first.pid, signal.SIGKILL)  # dies inside the SMTP transaction
        first.wait(timeout=20)
    wait_until(lambda: sink.dropped >= 1, what="the SMTP server to see the client die")
    sink.gate.set()
    assert sink.messages == []

    with broker.worker(env):
        # Beat restarts too: the sweep is sent again (twice), nothing is enrolled twice.
        broker.send(
            "activation.journeys.tasks.advance", now=(NOW + timedelta(minutes=1)).isoformat()
        )
        broker.send(
            "activation.journeys.tasks.advance", now=(NOW + timedelta(minutes=1)).isoformat()
        )

        def leases_expired_then_swept() -> bool:
            if len(sink.messages) == 3:
                return True
            if not OutboxMessage.objects.filter(
                state="sending", lease_expires_at__gte=datetime.now(UTC)
            ).exists():
                broker.send("activation.tasks.outbox_sweep")
            return False

        wait_until(leases_expired_then_swept, timeout=90, what="all three welcome emails")
        email_row = OutboxMessage.objects.get(contact=opener, channel="email")
        tracking_open_record(
            message_id=email_row.pk,
            user_agent="Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
            ip="192.0.2.10",
            at=NOW + timedelta(hours=2),
        )
        EventFactory(contact=buyer, type="purchase", occurred_at=NOW + timedelta(hours=3))

        broker.send(
            "activation.journeys.tasks.advance", now=(NOW + timedelta(hours=25)).isoformat()
        )
        wait_until(lambda: len(sms_sink.calls) >= 1, what="the SMS to the contact who did not open")
        broker.send(
            "activation.journeys.tasks.advance", now=(NOW + timedelta(hours=26)).isoformat()
        )
        wait_until(
            lambda: not WorkflowEnrollment.objects.filter(state="active").exists(),
            what="every contact to leave the workflow",
        )

    assert sink.recipients() == Counter({opener.email: 1, silent.email: 1, buyer.email: 1})
    assert [c.json()["recipient"] for c in sms_sink.calls] == [silent.phone.lstrip("+")]
    outcome = {e.contact_id: (e.state, e.exit_reason) for e in WorkflowEnrollment.objects.all()}
    assert outcome == {
        opener.pk: ("completed", "exit_step"),
        silent.pk: ("completed", "exit_step"),
        buyer.pk: ("exited", "goal"),
    }
    assert OutboxMessage.objects.filter(state="sent").count() == 4


@pytest.mark.django_db(transaction=True)
def test_triggered_workflow_survives_a_killed_worker_on_the_embedded_broker(
    tmp_path, smtp_sink, sms_sink, consenting
):
    run_welcome_series_with_a_crash(
        Broker("filesystem://", tmp_path / "broker"), smtp_sink, sms_sink, consenting
    )


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_triggered_workflow_survives_a_killed_worker_on_redis_and_postgresql(
    redis_url, smtp_sink, sms_sink, consenting
):
    run_welcome_series_with_a_crash(Broker(redis_url), smtp_sink, sms_sink, consenting)


@pytest.mark.django_db(transaction=True)
def test_recurring_campaign_runs_every_monday_at_nine_paris_time_once_per_slot(
    tmp_path, smtp_sink, consenting, settings
):
    from activation.journeys.services import schedule_save

    sink, port = smtp_sink
    people = consenting(2)
    campaign = CampaignFactory(channel="email", template=TemplateFactory(channel="email"))
    campaign.segments.add(segment_with(people))
    schedule_save(
        schedule=CampaignSchedule(
            campaign=campaign,
            kind="recurring",
            timezone="Europe/Paris",
            cron_minute="0",
            cron_hour="9",
            cron_day_of_week="1",
        ),
        now=NOW,
    )
    broker = Broker("filesystem://", tmp_path / "broker")
    paris = ZoneInfo("Europe/Paris")
    monday = datetime(2026, 6, 15, 9, 0, 30, tzinfo=paris)  # Monday
    with broker.worker(worker_env(port, "http://127.0.0.1:9")):
        assert beat_tick(broker, at=monday - timedelta(days=1)) == []  # Sunday
        assert beat_tick(broker, at=monday - timedelta(minutes=2)) == []
        assert len(beat_tick(broker, at=monday)) == 1
        wait_until(
            lambda: CampaignRun.objects.filter(campaign=campaign).exists(),
            what="the first Monday's run",
        )
        # Beat restarted and fires the same slot again: still one run for this Monday.
        broker.send(
            "activation.journeys.tasks.fire_schedule",
            campaign.schedule.pk,
            now=(monday + timedelta(seconds=20)).isoformat(),
        )
        assert beat_tick(broker, at=monday + timedelta(minutes=1)) == []
        wait_until(lambda: len(sink.messages) == 2, what="the first Monday's emails")
        assert len(beat_tick(broker, at=monday + timedelta(days=7))) == 1
        wait_until(lambda: len(sink.messages) == 4, what="the second Monday's emails")
        wait_until(
            lambda: CampaignSchedule.objects.get(pk=campaign.schedule.pk).occurrences.count() == 2,
            what="both occurrences recorded",
        )
    runs = CampaignRun.objects.filter(campaign=campaign).order_by("created_at")
    assert [r.created_at for r in runs] == [
        datetime(2026, 6, 15, 7, 0, 30, tzinfo=UTC),
        datetime(2026, 6, 22, 7, 0, 30, tzinfo=UTC),
    ]
    assert sink.recipients() == Counter({p.email: 2 for p in people})
    occurrences = campaign.schedule.occurrences.order_by("occurrence_at")
    assert [o.occurrence_at for o in occurrences] == [
        datetime(2026, 6, 15, 7, 0, tzinfo=UTC),
        datetime(2026, 6, 22, 7, 0, tzinfo=UTC),
    ]
