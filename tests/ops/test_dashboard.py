"""The home dashboard: every number checked against a hand count on fixed data, the cards each
role sees, and the numbers formatted in the page's language."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone, translation

from activation.journeys.models import CampaignApproval
from activation.models import Attribution, CampaignRun, OutboxMessage
from consent.models import RightsRequest
from consent.services.suppression import suppression_add
from experiments.services import assignments_ensure
from ops import dashboard
from ops.roles import roles_sync
from tests.activation.conftest import default_purposes, grant  # noqa: F401 - fixture
from tests.factories import (
    CampaignFactory,
    ContactFactory,
    EventFactory,
    ExperimentFactory,
    VariantFactory,
)

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def _message(run, contact, *, sent_at, state="sent"):
    return OutboxMessage.objects.create(
        run=run,
        contact=contact,
        step=OutboxMessage.objects.filter(run=run, contact=contact).count(),
        channel="email",
        state=state,
        next_attempt_at=sent_at,
        created_at=sent_at,
        sent_at=sent_at if state == "sent" else None,
    )


def _event(contact, type, at, **properties):
    return EventFactory(contact=contact, type=type, occurred_at=at, properties=properties)


@pytest.fixture
def population(default_purposes):  # noqa: F811
    """Five contacts and one anonymous profile; hand counts are in each test."""
    c = [ContactFactory(email=f"p{i}@example.fr", phone=f"+3361111000{i}") for i in range(5)]
    ContactFactory(is_anonymous=True)
    for contact in c[:3]:
        grant(contact, channel="email", at=NOW - 30 * DAY)
    suppression_add(channel="email", address=c[2].email, reason="complaint", source="test")
    grant(c[0], channel="sms", at=NOW - 30 * DAY)
    c[3].phone = ""
    c[3].save()
    grant(c[3], channel="sms", at=NOW - 30 * DAY)  # consents but has no phone number
    return c


@pytest.fixture
def sends(population):
    """Messages, tracking events and attributions around NOW (see the hand counts below)."""
    c = population
    campaign = CampaignFactory()
    run = CampaignRun.objects.create(campaign=campaign, status="done", created_at=NOW - 90 * DAY)
    m = {}
    for i, days in enumerate([1, 2, 2, 3]):  # last 7 days: 4 sent
        m[i + 1] = _message(run, c[i], sent_at=NOW - days * DAY)
    m[5] = _message(run, c[0], sent_at=NOW - 10 * DAY)  # 7 days before: 2 sent
    m[6] = _message(run, c[1], sent_at=NOW - 10 * DAY)
    m[7] = _message(run, c[2], sent_at=NOW - 20 * DAY)  # last 30 days: 4 + 2 + 1 = 7
    m[8] = _message(run, c[3], sent_at=NOW - 40 * DAY)  # 30 days before: 1
    _message(run, c[4], sent_at=NOW - DAY, state="failed")  # not sent: not counted
    _message(run, c[4], sent_at=NOW - 70 * DAY)  # outside every window
    _message(run, c[4], sent_at=NOW + DAY)  # in the future: not counted

    at = NOW - DAY
    # Human opens in the last 7 days: m1 twice (counts once), m2, and one webhook open that
    # names no message (counts once) = 3. m3's open is a machine's (counted apart).
    _event(c[0], "email_open", at, message_id=m[1].pk, machine_open=False)
    _event(c[0], "email_open", at + timedelta(hours=1), message_id=m[1].pk, machine_open=False)
    _event(c[1], "email_open", at, message_id=m[2].pk, machine_open=False)
    _event(c[4], "email_open", at)
    _event(c[2], "email_open", at, message_id=m[3].pk, machine_open=True)
    # Clicks: m1 twice = 1. Bounces: 1 → delivered 3. Unsubscribes: c1 twice = 1.
    _event(c[0], "email_click", at, message_id=m[1].pk, url="https://a")
    _event(c[0], "email_click", at, message_id=m[1].pk, url="https://b")
    _event(c[3], "email_bounce", at, bounce_type="hard")
    _event(c[1], "unsubscribe", at)
    _event(c[1], "unsubscribe", at + timedelta(hours=2))
    # The 7 days before: one complaint, one click. Outside: an open 70 days ago.
    _event(c[0], "email_complaint", NOW - 9 * DAY)
    _event(c[1], "email_click", NOW - 10 * DAY, message_id=m[6].pk)
    _event(c[0], "email_open", NOW - 70 * DAY, message_id=m[5].pk, machine_open=False)

    purchase = _event(c[0], "purchase", at, amount=59.9)
    Attribution.objects.create(
        event=purchase, message=m[1], run=run, value=Decimal("59.90"), attributed_at=at
    )
    older = _event(c[1], "purchase", NOW - 10 * DAY, amount=10)
    Attribution.objects.create(
        event=older, message=m[6], run=run, value=Decimal("10.00"), attributed_at=NOW - 10 * DAY
    )
    return m


@pytest.mark.django_db
def test_contactable_audience_per_channel_uses_consent_and_addresses(population):
    summary = dashboard.audience_summary()
    assert summary["contacts"] == 5  # the anonymous profile is not a contact to count
    by_channel = {code: size for code, _label, size in summary["channels"]}
    # email: c0, c1 (c2 is on the suppression list); sms: c0 (c3 has no phone); push: nobody.
    assert by_channel == {"email": 2, "sms": 1, "push": 0}


@pytest.mark.django_db
def test_counts_per_period_match_a_hand_count(sends):
    counts = dashboard.period_counts(now=NOW)
    week, week_before = counts["7"], counts["7p"]
    assert (week.sent, week.bounced, week.delivered) == (4, 1, 3)
    assert (week.human_opens, week.machine_opens, week.clicks) == (3, 1, 1)
    assert (week.unsubscribes, week.complaints) == (1, 0)
    assert (week.conversions, week.revenue) == (1, pytest.approx(59.90))
    assert (week_before.sent, week_before.clicks, week_before.complaints) == (2, 1, 1)
    assert (week_before.human_opens, week_before.conversions) == (0, 1)
    assert counts["30"].sent == 7 and counts["30p"].sent == 1
    assert counts["30"].human_opens == 3 and counts["30"].conversions == 2
    assert counts["30"].revenue == pytest.approx(69.90)
    assert week.rate("delivery") == 0.75 and week.rate("human_open") == 0.75
    assert week.rate("click") == 0.25 and week_before.rate("complaint") == 0.5


@pytest.mark.django_db
def test_rates_and_trends_are_written_in_the_active_language(sends):
    with translation.override("fr"):
        week = dashboard.send_summary(now=NOW)[0]
    rows = {row["label"]: row for row in week.rows}
    assert (
        rows["Messages envoyés"]["value"] == "4"
        and rows["Messages envoyés"]["trend"]["text"] == "+100,0 %"
    )
    assert rows["Ouverts (personnes)"]["value"] == "75,0 %"
    assert rows["Ouverts (personnes)"]["trend"] == {"text": "+75,0 pt", "tone": "good"}
    # Complaints fell from 1 in 2 to none: a drop is good news.
    assert rows["Plaintes"]["trend"] == {"text": "−50,0 pt", "tone": "good"}
    assert rows["Chiffre d’affaires attribué"]["value"] == "59,90 €"
    with translation.override("en"):
        week = dashboard.send_summary(now=NOW)[0]
    rows = {row["label"]: row for row in week.rows}
    assert rows["Opened (people)"]["value"] == "75.0 %"


@pytest.mark.django_db
def test_large_numbers_are_grouped_in_french(population):
    with translation.override("fr"):
        assert dashboard.number(1204) == "1\xa0204"
        assert dashboard.percent(0.175) == "17,5 %"


@pytest.mark.django_db
def test_open_rights_requests_are_soonest_due_first_with_overdue_ones_flagged(population):
    late = RightsRequest.objects.create(
        kind="access", requester="late@example.fr", received_at=NOW - 31 * DAY
    )
    RightsRequest.objects.create(
        kind="erasure", requester="soon@example.fr", received_at=NOW - 20 * DAY
    )
    RightsRequest.objects.create(
        kind="access", received_at=NOW - 40 * DAY, completed_at=NOW - 20 * DAY
    )
    total, overdue, rows = dashboard.open_rights_requests(now=NOW)
    assert (total, overdue) == (2, 1)
    assert [r["requester"] for r in rows] == ["late@example.fr", "soon@example.fr"]
    assert rows[0]["overdue"] and not rows[1]["overdue"]
    assert rows[0]["url"].endswith(f"/consent/rightsrequest/{late.pk}/change/")


@pytest.mark.django_db
def test_running_experiment_shows_the_verdict_of_its_results_page(population):
    from experiments.results import experiment_results

    experiment = ExperimentFactory(status="running", started_at=NOW - 5 * DAY)
    VariantFactory(experiment=experiment, key="A", is_control=True)
    VariantFactory(experiment=experiment, key="B")
    ExperimentFactory(status="draft")
    rows, _counted_at = dashboard.running_experiments()
    assert len(rows) == 1
    expected = experiment_results(experiment=experiment, refresh=False).headline[0]
    assert rows[0]["verdict"] == expected and rows[0]["name"] == experiment.name


@pytest.mark.django_db
def test_pending_approvals_are_counted_and_linked(population):
    user = User.objects.create_user("m")
    campaign = CampaignFactory(name="Soldes d’été")
    approval = CampaignApproval.objects.create(
        campaign=campaign, requested_by=user, requested_at=NOW, eligible=1204
    )
    CampaignApproval.objects.create(
        campaign=CampaignFactory(), requested_by=user, requested_at=NOW, status="approved"
    )
    with translation.override("fr"):
        total, rows = dashboard.pending_approvals()
    assert total == 1 and rows[0]["campaign"] == "Soldes d’été"
    assert rows[0]["eligible"] == "1\xa0204"
    assert rows[0]["url"].endswith(f"/campaignapproval/{approval.pk}/change/")


def _user(role):
    roles_sync()
    user = User.objects.create_user(role.lower(), password="x", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    return user


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "first", "cards"),
    [
        ("Marketer", "audience", {"audience", "sends", "experiments", "upcoming", "approvals"}),
        ("Analyst", "audience", {"audience", "sends", "experiments", "upcoming", "approvals"}),
        ("DPO", "rights", {"rights", "audience", "sends", "experiments", "upcoming"}),
    ],
)
def test_each_role_sees_the_cards_it_may_open(population, role, first, cards):
    user = _user(role)
    shown = dashboard.dashboard_cards(user=user, now=NOW)
    keys = [card["key"] for card in shown]
    assert keys[0] == first
    assert cards <= set(keys)
    assert "health" not in keys  # worker health is an administrator's page
    for card in shown:
        assert user.has_perm(_permission_of(card["link"])), card["key"]


def _permission_of(link: str) -> str:
    """The view permission of the admin page a card links to."""
    from django.urls import resolve

    match = resolve(link.split("?")[0])
    if match.url_name == "journeys_calendar":
        return "journeys.view_campaignschedule"
    model_admin = match.func.model_admin
    meta = model_admin.model._meta
    return f"{meta.app_label}.view_{meta.model_name}"


@pytest.mark.django_db
def test_dashboard_page_shows_the_cards_in_french(client, sends):
    user = _user("DPO")
    RightsRequest.objects.create(kind="access", requester="late@example.fr", received_at=NOW)
    client.force_login(user)
    page = client.get("/admin/", HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert "Demandes d’exercice de droits ouvertes" in page
    assert "Envois et résultats" in page and "7 derniers jours" in page
    assert page.index('data-card="rights"') < page.index('data-card="audience"')


@pytest.mark.django_db
def test_administrator_sees_worker_and_scheduler_health(client, population):
    from ops.models import WorkerHeartbeat

    admin = User.objects.create_superuser("root", password="x")
    WorkerHeartbeat.objects.create(worker="beat@host", last_seen_at=datetime.now(UTC))
    client.force_login(admin)
    page = client.get("/admin/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'data-card="health"' in page and "Scheduler (beat)" in page


@pytest.mark.django_db
def test_send_counts_are_kept_for_a_few_minutes_then_recounted(client, sends, settings):
    user = _user("Marketer")
    client.force_login(user)

    def sent_last_7_days():
        page = client.get("/admin/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
        row = page[page.index("Messages sent") :]
        return row.split("<td data-value>")[1].split("<")[0].strip(), "Counted at" in page

    first, stamped = sent_last_7_days()
    run = CampaignRun.objects.get()
    _message(run, ContactFactory(), sent_at=timezone.now() - timedelta(hours=1))
    assert sent_last_7_days()[0] == first and stamped  # the kept count, with its time
    settings.CIBLE_DASHBOARD_CACHE_SECONDS = 0
    assert int(sent_last_7_days()[0]) == int(first) + 1


@pytest.mark.django_db
def test_beat_counts_the_cards_ahead_so_a_visit_never_counts(client, sends, settings, monkeypatch):
    """At 10M contacts the audience and send counts take longer than a visitor waits: beat
    counts them into the cache, and the home page shows those counts without counting."""
    from config.celery import app
    from ops.tasks import refresh_dashboard_counts

    schedule = settings.CELERY_BEAT_SCHEDULE["ops-dashboard-counts"]
    assert schedule["task"] in app.tasks  # the worker knows the task beat sends
    assert schedule["schedule"] < settings.CIBLE_DASHBOARD_CACHE_SECONDS  # no gap between
    experiment = ExperimentFactory(status="running", started_at=timezone.now())
    VariantFactory(experiment=experiment, key="A", is_control=True)
    VariantFactory(experiment=experiment, key="B")
    assignments_ensure(
        experiment=experiment, contact_ids=[c.pk for c in ContactFactory.create_batch(3)]
    )
    took = refresh_dashboard_counts.apply().get()
    assert set(took) == {"audience", "periods", "experiments"}

    def counting_in_the_request(**kwargs):
        raise AssertionError("the visit counted")

    monkeypatch.setattr(dashboard, "audience_summary", counting_in_the_request)
    monkeypatch.setattr(dashboard, "period_counts", counting_in_the_request)
    # The running test's assignments are not scanned by the visit either.
    monkeypatch.setattr("experiments.results.experiment_aggregates", counting_in_the_request)
    client.force_login(_user("Marketer"))
    page = client.get("/admin/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    card = page[page.index('data-card="experiments"') :]
    assert experiment.name in card and "Counted at" in card.split("data-card=")[1]
    expected = dashboard.send_summary(
        now=timezone.now(), counts=dashboard._cached("periods", lambda: None)[0]
    )
    assert 'data-card="audience"' in page and 'data-card="sends"' in page
    assert "Counted at" in page
    sent = page[page.index("Messages sent") :].split("<td data-value>")[1].split("<")[0].strip()
    assert sent == expected[0].rows[0]["value"]  # beat's count, shown as counted
