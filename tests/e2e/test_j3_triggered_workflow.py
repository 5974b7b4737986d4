"""J3 — a triggered workflow, from an API event to the SMS only the non-opener gets.

A Marketer builds a welcome series in the admin (email → wait 24 h → branch "opened step 1" →
SMS → end, goal: purchase) and triggers it on entry in a segment. A shop backend posts events to
the bulk API; the worker enters those contacts in the segment and the workflow emails them.
One opens the email (the real tracking pixel of the message received), one buys (bulk API
again) and leaves on the goal, one does nothing: after the wait only that one gets the SMS.
The Marketer sees the outcome on the workflow's funnel page.

Beat is played by the test: the workflow sweep (``activation.journeys.tasks.advance``) is sent
to the worker with the instant it stands for, as beat would send it a day later.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.activation.conftest import grant, quiet_hours_elsewhere
from tests.e2e.admin_ui import errors_shown, messages_shown, save
from tests.factories import CampaignFactory, ContactFactory, TemplateFactory
from tests.workers import wait_until


def base_data():
    """Three shoppers with email and SMS consent, a "Visited the pricing page" segment
    (empty so far), email and SMS templates, the "Bienvenue" campaign on that segment, and an
    API key for the shop backend. Returns (contacts, segment, api key)."""
    from contacts.api_keys import api_key_create
    from segments.services import segment_create, segments_compute

    people = ContactFactory.create_batch(3)
    for person in people:
        grant(person, at=timezone.now() - timedelta(days=30))
        grant(person, channel="sms", at=timezone.now() - timedelta(days=30))
    segment = segment_create(
        name="Visited the pricing page",
        rule={
            "type": "event",
            "event_type": "pricing_view",
            "op": "gte",
            "value": 1,
            "within_days": 7,
        },
    )
    segments_compute(segment_ids=[segment.pk])
    TemplateFactory(channel="email", name="Welcome email")
    TemplateFactory(channel="sms", name="Welcome SMS")
    campaign = CampaignFactory(
        channel="email",
        template=TemplateFactory(channel="email"),
        name="Bienvenue",
        **quiet_hours_elsewhere(),
    )
    campaign.segments.add(segment)
    _key, raw = api_key_create(name="shop backend", scopes=["events:write"])
    return people, segment, raw


def post_events(url: str, key: str, items: list[dict]) -> dict:
    """What the shop backend does: one bulk call."""
    request = urllib.request.Request(
        f"{url}/api/v1/events/bulk",
        data=json.dumps({"source": "shop", "items": items}).encode(),
        headers={"Authorization": f"Api-Key {key}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status in (200, 207)
        return json.loads(response.read())


def fill_step(page, index: int, **fields: str) -> None:
    for name, value in fields.items():
        locator = page.locator(f"#id_steps-{index}-{name}")
        if locator.evaluate("e => e.tagName") == "SELECT":
            if value.isdigit() or name in ("kind", "channel", "condition"):
                locator.select_option(value)
            else:
                locator.select_option(label=value)
        else:
            locator.fill(value)


def build_welcome_series(journey, page) -> None:
    journey.open(page, "/admin/journeys/workflow/add/")
    page.select_option("#id_campaign", label="Bienvenue")
    page.fill("#id_goal_event_type", "purchase")
    steps = [
        {"position": "1", "kind": "send", "channel": "email", "template": "Welcome email"},
        {"position": "2", "kind": "wait", "wait_hours": "24"},
        {
            "position": "3",
            "kind": "branch",
            "condition": "opened",
            "condition_step": "1",
            "yes_goto": "5",
        },
        {"position": "4", "kind": "send", "channel": "sms", "template": "Welcome SMS"},
        {"position": "5", "kind": "exit"},
    ]
    for index, step in enumerate(steps):
        if index:
            page.click("a.add-row")
        fill_step(page, index, **step)
    journey.shot(page, "j3-workflow-steps")
    save(page)
    assert "was added successfully" in messages_shown(page), errors_shown(page)

    journey.open(page, "/admin/journeys/campaignschedule/add/")
    page.select_option("#id_campaign", label="Bienvenue")
    page.select_option("#id_kind", "segment_entry")
    page.select_option("#id_trigger_segment", label="Visited the pricing page")
    save(page)
    assert "was added successfully" in messages_shown(page), errors_shown(page)


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_api_event_enters_segment_and_workflow_sends_sms_only_to_the_non_opener(
    journey, workers, smtp_sink, sms_sink
):
    from activation.journeys.models import Workflow
    from activation.journeys.tasks import advance

    sink, _port = smtp_sink
    (opener, silent, buyer), segment, key = base_data()
    page = journey.login("Marketer")
    build_welcome_series(journey, page)
    workflow = Workflow.objects.get(campaign__name="Bienvenue")

    now = timezone.now()
    with workers():
        answer = post_events(
            journey.url,
            key,
            [
                {
                    "external_id": c.external_id,
                    "type": "pricing_view",
                    "timestamp": now.isoformat(),
                    "idempotency_key": f"pricing-{c.external_id}",
                }
                for c in (opener, silent, buyer)
            ],
        )
        assert answer["counts"]["created"] == 3, answer
        wait_until(
            lambda: workflow.enrollments.count() == 3,
            timeout=90,
            what="the three visitors to enter the segment and the workflow",
        )
        entered = timezone.now()
        advance.delay(now=entered.isoformat())  # beat's sweep: step 1 sends the email
        wait_until(lambda: len(sink.messages) == 3, timeout=90, what="the three welcome emails")
        assert sink.recipients() == Counter({c.email: 1 for c in (opener, silent, buyer)})

        # The opener's mail client loads the tracking pixel of the email actually received.
        html = sink.to(opener.email)[0].get_body(("html",)).get_content()
        pixel = re.search(r'<img[^>]+src="([^"]+/t/o/[^"]+)"', html).group(1)
        assert pixel.startswith(journey.url)
        request = urllib.request.Request(
            pixel.replace("&amp;", "&"),
            headers={"User-Agent": "Mozilla/5.0 (Windows NT 10.0) Thunderbird/128.0"},
        )
        assert urllib.request.urlopen(request, timeout=10).status == 200
        # The buyer buys: the shop backend posts the purchase.
        post_events(
            journey.url,
            key,
            [
                {
                    "external_id": buyer.external_id,
                    "type": "purchase",
                    "timestamp": timezone.now().isoformat(),
                    "idempotency_key": "order-1",
                    "properties": {"amount": 42.0},
                }
            ],
        )
    # A day later (a worker whose clock runs 25 hours ahead), beat's sweep again: the buyer
    # leaves on the goal, the wait is over for the others, and the branch sends the SMS to the
    # one who did not open.
    with workers(clock_shift_hours=25):
        advance.delay(now=(entered + timedelta(hours=25)).isoformat())
        wait_until(lambda: len(sms_sink.calls) >= 1, timeout=90, what="the SMS")
        advance.delay(now=(entered + timedelta(hours=25, minutes=5)).isoformat())
        wait_until(
            lambda: not workflow.enrollments.filter(state="active").exists(),
            timeout=90,
            what="every contact to finish the workflow",
        )

    assert [c.json()["recipient"] for c in sms_sink.calls] == [silent.phone.lstrip("+")]
    assert len(sink.messages) == 3  # nobody got a second email

    journey.open(page, f"/admin/journeys/workflow/{workflow.pk}/funnel/")
    funnel = page.locator("#content").inner_text()
    journey.shot(page, "j3-workflow-funnel")
    assert re.search(r"Exited: goal reached\s+1", funnel), funnel
    assert re.search(r"Completed \(exit step\)\s+2", funnel), funnel

    # The workflow's runs, as the campaign runs list shows them: each send step's audience is
    # the contacts who reached it (3 for the email, 1 for the SMS), beside what was sent.
    journey.open(page, "/admin/activation/campaignrun/?q=Bienvenue")
    runs = sorted(
        (
            int(row.locator("td.field-audience_size").inner_text()),
            int(row.locator("td.field-sent").inner_text()),
        )
        for row in page.locator("#result_list tbody tr").all()
    )
    assert runs == [(1, 1), (3, 3)], runs
