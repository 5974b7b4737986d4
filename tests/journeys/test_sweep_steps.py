"""Who the sweep sends which step to, whatever the chunk size and whichever step comes first
(on SQLite and on PostgreSQL, where a step works on its chunk's list of ids)."""

from __future__ import annotations

import pytest

from activation.journeys.enrollment import enrollments_create, workflow_advance
from activation.journeys.models import STEP_STRIDE, Workflow, WorkflowEnrollment, WorkflowStep
from activation.journeys.services import workflow_steps_sync
from activation.models import OutboxMessage
from contacts.models import Contact
from tests.activation.conftest import withdraw
from tests.factories import CampaignFactory, EventFactory, TemplateFactory
from tests.journeys.conftest import NOW, later, segment_with

pytestmark = pytest.mark.django_db

DATABASES = [pytest.param("sqlite", id="sqlite"), pytest.param("pg", marks=pytest.mark.postgres)]


@pytest.fixture(params=DATABASES)
def small_chunks(request, settings):
    """Every test here runs on both databases, two enrolments per chunk."""
    settings.JOURNEYS_ADVANCE_CHUNK = 2


def workflow_of(*steps: dict) -> Workflow:
    """A workflow (email campaign) with ``steps`` at positions 1, 2, …"""
    email = TemplateFactory(channel="email")
    campaign = CampaignFactory(channel="email", template=email, status="active")
    campaign.segments.add(segment_with([]))
    workflow = Workflow.objects.create(campaign=campaign)
    for position, fields in enumerate(steps, start=1):
        if fields["kind"] == "send":
            fields = {"channel": "email", "template": email, **fields}
        WorkflowStep.objects.create(workflow=workflow, position=position, **fields)
    workflow_steps_sync(workflow=workflow, now=NOW)
    return workflow


def enrol(workflow, people, *, at=NOW, **rules) -> None:
    enrollments_create(
        workflow=workflow,
        contacts=Contact.objects.filter(pk__in=[p.pk for p in people]),
        entered_at=at,
        **rules,
    )


def sent_steps(workflow) -> dict[int, list[int]]:
    """Outbox step numbers per contact, over the workflow's send steps."""
    runs = WorkflowStep.objects.filter(workflow=workflow).values("run_id")
    rows = OutboxMessage.objects.filter(run_id__in=runs)
    steps: dict[int, list[int]] = {}
    for contact_id, step in rows.order_by("contact_id", "step").values_list("contact_id", "step"):
        steps.setdefault(contact_id, []).append(step)
    return steps


def where(workflow) -> dict[int, tuple[str, int]]:
    """Each contact's state and position in their latest entry."""
    enrolments = WorkflowEnrollment.objects.filter(workflow=workflow).order_by("entry")
    return {e.contact_id: (e.state, e.position) for e in enrolments}


def test_first_send_step_sends_each_enrolled_contact_once_and_moves_them_on(
    small_chunks, consenting
):
    people = consenting(5)
    workflow = workflow_of({"kind": "send"}, {"kind": "wait", "wait_hours": 24})
    enrol(workflow, people)

    workflow_advance(workflow=workflow, now=NOW)
    workflow_advance(workflow=workflow, now=NOW)  # a second sweep sends nothing again

    assert sent_steps(workflow) == {p.pk: [1] for p in people}
    assert OutboxMessage.objects.filter(state="queued").count() == 5
    assert where(workflow) == {p.pk: ("active", 2) for p in people}
    assert set(WorkflowEnrollment.objects.values_list("due_at", flat=True)) == {later(24)}


def test_reentered_contact_gets_the_step_again_under_its_entry_number(small_chunks, consenting):
    again, first_time = consenting(2)
    workflow = workflow_of({"kind": "send"})
    enrol(workflow, [again], at=later(-24 * 10))
    workflow_advance(workflow=workflow, now=later(-24 * 10))
    enrol(workflow, [again, first_time], reentry="every_n_days", reentry_days=7)

    workflow_advance(workflow=workflow, now=NOW)

    assert sent_steps(workflow) == {again.pk: [1, 1 + STEP_STRIDE], first_time.pk: [1]}
    assert WorkflowEnrollment.objects.filter(state="completed").count() == 3


def test_enrolment_delay_holds_the_first_send_until_it_is_due(small_chunks, consenting):
    from datetime import timedelta

    people = consenting(3)
    workflow = workflow_of({"kind": "send"})
    enrol(workflow, people, delay=timedelta(hours=2))

    workflow_advance(workflow=workflow, now=later(1))
    assert sent_steps(workflow) == {}
    assert where(workflow) == {p.pk: ("active", 0) for p in people}

    workflow_advance(workflow=workflow, now=later(3))
    assert sent_steps(workflow) == {p.pk: [1] for p in people}


def test_first_wait_step_counts_from_entry_before_the_send(small_chunks, consenting):
    people = consenting(3)
    workflow = workflow_of({"kind": "wait", "wait_hours": 24}, {"kind": "send"})
    enrol(workflow, people)

    workflow_advance(workflow=workflow, now=NOW)
    workflow_advance(workflow=workflow, now=later(23))
    assert sent_steps(workflow) == {}
    assert where(workflow) == {p.pk: ("active", 1) for p in people}

    workflow_advance(workflow=workflow, now=later(25))
    assert sent_steps(workflow) == {p.pk: [2] for p in people}


def test_first_branch_step_sends_only_those_without_the_event(small_chunks, consenting):
    buyers, others = consenting(3), consenting(2)
    for buyer in buyers:
        EventFactory(contact=buyer, type="purchase", occurred_at=later(1))
    workflow = workflow_of(
        {"kind": "branch", "condition": "event", "condition_event_type": "purchase", "yes_goto": 3},
        {"kind": "send"},
        {"kind": "exit"},
    )
    enrol(workflow, [*buyers, *others])

    workflow_advance(workflow=workflow, now=later(2))

    assert sent_steps(workflow) == {p.pk: [2] for p in others}
    finished = dict(WorkflowEnrollment.objects.values_list("contact_id", "exit_reason"))
    assert finished == {p.pk: "exit_step" for p in [*buyers, *others]}


def test_consent_withdrawn_after_enrolment_skips_the_send(small_chunks, consenting):
    kept, withdrew = consenting(2)
    workflow = workflow_of({"kind": "send"})
    enrol(workflow, [kept, withdrew])
    withdraw(withdrew, at=later(1))

    workflow_advance(workflow=workflow, now=later(2))

    rows = dict(OutboxMessage.objects.values_list("contact_id", "state"))
    assert rows == {kept.pk: "queued", withdrew.pk: "skipped"}
    assert OutboxMessage.objects.get(contact=withdrew).skip_reason == "no_consent"
