"""Approval, pause / resume / cancel, launch now, local send time, event triggers and
re-entry rules."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.core.exceptions import PermissionDenied, ValidationError

from activation.journeys.enrollment import workflow_advance
from activation.journeys.models import (
    CampaignApproval,
    CampaignSchedule,
    ScheduledOccurrence,
    Workflow,
    WorkflowEnrollment,
    WorkflowStep,
)
from activation.journeys.services import (
    approval_decide,
    approval_request,
    campaign_cancel,
    campaign_launch_now,
    campaign_pause,
    campaign_resume,
    schedule_save,
    triggers_events,
    triggers_segment_entered,
)
from activation.models import OutboxMessage
from ops.roles import roles_sync
from tests.factories import CampaignFactory, EventFactory
from tests.journeys.conftest import NOW, later, segment_with, welcome_workflow

pytestmark = pytest.mark.django_db


def member_of(role: str, name: str) -> User:
    roles_sync()
    user = User.objects.create_user(name, f"{name}@example.fr", "x", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return User.objects.get(pk=user.pk)  # fresh permission cache


def test_large_campaign_needs_approval_by_someone_else_who_sees_the_dry_run(consenting, settings):
    settings.JOURNEYS_APPROVAL_THRESHOLD = 2
    people = consenting(3)
    campaign = CampaignFactory()
    campaign.segments.add(segment_with(people))
    author = member_of("Marketer", "alice")

    with pytest.raises(ValidationError, match="needs an approval first"):
        campaign_launch_now(campaign=campaign, now=NOW, user=author)

    request = approval_request(campaign=campaign, user=author, now=NOW)
    assert (request.audience_size, request.eligible) == (3, 3)
    assert request.report["eligible"] == 3

    with pytest.raises(PermissionDenied, match="someone else"):
        approval_decide(approval=request, user=author, approve=True, now=NOW)
    with pytest.raises(PermissionDenied, match="not allowed"):
        approval_decide(approval=request, user=member_of("DPO", "dora"), approve=True, now=NOW)
    approval_decide(approval=request, user=member_of("Analyst", "anna"), approve=True, now=NOW)

    occurrence = campaign_launch_now(campaign=campaign, now=NOW, user=author)
    assert occurrence.outcome == "launched"
    assert OutboxMessage.objects.filter(run=occurrence.run, state="queued").count() == 3


def test_a_second_marketer_may_approve(consenting, settings):
    settings.JOURNEYS_APPROVAL_THRESHOLD = 0
    campaign = CampaignFactory()
    campaign.segments.add(segment_with(consenting(1)))
    request = approval_request(campaign=campaign, user=member_of("Marketer", "alice"), now=NOW)
    approval_decide(approval=request, user=member_of("Marketer", "bob"), approve=True, now=NOW)
    assert CampaignApproval.objects.get().status == "approved"


def test_approval_page_shows_the_dry_run_report_and_approves(client, consenting, settings):
    settings.JOURNEYS_APPROVAL_THRESHOLD = 0
    campaign = CampaignFactory()
    campaign.segments.add(segment_with(consenting(2)))
    request = approval_request(campaign=campaign, user=member_of("Marketer", "alice"), now=NOW)
    client.force_login(member_of("Analyst", "anna"))
    url = f"/admin/journeys/campaignapproval/{request.pk}/change/"
    page = client.get(url).content.decode()
    assert "approval-report" in page and "Would receive" in page and "Approve this campaign" in page
    client.post(url, {"comment": "OK", "_approve": "1"})
    request.refresh_from_db()
    assert (request.status, request.decided_by.username) == ("approved", "anna")


def test_scheduled_occurrence_waits_for_approval_instead_of_sending(consenting, settings):
    from activation.journeys.services import schedule_fire

    settings.JOURNEYS_APPROVAL_THRESHOLD = 0
    campaign = CampaignFactory()
    campaign.segments.add(segment_with(consenting(1)))
    schedule = schedule_save(
        schedule=CampaignSchedule(campaign=campaign, kind="one_off", run_at=later(1)), now=NOW
    )
    occurrence = schedule_fire(schedule=schedule, now=later(1) + timedelta(seconds=5))
    assert occurrence.outcome == "needs_approval" and occurrence.run is None
    assert not OutboxMessage.objects.exists()


def test_pause_holds_queued_messages_resume_releases_them_cancel_withdraws(consenting):
    from activation.services import campaign_run_launch

    campaign = CampaignFactory()
    campaign.segments.add(segment_with(consenting(2)))
    run = campaign_run_launch(campaign=campaign, now=NOW)
    assert campaign_pause(campaign=campaign, now=NOW) == 2
    assert not OutboxMessage.objects.filter(next_attempt_at__lte=later(24 * 365)).exists()
    with pytest.raises(ValidationError, match="paused"):
        campaign_launch_now(campaign=campaign, now=NOW)

    assert campaign_resume(campaign=campaign, now=NOW) == 2
    assert set(OutboxMessage.objects.values_list("next_attempt_at", flat=True)) == {NOW}

    assert campaign_cancel(campaign=campaign, now=NOW) == 2
    assert set(OutboxMessage.objects.values_list("state", flat=True)) == {"cancelled"}
    run.refresh_from_db()
    assert run.status == "cancelled"


def test_paused_workflow_does_not_move_and_cancel_ends_enrolments(consenting):
    people = consenting(2)
    segment = segment_with([])
    workflow = welcome_workflow(segment=segment)
    triggers_segment_entered(segment_id=segment.pk, contact_ids=[p.pk for p in people], at=NOW)
    campaign_pause(campaign=workflow.campaign, now=NOW)
    workflow_advance(workflow=workflow, now=NOW)
    assert not OutboxMessage.objects.exists()
    # Entries while paused are not taken.
    extra = consenting(1)[0]
    triggers_segment_entered(segment_id=segment.pk, contact_ids=[extra.pk], at=NOW)
    assert WorkflowEnrollment.objects.count() == 2

    campaign_resume(campaign=workflow.campaign, now=NOW)
    workflow_advance(workflow=workflow, now=NOW)
    assert OutboxMessage.objects.filter(state="queued").count() == 2
    assert campaign_cancel(campaign=workflow.campaign, now=NOW) == 2
    assert set(WorkflowEnrollment.objects.values_list("state", "exit_reason")) == {
        ("exited", "cancelled")
    }


def test_send_at_the_contacts_local_time(consenting):
    from activation.journeys.services import occurrence_launch

    paris, tokyo, new_york = (
        consenting(1, timezone=zone)[0]
        for zone in ("Europe/Paris", "Asia/Tokyo", "America/New_York")
    )
    campaign = CampaignFactory()
    campaign.segments.add(segment_with([paris, tokyo, new_york]))
    schedule = schedule_save(
        schedule=CampaignSchedule(
            campaign=campaign, kind="one_off", run_at=later(1), local_send_time=time(10, 0)
        ),
        now=NOW,
    )
    # Launched 11:00 UTC on 10 June: 13:00 in Paris, 20:00 in Tokyo, 07:00 in New York.
    occurrence = occurrence_launch(schedule=schedule, occurrence_at=later(1), now=later(1))
    due = dict(
        OutboxMessage.objects.filter(run=occurrence.run).values_list(
            "contact_id", "next_attempt_at"
        )
    )
    assert due == {
        paris.pk: datetime(2026, 6, 11, 8, 0, tzinfo=UTC),
        tokyo.pk: datetime(2026, 6, 11, 1, 0, tzinfo=UTC),
        new_york.pk: datetime(2026, 6, 10, 14, 0, tzinfo=UTC),
    }
    assert set(OutboxMessage.objects.values_list("state", flat=True)) == {"queued"}


def abandoned_cart(reentry="once", reentry_days=0):
    from tests.factories import TemplateFactory

    campaign = CampaignFactory(name="Panier abandonné")
    Workflow.objects.create(campaign=campaign)
    return schedule_save(
        schedule=CampaignSchedule(
            campaign=campaign,
            kind="event",
            trigger_event_type="cart_updated",
            unless_event_type="purchase",
            delay_hours=2,
            reentry=reentry,
            reentry_days=reentry_days,
        ),
        now=NOW,
    ), TemplateFactory


def test_abandoned_cart_sends_only_without_purchase_within_two_hours(consenting):
    schedule, _ = abandoned_cart()
    workflow = Workflow.objects.get(campaign=schedule.campaign)
    assert list(workflow.steps.values_list("kind", flat=True)) == ["send"]
    hesitant, buyer = consenting(2)
    for person in (hesitant, buyer):
        EventFactory(contact=person, type="cart_updated", occurred_at=NOW)
    triggers_events(contact_ids=[hesitant.pk, buyer.pk], event_types={"cart_updated"}, now=NOW)
    EventFactory(contact=buyer, type="purchase", occurred_at=later(1))

    workflow_advance(workflow=workflow, now=later(1.9))
    assert not OutboxMessage.objects.exists()
    workflow_advance(workflow=workflow, now=later(2))
    assert list(OutboxMessage.objects.values_list("contact_id", flat=True)) == [hesitant.pk]
    assert WorkflowEnrollment.objects.get(contact=buyer).exit_reason == "goal"


def test_reentry_once_ever_versus_every_n_days(consenting):
    schedule, _ = abandoned_cart()
    person = consenting(1)[0]

    def cart(at):
        EventFactory(contact=person, type="cart_updated", occurred_at=at)
        return triggers_events(contact_ids=[person.pk], event_types={"cart_updated"}, now=at)

    assert cart(NOW) == {schedule.pk: 1}
    assert cart(later(1)) == {schedule.pk: 0}  # already in the workflow
    workflow_advance(workflow=schedule.campaign.workflow, now=later(3))
    assert cart(later(24 * 10)) == {schedule.pk: 0}  # once ever

    schedule.reentry, schedule.reentry_days = "every_n_days", 7
    schedule.save()
    assert cart(later(24 * 11)) == {schedule.pk: 1}
    assert sorted(WorkflowEnrollment.objects.values_list("entry", flat=True)) == [1, 2]
    workflow_advance(workflow=schedule.campaign.workflow, now=later(24 * 11 + 3))
    steps = sorted(OutboxMessage.objects.values_list("step", flat=True))
    assert steps == [1, 1001]  # the unique (run, contact, step) key holds per entry


def test_launch_now_twice_in_the_same_second_launches_once(consenting):
    campaign = CampaignFactory()
    campaign.segments.add(segment_with(consenting(2)))
    first = campaign_launch_now(campaign=campaign, now=NOW)
    again = campaign_launch_now(campaign=campaign, now=NOW + timedelta(microseconds=300))
    assert first.pk == again.pk
    assert ScheduledOccurrence.objects.count() == 1
    assert OutboxMessage.objects.count() == 2


def test_demo_campaigns_are_created_once(default_purposes):
    from activation.journeys.demo import demo_campaigns_create
    from ops.signals import demo_ready

    demo_ready.send(sender=None)
    demo_ready.send(sender=None)
    schedules = CampaignSchedule.objects.order_by("campaign__name")
    assert [(s.campaign.name, s.kind) for s in schedules] == [
        ("Reconquête des acheteurs inactifs", "recurring"),
        ("Série de bienvenue", "segment_entry"),
        ("VIP — avant-première", "one_off"),
    ]
    assert WorkflowStep.objects.filter(workflow__campaign__name="Série de bienvenue").count() == 5
    assert demo_campaigns_create(now=NOW) == []
