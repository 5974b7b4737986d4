"""J1 — a Marketer builds an audience in the rule builder.

The marketer composes a rule from a behavioural feature, an event in a time window and a consent
condition, places it in a priority family below "VIP", sees the live size and sample contacts,
saves it, sees the size a worker computed, and asks "why is this contact in this segment?" for
a member and for a non-member.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from tests.activation.conftest import grant
from tests.e2e.admin_ui import messages_shown, save, submit
from tests.factories import ContactFactory, EventFactory


def audience_base():
    """40 contacts: 10 VIPs (big spenders, in the higher-priority "VIP" segment), 10 regular
    buyers with newsletter consent by email, 5 regular buyers without it, 15 who never bought.
    Returns (regular buyers with consent, VIPs, never bought)."""
    from segments.models import SegmentFamily
    from segments.services import features_refresh, segment_create, segments_compute

    now = timezone.now()
    vips = ContactFactory.create_batch(10)
    regulars = ContactFactory.create_batch(15)
    never = ContactFactory.create_batch(15)
    for contact, amount in [(c, 300) for c in vips] + [(c, 40) for c in regulars]:
        for days_ago in (5, 60, 200):
            EventFactory(
                contact=contact,
                type="purchase",
                occurred_at=now - timedelta(days=days_ago),
                properties={"amount": amount},
            )
    for contact in vips + regulars[:10]:
        grant(contact, at=now - timedelta(days=90))
    features_refresh(as_of=now)
    family = SegmentFamily.objects.create(name="Lifecycle")
    vip = segment_create(
        name="VIP",
        rule={"type": "feature", "feature": "monetary_total", "op": "gte", "value": 500},
        family=family,
        priority=1,
    )
    segments_compute(segment_ids=[vip.pk])
    return regulars[:10], vips, never


def leaf(page, index: int):
    return page.locator("#rule-builder .rb-leaf").nth(index)


def add_condition(page, type_label: str) -> int:
    """Click "+ condition" on the top group and switch the new row to ``type_label``."""
    before = page.locator("#rule-builder .rb-leaf").count()
    page.locator("#rule-builder > .rb-group > button", has_text="+ condition").click()
    page.locator("#rule-builder .rb-leaf").nth(before).wait_for()
    if type_label != "Behavioural feature":
        leaf(page, before).locator("select").first.select_option(label=type_label)
    return before


def set_input(locator, value: str) -> None:
    """Type into a builder input as a user does (the builder reads it on change)."""
    locator.fill(value)
    locator.dispatch_event("change")


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_marketer_builds_a_rule_segment_sees_its_size_and_explains_membership(journey, workers):
    members, vips, never = audience_base()
    page = journey.login("Marketer")

    journey.open(page, "/admin/segments/segment/")
    page.click("a.addlink")
    page.fill("#id_name", "Acheteurs réguliers")
    page.select_option("#id_family", label="Lifecycle")
    page.fill("#id_priority", "2")

    row = add_condition(page, "Behavioural feature")
    leaf(page, row).locator("select").nth(1).select_option(label="purchases in the last 365 days")
    leaf(page, row).locator("select").nth(2).select_option("gte")
    set_input(leaf(page, row).locator("input").first, "2")

    row = add_condition(page, "Events")
    inputs = leaf(page, row).locator("input")
    set_input(inputs.nth(0), "purchase")
    set_input(inputs.nth(1), "1")
    set_input(inputs.nth(2), "30")

    row = add_condition(page, "Consent")
    leaf(page, row).locator("select").nth(1).select_option("newsletter")
    leaf(page, row).locator("select").nth(2).select_option("email")

    page.click("#rule-preview-button")
    page.wait_for_function("document.querySelector('#rule-preview-size').textContent.length > 0")
    # 25 contacts bought twice this year, recently, 20 of them with consent; the 10 VIPs are
    # taken by the higher-priority segment of the family: 10 of 40 remain.
    assert page.locator("#rule-preview-size").inner_text() == "10 / 40 (25.0 %)"
    description = page.locator("#rule-preview-text").inner_text()
    assert "purchases in the last 365 days" in description
    sample = set(page.locator("#rule-preview-sample tr td:first-child").all_inner_texts())
    assert sample == {c.external_id for c in members}
    journey.shot(page, "j1-segment-builder")

    with workers():
        save(page)
        assert "was added successfully" in messages_shown(page)
        page.click("text=Acheteurs réguliers")
        # The page says it is computing and reloads itself once the worker is done.
        expect(page.locator(".field-size .readonly")).to_have_text("10", timeout=60_000)
    journey.shot(page, "j1-segment-computed")

    submit(page, "text=Why is a contact in this segment?")
    page.fill("#contact", members[0].external_id)
    submit(page, "button:has-text('Explain')")
    content = page.locator("#content").inner_text()
    assert "The rule holds for this contact now." in content
    assert "Current member (as of the last computation)." in content
    assert page.locator("tr.explain-line").count() >= 4  # the group and its three conditions
    journey.shot(page, "j1-explain-member")

    page.fill("#contact", never[0].external_id)
    submit(page, "button:has-text('Explain')")
    content = page.locator("#content").inner_text()
    assert "The rule does not hold for this contact now." in content
    assert "Not a member as of the last computation." in content
    assert "✘ no" in content
