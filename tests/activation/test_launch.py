"""One launch service for every entry point: the campaign list's "Launch now", the schedule's
"Launch now", ``run_campaign`` and beat-fired schedules all refuse a campaign that needs an
approval, is a draft, or whose template does not fit its channel — with the reason, and no
run, no outbox row — and send once it is approved / active / fixed."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import CommandError, call_command
from django.utils import timezone

from activation.journeys.models import CampaignSchedule, ScheduledOccurrence
from activation.journeys.services import approval_decide, approval_request, schedule_save
from activation.journeys.tasks import fire_schedule
from activation.models import CampaignRun, OutboxMessage, TemplateVersion
from activation.services import outbox_deliver_batch
from ops.roles import roles_sync
from tests.activation.conftest import quiet_hours_elsewhere
from tests.factories import TemplateFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def tasks_in_process():
    """Celery runs tasks in this process (its own eager mode), so what a worker would do after
    the request commits happens inside ``django_capture_on_commit_callbacks(execute=True)``."""
    from config.celery import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


def member_of(role: str, name: str) -> User:
    roles_sync()
    user = User.objects.create_user(name, f"{name}@example.fr", "x", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return User.objects.get(pk=user.pk)


@pytest.fixture
def big_campaign(settings, consenting, make_campaign):
    """A campaign of 3 contacts above an approval threshold of 2."""
    settings.JOURNEYS_APPROVAL_THRESHOLD = 2
    return make_campaign(consenting(3), **quiet_hours_elsewhere())


def approve(campaign):
    request = approval_request(
        campaign=campaign, user=member_of("Marketer", "alice"), now=timezone.now()
    )
    approval_decide(
        approval=request, user=member_of("Analyst", "anna"), approve=True, now=timezone.now()
    )


def nothing_written():
    return not CampaignRun.objects.exists() and not OutboxMessage.objects.exists()


def launch_from_campaign_list(client, campaign):
    return client.post(
        "/admin/activation/campaign/",
        {"action": "launch", "_selected_action": [campaign.pk]},
        follow=True,
    ).content.decode()


def test_campaign_list_launch_is_refused_until_approved_then_sends(
    admin_client, big_campaign, smtp_settings, tasks_in_process, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        page = launch_from_campaign_list(admin_client, big_campaign)
    assert "more than 2 contacts: it needs an approval first" in page
    assert nothing_written() and smtp_settings.messages == []

    approve(big_campaign)
    with django_capture_on_commit_callbacks(execute=True):
        page = launch_from_campaign_list(admin_client, big_campaign)
    assert "is being launched" in page
    assert len(smtp_settings.messages) == 3
    assert set(OutboxMessage.objects.values_list("state", flat=True)) == {"sent"}


def test_schedule_launch_now_is_refused_until_approved_then_sends(
    admin_client, big_campaign, smtp_settings, tasks_in_process, django_capture_on_commit_callbacks
):
    schedule = schedule_save(
        schedule=CampaignSchedule(campaign=big_campaign, kind="manual"), now=timezone.now()
    )

    def launch():
        with django_capture_on_commit_callbacks(execute=True):
            return admin_client.post(
                "/admin/journeys/campaignschedule/",
                {"action": "launch_now", "_selected_action": [schedule.pk]},
                follow=True,
            ).content.decode()

    assert "it needs an approval first" in launch()
    assert nothing_written()
    approve(big_campaign)
    assert "is being launched" in launch()
    assert len(smtp_settings.messages) == 3


def test_run_campaign_is_refused_until_approved_then_sends(big_campaign, smtp_settings):
    with pytest.raises(CommandError, match="it needs an approval first"):
        call_command("run_campaign", big_campaign.pk, "--deliver", stdout=StringIO())
    assert nothing_written() and smtp_settings.messages == []

    approve(big_campaign)
    out = StringIO()
    call_command("run_campaign", big_campaign.pk, "--deliver", stdout=out)
    assert "sent 3" in out.getvalue()
    assert len(smtp_settings.messages) == 3


def test_beat_fired_schedule_waits_for_approval_then_sends(big_campaign, smtp_settings):
    now = timezone.now()
    schedule = schedule_save(
        schedule=CampaignSchedule(
            campaign=big_campaign, kind="one_off", run_at=now + timedelta(minutes=5)
        ),
        now=now,
    )
    fired_at = (now + timedelta(minutes=5, seconds=2)).isoformat()
    assert fire_schedule(schedule.pk, fired_at) == "needs_approval"
    assert nothing_written()

    approve(big_campaign)
    ScheduledOccurrence.objects.all().delete()  # the slot may fire again (beat's catch-up)
    assert fire_schedule(schedule.pk, fired_at) == "launched"
    assert OutboxMessage.objects.filter(state="queued").count() == 3
    outbox_deliver_batch(channel="email", limit=10, now=now + timedelta(minutes=6))
    assert len(smtp_settings.messages) == 3


def test_draft_campaign_is_not_launched_by_any_entry_point(
    admin_client, consenting, make_campaign, smtp_settings, django_capture_on_commit_callbacks
):
    campaign = make_campaign(consenting(2), status="draft", **quiet_hours_elsewhere())
    with django_capture_on_commit_callbacks(execute=True):
        page = launch_from_campaign_list(admin_client, campaign)
    assert f"“{campaign.name}” is a draft: set its status to Active" in page
    with pytest.raises(CommandError, match="is a draft"):
        call_command("run_campaign", campaign.pk, stdout=StringIO())
    now = timezone.now()
    schedule = schedule_save(
        schedule=CampaignSchedule(campaign=campaign, kind="one_off", run_at=now),
        now=now - timedelta(minutes=1),
    )
    assert fire_schedule(schedule.pk, (now + timedelta(seconds=1)).isoformat()) == "not_active"
    assert nothing_written() and smtp_settings.messages == []

    # A dry run stays possible for a draft: it writes a report, sends nothing.
    call_command("run_campaign", campaign.pk, "--dry-run", stdout=StringIO())
    assert CampaignRun.objects.get().dry_run and not OutboxMessage.objects.exists()


def sms_campaign_with_email_template(consenting, make_campaign):
    email_only = TemplateFactory(channel="sms", versions=False)
    TemplateVersion.objects.create(
        template=email_only, locale="fr", subject="Bonjour", html="<p>Bonjour</p>"
    )
    campaign = make_campaign(consenting(2, channel="sms"), channel="sms")
    campaign.template = email_only
    campaign.save()
    return campaign


def test_sms_campaign_whose_template_has_no_sms_content_is_refused_at_save_and_at_launch(
    admin_client, consenting, make_campaign, sms_provider
):
    campaign = sms_campaign_with_email_template(consenting, make_campaign)
    email_template = TemplateFactory(channel="email")
    form = {
        "name": campaign.name,
        "purpose": campaign.purpose_id,
        "channel": "sms",
        "template": email_template.pk,
        "segments": [s.pk for s in campaign.segments.all()],
        "quiet_hours_policy": "defer",
        "quiet_hours_start": "21:00",
        "quiet_hours_end": "08:00",
        "frequency_capped": "on",
        "status": "active",
    }
    page = admin_client.post(f"/admin/activation/campaign/{campaign.pk}/change/", form)
    assert page.status_code == 200
    assert "is for Email; this campaign sends SMS" in page.content.decode()
    form["template"] = campaign.template_id  # an "SMS" template with only email content
    page = admin_client.post(f"/admin/activation/campaign/{campaign.pk}/change/", form)
    assert "has no SMS content in: fr" in page.content.decode()

    assert "has no SMS content in: fr" in launch_from_campaign_list(admin_client, campaign)
    with pytest.raises(CommandError, match="has no SMS content"):
        call_command("run_campaign", campaign.pk, stdout=StringIO())
    assert nothing_written()
    server, _answers = sms_provider
    assert server.calls == []


def test_campaign_with_a_fitting_template_saves(admin_client, consenting, make_campaign):
    campaign = make_campaign(consenting(1), channel="sms")
    response = admin_client.post(
        f"/admin/activation/campaign/{campaign.pk}/change/",
        {
            "name": "Flash SMS",
            "purpose": campaign.purpose_id,
            "channel": "sms",
            "template": campaign.template_id,
            "segments": [s.pk for s in campaign.segments.all()],
            "quiet_hours_policy": "defer",
            "quiet_hours_start": "21:00",
            "quiet_hours_end": "08:00",
            "status": "active",
        },
    )
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert campaign.name == "Flash SMS"


def test_sms_template_without_sms_text_is_refused_at_save(admin_client):
    from activation.models import Template

    response = admin_client.post(
        "/admin/activation/template/add/",
        {
            "name": "Flash",
            "channel": "sms",
            "default_locale": "fr",
            "versions-TOTAL_FORMS": 1,
            "versions-INITIAL_FORMS": 0,
            "versions-MIN_NUM_FORMS": 0,
            "versions-MAX_NUM_FORMS": 1000,
            "versions-0-locale": "fr",
            "versions-0-subject": "Soldes",
            "versions-0-html": "<p>Soldes</p>",
        },
    )
    assert response.status_code == 200
    assert "This SMS template needs this content in every locale." in response.content.decode()
    assert not Template.objects.exists()
