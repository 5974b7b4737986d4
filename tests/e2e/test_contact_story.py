"""A contact's whole story, as a Marketer and a DPO read it, and a cluster model an Analyst
creates with the form made for people.

The Marketer opens *Contacts* from the sidebar, finds Léa by her email, opens her page and walks
its tabs: her consent with its proof, her segment with a "Why?" that explains it, her events
(filtered to purchases), the message she received — opening it shows what was sent. The DPO
finds her by her external ID and reads the same story. The Analyst creates a cluster model with
a name and ticked features (no JSON, no slug) and a real worker trains it.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.e2e.admin_ui import errors_shown, messages_shown, run_action, save, submit
from tests.e2e.test_j5_models import shoppers
from tests.factories import ContactFactory, EventFactory
from tests.workers import wait_until


def lea():
    """Léa: 40 page views, one purchase, consent by email with its proof, a rule segment she
    matches, one email she received (opened once by her, once by a mail-privacy proxy)."""
    from activation.models import CampaignRun, OutboxMessage, RunStatus
    from consent.services import consent_record
    from contacts.models import Event
    from segments.models import SegmentMembership
    from segments.services import segment_create
    from tests.factories import CampaignFactory

    now = timezone.now()
    contact = ContactFactory(
        external_id="CRM-LEA",
        email="lea.dubois@example.fr",
        first_name="Léa",
        last_name="Dubois",
        city="Lyon",
    )
    for i in range(40):
        EventFactory(contact=contact, type="page_view", occurred_at=now - timedelta(hours=i + 1))
    EventFactory(
        contact=contact,
        type="purchase",
        occurred_at=now - timedelta(days=3),
        properties={"amount": 59.9},
    )
    consent_record(
        contact=contact,
        purpose="newsletter",
        channel="email",
        granted=True,
        source="form",
        at=now - timedelta(days=30),
        proof={"form": "inscription-footer", "ip": "203.0.113.7"},
    )
    segment = segment_create(
        name="Lyonnaises", rule={"type": "field", "field": "city", "op": "eq", "value": "Lyon"}
    )
    SegmentMembership.objects.create(segment=segment, contact=contact, entered_at=now)
    campaign = CampaignFactory(name="Soldes d’hiver")
    run = CampaignRun.objects.create(campaign=campaign, status=RunStatus.DONE, created_at=now)
    message = OutboxMessage.objects.create(
        run=run,
        contact=contact,
        channel="email",
        state="sent",
        sent_at=now - timedelta(hours=2),
        next_attempt_at=now,
        created_at=now - timedelta(hours=2),
        message_id="<soldes-lea@cible.test>",
    )
    for i, machine in enumerate((False, True)):
        Event.objects.create(
            contact=contact,
            type="email_open",
            occurred_at=now - timedelta(minutes=30 + i),
            source="activation",
            idempotency_key=f"open-lea-{i}",
            properties={"message_id": message.pk, "machine_open": machine},
        )
    ContactFactory.create_batch(3)  # other people
    return contact, message


def open_from_sidebar(page, title: str) -> None:
    """Click the sidebar entry whose label is ``title`` (not another containing it)."""
    entry = page.locator("#nav-sidebar-inner a").filter(
        has_text=re.compile(rf"(^|\s){re.escape(title)}\s*$")
    )
    with page.expect_navigation():
        entry.first.click()


def open_tab(page, key: str) -> None:
    with page.expect_navigation():
        page.click(f"#story-tab-{key}")


def find_contact(page, typed: str) -> None:
    """On the contact list: search ``typed`` and open the one result."""
    page.fill("input[name=q]", typed)
    with page.expect_navigation():
        page.press("input[name=q]", "Enter")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1, rows.all_inner_texts()
    with page.expect_navigation():
        rows.first.locator("a").first.click()


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_marketer_and_dpo_read_a_contacts_whole_story(journey):
    contact, message = lea()

    page = journey.login("Marketer")
    open_from_sidebar(page, "Contacts")
    find_contact(page, "lea.dubois@example.fr")
    assert page.locator("#story-tabs").is_visible()
    assert page.locator("#id_email").input_value() == "lea.dubois@example.fr"  # the profile

    open_tab(page, "consent")
    state = page.locator("#story-consent-state").inner_text()
    assert "inscription-footer" in state and "203.0.113.7" in state and "granted" in state
    journey.shot(page, "contact-story-consent")

    open_tab(page, "segments")
    assert "Lyonnaises" in page.locator("#story-segments-table").inner_text()
    with page.expect_navigation():
        page.click("#story-segments-table a.story-why")
    assert "The rule holds for this contact now." in page.content()
    assert page.locator("#contact").input_value() == "CRM-LEA"  # the identifier shown everywhere
    page.go_back()

    open_tab(page, "events")
    assert page.locator("#story-events-table tr.story-event").count() == 25  # a page
    assert page.locator("a[rel=next]").is_visible()
    page.fill("#story-events-filter input[name=type]", "purchase")
    submit(page, "#story-events-filter button[type=submit]")
    rows = page.locator("#story-events-table tr.story-event")
    assert rows.count() == 1 and "59.9" in rows.first.inner_text()
    journey.shot(page, "contact-story-events")

    open_tab(page, "messages")
    row = page.locator("#story-messages-table tr.story-message").first
    cells = row.locator("td").all_inner_texts()
    assert "Soldes d’hiver" in cells[1] and cells[6:10] == ["1", "1", "0", "0"], cells
    journey.shot(page, "contact-story-messages")
    with page.expect_navigation():
        row.locator("a.story-message-link").click()
    assert page.url.endswith(f"/admin/activation/outboxmessage/{message.pk}/change/")
    assert "soldes-lea@cible.test" in page.content()  # the sent message's own page

    dpo = journey.login("DPO")
    open_from_sidebar(dpo, "Contacts")
    find_contact(dpo, "CRM-LEA")
    open_tab(dpo, "consent")
    assert "inscription-footer" in dpo.locator("#story-consent-state").inner_text()
    open_tab(dpo, "messages")
    assert "Soldes d’hiver" in dpo.locator("#story-messages-table").inner_text()


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_analyst_creates_a_cluster_model_by_name_and_checkboxes_and_it_trains(journey, workers):
    from segments.ml.models import ClusterModel

    shoppers()
    page = journey.login("Analyst")
    open_from_sidebar(page, "Clusters")
    with page.expect_navigation():
        page.click("a[href='/admin/segments_ml/clustermodel/add/']")
    assert page.locator("input[name=features][type=checkbox]").count() >= 10
    page.fill("#id_title", "Profils d’achat")
    for name in ("share_desktop", "share_mobile"):  # untick two of the defaults
        page.uncheck(f"input[name=features][value={name}]")
    page.fill("#id_k", "3")
    page.fill("#id_sample_size", "400")
    page.evaluate("window.scrollTo(0, 0)")
    journey.shot(page, "cluster-model-form")
    save(page)
    assert "was added successfully" in messages_shown(page), errors_shown(page)
    model = ClusterModel.objects.get()
    assert model.name == "profils-dachat"
    assert "share_desktop" not in model.features and "purchases" in model.features

    with workers():
        run_action(
            page,
            url=f"{journey.url}/admin/segments_ml/clustermodel/",
            rows=["Profils d’achat"],
            action="train_now",
        )
        assert "Training queued" in messages_shown(page)

        def trained() -> bool:
            journey.open(page, "/admin/segments_ml/clustermodel/")
            status = page.locator("#result_list td.field-last_training").first.inner_text()
            assert "Failed" not in status, status
            return status.startswith("Succeeded")

        wait_until(trained, timeout=180, what="the cluster model's training")
    assert ClusterModel.objects.get().active_version is not None
