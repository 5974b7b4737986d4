"""A contact's whole story: the tabs of the contact's admin page (contacts/story.py)."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext

from activation.models import Attribution, CampaignRun, OutboxMessage, RunStatus
from consent.services import consent_record, suppression_add
from contacts.models import ContactMerge, Event
from experiments.models import Assignment
from segments.models import SegmentMembership
from segments.services import segment_create
from tests.factories import CampaignFactory, ContactFactory, VariantFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)


def _client_as(client, role: str):
    user = get_user_model().objects.create_user(role.lower(), password="pw-123456", is_staff=True)  # noqa: S106
    user.groups.add(Group.objects.get(name=role))
    client.force_login(user)
    return client


@pytest.fixture
def marketer(client):
    return _client_as(client, "Marketer")


@pytest.fixture
def story(db):
    """One contact with something in every tab."""
    contact = ContactFactory(external_id="CUST-42", email="lea.petit@example.fr")
    Event.objects.bulk_create(
        Event(
            contact=contact,
            type="purchase" if i % 10 == 0 else "page_view",
            occurred_at=T0 + timedelta(hours=i),
            source="test",
            idempotency_key=f"k{i}",
            properties={"n": i},
        )
        for i in range(60)
    )
    consent_record(
        contact=contact,
        purpose="newsletter",
        channel="email",
        granted=True,
        source="form",
        at=T0,
        proof={"form": "footer-signup", "ip": "203.0.113.9"},
    )
    suppression_add(channel="sms", address=contact.phone, reason="manual", source="test")
    segment = segment_create(
        name="Gros acheteurs", rule={"type": "field", "field": "country", "op": "eq", "value": "FR"}
    )
    SegmentMembership.objects.create(segment=segment, contact=contact, entered_at=T0)
    campaign = CampaignFactory(name="Soldes de mars")
    run = CampaignRun.objects.create(campaign=campaign, status=RunStatus.DONE, created_at=T0)
    message = OutboxMessage.objects.create(
        run=run,
        contact=contact,
        channel="email",
        state="sent",
        sent_at=T0,
        next_attempt_at=T0,
        created_at=T0,
    )
    for i, machine in enumerate([False, False, True]):
        Event.objects.create(
            contact=contact,
            type="email_open",
            occurred_at=T0 + timedelta(minutes=5 + i),
            source="activation",
            idempotency_key=f"open-{i}",
            properties={"message_id": message.pk, "machine_open": machine},
        )
    Event.objects.create(
        contact=contact,
        type="email_click",
        occurred_at=T0 + timedelta(minutes=9),
        source="activation",
        idempotency_key="click-1",
        properties={"message_id": message.pk, "url": "https://shop.example.fr/"},
    )
    purchase = Event.objects.get(contact=contact, idempotency_key="k10")
    Attribution.objects.create(
        event=purchase, message=message, run=run, value=30, attributed_at=T0 + timedelta(hours=11)
    )
    variant = VariantFactory(key="B", name="Objet court")
    Assignment.objects.create(
        experiment=variant.experiment, contact=contact, variant=variant, bucket=7, assigned_at=T0
    )
    ContactMerge.objects.create(
        survivor=contact,
        survivor_external_id=contact.external_id,
        merged_ids=[999],
        merged_external_ids=["OLD-7"],
        moved_events=4,
        actor_label="dpo",
    )
    return {"contact": contact, "segment": segment, "message": message}


def _tab(client, contact, tab, **params):
    page = client.get(
        f"/admin/contacts/contact/{contact.pk}/change/", {"tab": tab, "lang": "en", **params}
    )
    return page, page.content.decode()


def test_profile_page_lists_every_tab(marketer, story):
    page, body = _tab(marketer, story["contact"], "profile")
    assert page.status_code == 200
    for title in ("Consent", "Suppressions", "Segments", "Clusters and scores", "Events"):
        assert title in body
    for title in ("Messages", "Experiments", "Merges"):
        assert title in body
    assert 'name="_save"' in body  # the profile form is still there


def test_consent_tab_shows_state_with_its_proof_and_the_ledger(marketer, story):
    page, body = _tab(marketer, story["contact"], "consent")
    assert page.status_code == 200
    assert "footer-signup" in body and "203.0.113.9" in body
    assert "granted" in body
    assert f"/admin/consent/consentevent/timeline/{story['contact'].pk}/" in body


def test_suppressions_tab_lists_the_contacts_addresses(marketer, story):
    _page, body = _tab(marketer, story["contact"], "suppressions")
    assert story["contact"].phone in body


def test_segments_tab_links_to_a_working_why(marketer, story):
    _page, body = _tab(marketer, story["contact"], "segments")
    why = f"/admin/segments/segment/{story['segment'].pk}/explain/?contact=CUST-42"
    assert "Gros acheteurs" in body and why in body
    explained = marketer.get(why + "&lang=en").content.decode()
    assert "The rule holds for this contact now." in explained


def test_events_tab_is_paginated_newest_first_and_filterable(marketer, story):
    contact = story["contact"]
    _page, body = _tab(marketer, contact, "events")
    assert body.count('class="story-event"') == 25
    assert "&quot;n&quot;: 59" in body  # the newest test event is on page 1
    _page, body = _tab(marketer, contact, "events", page=3)
    assert body.count('class="story-event"') == 25 - (3 * 25 - 64)  # 64 events in all
    _page, body = _tab(marketer, contact, "events", type="purchase")
    assert body.count('class="story-event"') == 6
    _page, body = _tab(
        marketer, contact, "events", type="page_view", since="2026-03-03", until="2026-03-03"
    )
    assert body.count('class="story-event"') == 24 - 2  # hours 15..38, purchases at 20 and 30


@pytest.mark.parametrize(
    ("since", "until", "message"),
    [
        ("0000-01-01", "", "Enter a valid date."),
        ("2026-05-01", "2026-04-01", "The start date is after the end date."),
    ],
)
def test_events_tab_hostile_dates_get_a_message_not_a_500(marketer, story, since, until, message):
    page, body = _tab(marketer, story["contact"], "events", since=since, until=until)
    assert page.status_code == 200 and message in body


def test_events_tab_accepts_the_extreme_years(marketer, story):
    page, body = _tab(marketer, story["contact"], "events", since="0001-01-01", until="9999-12-31")
    assert page.status_code == 200 and body.count('class="story-event"') == 25


def test_messages_tab_counts_human_and_machine_opens_clicks_and_conversions(marketer, story):
    _page, body = _tab(marketer, story["contact"], "messages")
    assert "Soldes de mars" in body
    assert f"/admin/activation/outboxmessage/{story['message'].pk}/change/" in body
    cells = body.split('class="story-message"')[1].split("</tr>")[0]
    assert "<td>2</td><td>1</td><td>1</td><td>1</td>" in cells  # human, machine, click, conv.


def test_experiments_and_merges_tabs(marketer, story):
    _page, body = _tab(marketer, story["contact"], "experiments")
    assert "Objet court" in body
    _page, body = _tab(marketer, story["contact"], "merges")
    assert "OLD-7" in body


def test_clusters_and_scores_tab_says_when_nothing_is_trained(marketer, story):
    page, body = _tab(marketer, story["contact"], "clusters")
    assert page.status_code == 200
    assert "No cluster model is trained yet." in body and "Not scored yet" in body


def test_dpo_sees_the_same_story(client, story):
    dpo = _client_as(client, "DPO")
    _page, body = _tab(dpo, story["contact"], "consent")
    assert "footer-signup" in body
    _page, body = _tab(dpo, story["contact"], "messages")
    assert "Soldes de mars" in body


def test_a_tab_needs_the_permission_of_what_it_shows(client, story):
    user = get_user_model().objects.create_user("viewer", password="pw-123456", is_staff=True)  # noqa: S106
    user.user_permissions.add(Permission.objects.get(codename="view_contact"))
    client.force_login(user)
    _page, body = _tab(client, story["contact"], "profile")
    assert "?tab=consent" not in body
    page, _body = _tab(client, story["contact"], "consent")
    assert page.status_code == 403


def test_each_tab_runs_a_bounded_number_of_queries(marketer, story):
    """No tab loads a contact's events one by one: the count does not grow with the events."""
    contact = story["contact"]
    counts = {}
    for tab in ("consent", "segments", "events", "messages", "experiments", "merges"):
        with CaptureQueriesContext(connection) as queries:
            _tab(marketer, contact, tab)
        counts[tab] = len(queries)
    Event.objects.bulk_create(
        Event(
            contact=contact,
            type="page_view",
            occurred_at=T0 - timedelta(days=1, minutes=i),
            source="test",
            idempotency_key=f"more-{i}",
        )
        for i in range(500)
    )
    for tab, before in counts.items():
        with CaptureQueriesContext(connection) as queries:
            _tab(marketer, contact, tab)
        assert len(queries) == before, tab
