"""The workflow engine with real SMTP and a real local SMS provider (delivery in-process)."""

from __future__ import annotations

import pytest

from activation.journeys.enrollment import workflow_advance
from activation.journeys.models import WorkflowEnrollment
from activation.journeys.services import triggers_segment_entered
from activation.models import OutboxMessage
from activation.services import outbox_deliver_batch, tracking_open_record
from tests.factories import EventFactory
from tests.journeys.conftest import NOW, grant, later, segment_with, welcome_workflow

pytestmark = pytest.mark.django_db


def deliver(channel, now):
    while outbox_deliver_batch(channel=channel, limit=50, now=now).claimed:
        pass


def welcome_series_scenario(smtp_settings, sms_sink, consenting):
    opener, silent, buyer = consenting(3)
    for contact in (opener, silent, buyer):
        grant(contact, channel="sms")
    segment = segment_with([])
    workflow = welcome_workflow(segment=segment)

    triggers_segment_entered(
        segment_id=segment.pk, contact_ids=[opener.pk, silent.pk, buyer.pk], at=NOW
    )
    workflow_advance(workflow=workflow, now=NOW)
    deliver("email", NOW)
    assert smtp_settings.recipients() == {opener.email: 1, silent.email: 1, buyer.email: 1}

    email_row = OutboxMessage.objects.get(contact=opener, channel="email")
    tracking_open_record(
        message_id=email_row.pk,
        user_agent="Mozilla/5.0 (Windows NT 10.0) Firefox/128.0",
        ip="192.0.2.10",
        at=later(2),
    )
    EventFactory(contact=buyer, type="purchase", occurred_at=later(3), properties={"amount": 30})

    # Before the wait is over nothing more happens.
    workflow_advance(workflow=workflow, now=later(23))
    deliver("sms", later(23))
    assert sms_sink.calls == []

    workflow_advance(workflow=workflow, now=later(25))
    deliver("sms", later(25))
    assert [call.json()["recipient"] for call in sms_sink.calls] == [silent.phone.lstrip("+")]

    states = {e.contact_id: (e.state, e.exit_reason) for e in WorkflowEnrollment.objects.all()}
    assert states == {
        opener.pk: ("completed", "exit_step"),
        silent.pk: ("completed", "exit_step"),
        buyer.pk: ("exited", "goal"),
    }

    # A sweep repeated later sends nothing again.
    workflow_advance(workflow=workflow, now=later(48))
    deliver("email", later(48))
    deliver("sms", later(48))
    assert len(smtp_settings.messages) == 3 and len(sms_sink.calls) == 1


def test_welcome_series_emails_waits_branches_on_open_texts_non_openers_and_exits_on_purchase(
    smtp_settings, sms_sink, consenting
):
    welcome_series_scenario(smtp_settings, sms_sink, consenting)


@pytest.mark.postgres
def test_welcome_series_on_postgresql(smtp_settings, sms_sink, consenting):
    welcome_series_scenario(smtp_settings, sms_sink, consenting)


def test_sweep_in_small_chunks_moves_everyone_once(consenting, settings):
    settings.JOURNEYS_ADVANCE_CHUNK = 2
    people = consenting(5)
    segment = segment_with([])
    workflow = welcome_workflow(segment=segment)
    from activation.journeys.services import triggers_segment_entered

    triggers_segment_entered(segment_id=segment.pk, contact_ids=[p.pk for p in people], at=NOW)
    workflow_advance(workflow=workflow, now=NOW)
    workflow_advance(workflow=workflow, now=NOW)
    assert sorted(OutboxMessage.objects.values_list("contact_id", flat=True)) == sorted(
        p.pk for p in people
    )
    assert set(WorkflowEnrollment.objects.values_list("position", flat=True)) == {2}


def test_wait_until_a_time_of_day_uses_each_contacts_zone(consenting):
    from datetime import UTC, datetime, time

    from activation.journeys.models import WorkflowStep

    paris, tokyo = (consenting(1, timezone=z)[0] for z in ("Europe/Paris", "Asia/Tokyo"))
    segment = segment_with([])
    workflow = welcome_workflow(segment=segment)
    WorkflowStep.objects.filter(workflow=workflow, position=2).update(
        wait_hours=0, wait_until=time(9, 0)
    )
    from activation.journeys.services import triggers_segment_entered

    triggers_segment_entered(segment_id=segment.pk, contact_ids=[paris.pk, tokyo.pk], at=NOW)
    workflow_advance(workflow=workflow, now=NOW)
    due = dict(WorkflowEnrollment.objects.values_list("contact_id", "due_at"))
    assert due == {
        paris.pk: datetime(2026, 6, 11, 7, 0, tzinfo=UTC),  # 09:00 in Paris the next day
        tokyo.pk: datetime(2026, 6, 11, 0, 0, tzinfo=UTC),  # 09:00 in Tokyo the next day
    }


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_enrolments_of_the_same_contacts_at_once_enrol_each_contact_once(consenting):
    """Two triggers enrolling the same segment at the same time (two workers): every contact
    ends up with one active enrolment, and neither worker fails on the other's rows."""
    import threading

    from django.db import connections
    from django.utils import timezone

    from activation.journeys.enrollment import enrollments_create
    from contacts.models import Contact

    people = consenting(300)
    workflow = welcome_workflow(segment=segment_with([]))
    ids = [p.pk for p in people]
    barrier = threading.Barrier(2)
    counts: list[int] = []
    errors: list[BaseException] = []

    def enrol(order):
        try:
            barrier.wait()
            counts.append(
                enrollments_create(
                    workflow=workflow,
                    contacts=Contact.objects.filter(pk__in=order),
                    entered_at=timezone.now(),
                )
            )
        except BaseException as exc:  # noqa: BLE001 — reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=enrol, args=(o,)) for o in (ids, ids[::-1])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sum(counts) == 300
    rows = WorkflowEnrollment.objects.filter(workflow=workflow)
    assert rows.count() == 300
    assert set(rows.values_list("entry", "state").distinct()) == {(1, "active")}
