"""Bad input is refused at save with a message (admin forms), and the admin pages show what
marketers need: calendar with audiences and collisions, per-step funnel."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from activation.journeys.models import CampaignSchedule, Workflow, WorkflowStep
from activation.journeys.services import schedule_save
from activation.journeys.validation import StepSpec, template_unknown_variables, workflow_problems
from activation.models import TemplateVersion
from tests.factories import CampaignFactory, TemplateFactory
from tests.journeys.conftest import segment_with, welcome_workflow

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(client):
    client.force_login(User.objects.create_superuser("boss", "boss@example.fr", "x"))
    return client


def step(position, kind, **fields):
    return StepSpec(position=position, kind=kind, **fields)


def test_workflow_with_a_loop_and_no_way_out_is_refused(default_purposes):
    email = TemplateFactory(channel="email")
    problems = workflow_problems(
        [
            step(1, "send", channel="email", template=email),
            step(2, "wait", wait_hours=24),
            step(3, "branch", condition="converted", yes_goto=1, no_goto=1),
        ]
    )
    assert any("no exit from step" in p for p in problems)


def test_unreachable_step_and_loop_without_wait_are_refused(default_purposes):
    email = TemplateFactory(channel="email")
    unreachable = workflow_problems(
        [
            step(1, "send", channel="email", template=email),
            step(2, "exit"),
            step(3, "send", channel="email", template=email),
        ]
    )
    assert unreachable == ["Step 3 can never be reached (no step leads to it)."]
    spinning = workflow_problems(
        [
            step(1, "send", channel="email", template=email),
            step(2, "branch", condition="converted", yes_goto=3, no_goto=1),
            step(3, "exit"),
        ]
    )
    assert spinning == ["Steps loop back without a wait step in between (step 1)."]


def test_template_with_a_misspelt_variable_is_reported_with_its_name(default_purposes):
    template = TemplateFactory(channel="email")
    TemplateVersion.objects.filter(template=template, locale="fr").update(
        subject="Bonjour {{ contact.frist_name }} {{ contact.attributes.loyalty_tier }}"
    )
    assert template_unknown_variables(template) == {"fr.subject": ["contact.frist_name"]}
    problems = workflow_problems([step(1, "send", channel="email", template=template)])
    assert problems == [
        f"Step 1: template “{template}” (fr.subject) uses unknown variables: contact.frist_name."
    ]


def test_opened_branch_needs_an_earlier_email_step(default_purposes):
    sms = TemplateFactory(channel="sms")
    problems = workflow_problems(
        [
            step(1, "send", channel="sms", template=sms),
            step(2, "branch", condition="opened", condition_step=1),
        ]
    )
    assert problems == ["Step 2: only emails have opens; use “clicked” for SMS and push."]


def test_admin_refuses_a_one_off_schedule_in_the_past_and_shows_local_and_utc(
    admin, default_purposes
):
    campaign = CampaignFactory()
    url = "/admin/journeys/campaignschedule/add/"
    form = {
        "campaign": campaign.pk,
        "kind": "one_off",
        "state": "active",
        "timezone": "Europe/Paris",
        "run_at_0": "2020-01-01",
        "run_at_1": "10:00:00",
        "cron_minute": "0",
        "cron_hour": "9",
        "cron_day_of_week": "1",
        "cron_day_of_month": "*",
        "cron_month_of_year": "*",
        "delay_hours": "0",
        "reentry": "once",
        "reentry_days": "30",
        "occurrences-TOTAL_FORMS": "0",
        "occurrences-INITIAL_FORMS": "0",
    }
    page = admin.post(url, form)
    assert page.status_code == 200
    assert (
        "This date is in the past (2020-01-01 10:00, 2020-01-01 09:00 UTC)" in page.content.decode()
    )
    assert not CampaignSchedule.objects.exists()

    future = timezone.now().astimezone(UTC) + timedelta(days=3)
    form.update(run_at_0=future.strftime("%Y-%m-%d"), run_at_1="10:00:00")
    assert admin.post(url, form).status_code == 302
    schedule = CampaignSchedule.objects.get()
    assert schedule.run_at.astimezone(UTC).hour in (8, 9)  # 10:00 in Paris (summer / winter)
    assert schedule.periodic_task.clocked is not None and schedule.periodic_task.one_off
    page = admin.get(f"/admin/journeys/campaignschedule/{schedule.pk}/change/").content.decode()
    assert "Europe/Paris (" in page and "UTC)" in page


def test_admin_refuses_a_workflow_with_an_unreachable_step(admin, default_purposes):
    campaign = CampaignFactory()
    email = campaign.template
    base = {
        "campaign": campaign.pk,
        "goal_event_type": "purchase",
        "steps-TOTAL_FORMS": "3",
        "steps-INITIAL_FORMS": "0",
    }
    rows = [
        {"position": "1", "kind": "send", "channel": "email", "template": email.pk},
        {"position": "2", "kind": "exit"},
        {"position": "3", "kind": "send", "channel": "email", "template": email.pk},
    ]
    for i, row in enumerate(rows):
        base.update({f"steps-{i}-{k}": v for k, v in row.items()})
    page = admin.post("/admin/journeys/workflow/add/", base)
    assert page.status_code == 200
    assert "Step 3 can never be reached" in page.content.decode()
    assert not Workflow.objects.exists()

    base["steps-TOTAL_FORMS"] = "2"
    assert admin.post("/admin/journeys/workflow/add/", base).status_code == 302
    step_one = WorkflowStep.objects.get(position=1)
    assert step_one.step_campaign == campaign  # same channel and template: the campaign itself


def test_calendar_lists_next_runs_with_audience_and_flags_same_day_overlaps(
    admin, default_purposes, consenting
):
    people = consenting(3)
    shared = segment_with(people)
    now = timezone.now()
    # Both one-off runs on the same Paris day (10:00 and 11:00, two days ahead), whatever the
    # time the test runs at ("now + 2 days + 1 h/2 h" straddled Paris midnight after 21:00 UTC).
    paris = ZoneInfo("Europe/Paris")
    day = (now.astimezone(paris) + timedelta(days=2)).replace(
        hour=9, minute=0, second=0, microsecond=0
    )
    for name in ("Soldes d'été", "Newsletter juin"):
        campaign = CampaignFactory(name=name)
        campaign.segments.add(shared)
        schedule_save(
            schedule=CampaignSchedule(
                campaign=campaign,
                kind="one_off",
                timezone="Europe/Paris",
                run_at=day + timedelta(hours=1 if name.startswith("S") else 2),
            ),
            now=now,
        )
    weekly = CampaignFactory(name="Hebdo", channel="sms", template=TemplateFactory(channel="sms"))
    weekly.segments.add(segment_with(people[:1]))
    schedule_save(
        schedule=CampaignSchedule(
            campaign=weekly, kind="recurring", cron_hour="9", cron_day_of_week="1"
        ),
        now=now,
    )
    page = admin.get("/admin/journeys/campaignschedule/calendar/").content.decode()
    assert page.count("Hebdo") in (4, 5)  # every Monday of the next 30 days
    assert "Soldes d&#x27;été" in page and "Newsletter juin" in page
    assert "⚠ Newsletter juin (3)" in page and "⚠ Soldes d&#x27;été (3)" in page
    assert page.count("collision") == 2


def test_funnel_page_counts_contacts_per_step(admin, consenting, smtp_settings):
    from activation.journeys.enrollment import workflow_advance
    from activation.journeys.services import triggers_segment_entered
    from tests.journeys.conftest import NOW

    people = consenting(4)
    segment = segment_with([])
    workflow = welcome_workflow(segment=segment)
    triggers_segment_entered(segment_id=segment.pk, contact_ids=[p.pk for p in people], at=NOW)
    workflow_advance(workflow=workflow, now=NOW)
    page = admin.get(f"/admin/journeys/workflow/{workflow.pk}/funnel/").content.decode()
    assert '<tr class="funnel-step" data-position="2">' in page
    waiting_at_wait = page.split('data-position="2">')[1].split('class="waiting">')[1]
    assert waiting_at_wait.startswith("4<")
    messages_at_send = page.split('data-position="1">')[1].split("</tr>")[0]
    assert ">4<" in messages_at_send
    assert "4 enrolments in total." in page


def test_schedule_admin_warns_about_an_empty_audience(admin, default_purposes):
    campaign = CampaignFactory()
    campaign.segments.add(segment_with([]))
    response = admin.post(
        "/admin/journeys/campaignschedule/add/",
        {
            "campaign": campaign.pk,
            "kind": "recurring",
            "state": "active",
            "timezone": "Europe/Paris",
            "cron_minute": "0",
            "cron_hour": "9",
            "cron_day_of_week": "1",
            "cron_day_of_month": "*",
            "cron_month_of_year": "*",
            "delay_hours": "0",
            "reentry": "once",
            "reentry_days": "30",
            "occurrences-TOTAL_FORMS": "0",
            "occurrences-INITIAL_FORMS": "0",
        },
        follow=True,
    )
    assert "is empty right now: nobody would receive it" in response.content.decode()
    task = CampaignSchedule.objects.get().periodic_task
    assert (task.crontab.hour, task.crontab.day_of_week, str(task.crontab.timezone)) == (
        "9",
        "1",
        "Europe/Paris",
    )
    assert task.task == "activation.journeys.tasks.fire_schedule" and task.enabled


def test_crontab_occurrences_follow_the_schedule_zone_across_daylight_saving():
    from zoneinfo import ZoneInfo

    from celery.schedules import crontab

    from activation.journeys.selectors import crontab_occurrences

    found = crontab_occurrences(
        crontab(minute="0", hour="9", day_of_week="1"),
        ZoneInfo("Europe/Paris"),
        start=datetime(2026, 10, 19, tzinfo=UTC),
        end=datetime(2026, 11, 3, tzinfo=UTC),
    )
    assert found == [
        datetime(2026, 10, 19, 7, 0, tzinfo=UTC),  # summer time
        datetime(2026, 10, 26, 8, 0, tzinfo=UTC),  # winter time
        datetime(2026, 11, 2, 8, 0, tzinfo=UTC),
    ]


def test_workflow_step_run_shows_its_audience_beside_sent_and_skipped(
    admin, consenting, smtp_settings
):
    from activation.journeys.enrollment import workflow_advance
    from activation.journeys.services import triggers_segment_entered
    from activation.services import outbox_deliver_batch
    from tests.factories import ContactFactory
    from tests.journeys.conftest import NOW

    people = consenting(19) + ContactFactory.create_batch(4)  # 4 without consent
    segment = segment_with([])
    workflow = welcome_workflow(segment=segment)
    triggers_segment_entered(segment_id=segment.pk, contact_ids=[p.pk for p in people], at=NOW)
    workflow_advance(workflow=workflow, now=NOW)
    while outbox_deliver_batch(channel="email", limit=50, now=NOW).claimed:
        pass

    run = workflow.steps.get(position=1).run
    assert run.audience_size == 23
    page = admin.get("/admin/activation/campaignrun/").content.decode()
    row = page.split(f"/admin/activation/campaignrun/{run.pk}/change/")[1].split("</tr>")[0]
    assert re.search(r'field-audience_size[^>]*>\s*23\s*<', row)  # not "audience 0"
    assert re.search(r'field-sent[^>]*>\s*19\s*<', row)
