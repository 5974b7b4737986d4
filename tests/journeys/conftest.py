"""Fixtures of the journeys tests. The SMTP server, the local HTTP server and the consenting
contacts come from the sending tests (tests/activation/conftest.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.activation.conftest import (  # noqa: F401  (fixtures re-used as they are)
    NOW,
    consenting,
    default_purposes,
    grant,
    http_server,
    segment_with,
    smtp_settings,
    smtp_sink,
)
from tests.factories import CampaignFactory, TemplateFactory


@pytest.fixture
def sms_sink(http_server, settings):  # noqa: F811
    """A local HTTP server playing a Brevo-shaped SMS provider; returns it (``.calls``)."""

    def respond(call):
        return 201, {"Content-Type": "application/json"}, '{"messageId": 1}'

    server = http_server(respond)
    settings.SMS_PROVIDER_URL = server.url + "/v3/transactionalSMS/sms"
    settings.SMS_PROVIDER_API_KEY = "xkeysib-test"
    settings.ACTIVATION_RATE_LIMITS = {"email": 0, "sms": 0, "push": 0}
    return server


def welcome_workflow(*, segment, wait_hours=24, goal="purchase", **schedule_fields):
    """Welcome series triggered on entry in ``segment``: 1 email → 2 wait → 3 branch "opened
    step 1" (yes: end) → 4 SMS to non-openers. Exits on ``goal``."""
    from activation.journeys.models import CampaignSchedule, Workflow, WorkflowStep
    from activation.journeys.services import schedule_save, workflow_steps_sync

    email = TemplateFactory(channel="email")
    sms = TemplateFactory(channel="sms")
    campaign = CampaignFactory(channel="email", template=email, name="Bienvenue")
    campaign.segments.add(segment)
    workflow = Workflow.objects.create(campaign=campaign, goal_event_type=goal)
    WorkflowStep.objects.create(
        workflow=workflow, position=1, kind="send", channel="email", template=email
    )
    WorkflowStep.objects.create(workflow=workflow, position=2, kind="wait", wait_hours=wait_hours)
    WorkflowStep.objects.create(
        workflow=workflow,
        position=3,
        kind="branch",
        condition="opened",
        condition_step=1,
        yes_goto=5,
    )
    WorkflowStep.objects.create(
        workflow=workflow, position=4, kind="send", channel="sms", template=sms
    )
    WorkflowStep.objects.create(workflow=workflow, position=5, kind="exit")
    schedule = CampaignSchedule(
        campaign=campaign, kind="segment_entry", trigger_segment=segment, **schedule_fields
    )
    schedule_save(schedule=schedule, now=NOW)
    workflow_steps_sync(workflow=workflow, now=NOW)
    return workflow


def later(hours: float):
    return NOW + timedelta(hours=hours)
