"""The home dashboard as each role meets it: a Marketer, an Analyst and a DPO log in, land on
their cards with the numbers of the data (counted by hand below), in French for the DPO, and
follow a card's link to the page behind it. A Marketer sees no worker-health card and cannot
open the worker heartbeats behind it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from tests.activation.conftest import grant
from tests.factories import CampaignFactory, ContactFactory, EventFactory

pytestmark = pytest.mark.django_db(transaction=True)


def week_of_work():
    """Four contacts (three may get the newsletter by email), two messages sent yesterday (one
    opened by a person, one by Apple's proxy), one pending approval (1 204 would receive) and
    two open rights requests, one overdue."""
    from activation.journeys.models import CampaignApproval
    from activation.models import CampaignRun, OutboxMessage
    from consent.models import RightsRequest

    now = timezone.now()
    contacts = ContactFactory.create_batch(4)
    for contact in contacts[:3]:
        grant(contact, at=now - timedelta(days=30))
    campaign = CampaignFactory(name="Soldes d’été")
    run = CampaignRun.objects.create(campaign=campaign, status="done", created_at=now)
    sent_at = now - timedelta(days=1)
    messages = [
        OutboxMessage.objects.create(
            run=run,
            contact=contact,
            channel="email",
            state="sent",
            next_attempt_at=sent_at,
            created_at=sent_at,
            sent_at=sent_at,
        )
        for contact in contacts[:2]
    ]
    for message, machine in zip(messages, (False, True), strict=True):
        EventFactory(
            contact=message.contact,
            type="email_open",
            occurred_at=sent_at + timedelta(hours=1),
            properties={"message_id": message.pk, "machine_open": machine},
        )
    CampaignApproval.objects.create(
        campaign=CampaignFactory(name="Rentrée"),
        requested_by=User.objects.get(username="marketer"),
        requested_at=now,
        eligible=1204,
    )
    RightsRequest.objects.create(
        kind="access", requester="en.retard@example.fr", received_at=now - timedelta(days=35)
    )
    RightsRequest.objects.create(
        kind="erasure", requester="a.temps@example.fr", received_at=now - timedelta(days=2)
    )


def card(page, key: str):
    return page.locator(f"[data-card='{key}']")


def test_marketer_sees_audience_and_sends_and_opens_the_approval(journey):
    week_of_work()
    page = journey.login("Marketer")
    page.locator("#nav-sidebar-inner a", has_text="Dashboard").first.click()
    audience = card(page, "audience")
    assert audience.locator("[data-number='contacts']").inner_text() == "4"
    assert audience.locator("[data-channel='email'] td").nth(1).inner_text() == "3"
    sends = card(page, "sends")
    sent_row = sends.locator("tr", has_text="Messages sent")
    assert sent_row.locator("td").first.inner_text() == "2"
    opened = sends.locator("tr", has_text="Opened (people)")
    assert opened.locator("td").first.inner_text().startswith("50.0 %")
    machine = sends.locator("tr", has_text="Machine opens")
    assert machine.locator("td").first.inner_text() == "1"
    assert card(page, "health").count() == 0
    journey.shot(page, "dashboard-marketer")
    approvals = card(page, "approvals")
    assert approvals.locator("[data-number='approvals']").inner_text() == "1"
    assert "1,204" in approvals.inner_text()
    approvals.get_by_role("link", name="Rentrée").click()
    page.wait_for_url("**/campaignapproval/*/change/")
    assert "Rentrée" in page.content()
    # The worker-health page behind the administrators' card stays closed to a Marketer.
    assert journey.open(page, "/admin/ops/workerheartbeat/").status == 403


def test_analyst_sees_the_running_tests_card_and_follows_it(journey):
    week_of_work()
    page = journey.login("Analyst")
    keys = page.locator("[data-card]").evaluate_all("els => els.map(e => e.dataset.card)")
    assert keys[:2] == ["audience", "sends"] and "rights" in keys and "health" not in keys
    tests_card = card(page, "experiments")
    assert "No A/B test is running." in tests_card.inner_text()
    tests_card.get_by_role("link", name="See the A/B tests").click()
    page.wait_for_url("**/admin/experiments/experiment/")


def test_dpo_sees_rights_requests_first_in_french_with_the_overdue_one_flagged(journey):
    week_of_work()
    page = journey.login("DPO", language="fr")
    page.locator("#nav-sidebar-inner a", has_text="Tableau de bord").first.click()
    keys = page.locator("[data-card]").evaluate_all("els => els.map(e => e.dataset.card)")
    assert keys[0] == "rights"
    rights = card(page, "rights")
    assert rights.locator("[data-number='rights']").inner_text() == "2"
    assert "1 demande en retard." in rights.inner_text()
    overdue = rights.locator("tr.cible-overdue")
    assert overdue.count() == 1 and "en.retard@example.fr" in overdue.inner_text()
    sends = card(page, "sends")
    assert (
        sends.locator("tr", has_text="Ouverts (personnes)")
        .locator("td")
        .first.inner_text()
        .startswith("50,0 %")
    )
    journey.shot(page, "dashboard-dpo")
    rights.get_by_role("link", name="Voir les demandes d’exercice de droits").click()
    page.wait_for_url("**/admin/consent/rightsrequest/")
    assert page.locator("#result_list tbody tr").count() == 2
