"""Campaign reports: every number checked against a hand count on fixed data."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest

from activation.models import OutboxMessage
from activation.reports import campaign_report, run_report
from activation.services import (
    campaign_run_launch,
    conversions_attribute,
    outbox_deliver_batch,
    tracking_click_record,
    tracking_open_record,
)
from contacts.models import Event
from tests.activation.conftest import NOW, withdraw
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db

HUMAN = {
    "user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Firefox/128.0",
    "ip": "203.0.113.9",
}
APPLE_MPP = {"user_agent": "Mozilla/5.0", "ip": "17.58.100.2"}
SOLDES = "https://shop.example.fr/soldes"
NOUVEAUTES = "https://shop.example.fr/nouveautes"


def feedback(contact, type, at, key, **properties):
    """A provider webhook event (no run or message id: linked by contact and time)."""
    return Event.objects.create(
        contact=contact,
        type=type,
        occurred_at=at,
        properties=properties,
        source="webhook:mailer",
        idempotency_key=key,
        channel="email",
    )


@pytest.fixture
def sent_run(consenting, make_campaign, settings):
    """Five contacts who consented and one who did not; the five are sent at NOW; then, by hand:

    a: human open + machine open, clicks SOLDES, complaint
    b: machine open only, unsubscribes (consent withdrawn 2 h after the send)
    c: human open, clicks SOLDES twice and NOUVEAUTES once, buys for 42,50 €
    d: soft bounce
    e: hard bounce; a bounce of a (before the send) and one of b (after the window) do not count
    """
    settings.ACTIVATION_ATTRIBUTION_WINDOW_HOURS = 72
    a, b, c, d, e = consenting(5)
    nobody = ContactFactory()
    campaign = make_campaign([a, b, c, d, e, nobody])
    run = campaign_run_launch(campaign=campaign, now=NOW)
    outbox_deliver_batch(channel="email", limit=10)
    OutboxMessage.objects.filter(run=run).exclude(sent_at=None).update(sent_at=NOW)
    msg = {m.contact_id: m.pk for m in OutboxMessage.objects.filter(run=run)}
    h = timedelta(hours=1)
    tracking_open_record(message_id=msg[a.pk], at=NOW + h, **HUMAN)
    tracking_open_record(message_id=msg[a.pk], at=NOW + h * 1.5, **APPLE_MPP)
    tracking_open_record(message_id=msg[b.pk], at=NOW + h, **APPLE_MPP)
    tracking_open_record(message_id=msg[c.pk], at=NOW + h * 2, **HUMAN)
    tracking_click_record(message_id=msg[a.pk], url=SOLDES, user_agent="x", at=NOW + h)
    tracking_click_record(message_id=msg[c.pk], url=SOLDES, user_agent="x", at=NOW + h * 2)
    tracking_click_record(message_id=msg[c.pk], url=SOLDES, user_agent="x", at=NOW + h * 3)
    tracking_click_record(message_id=msg[c.pk], url=NOUVEAUTES, user_agent="x", at=NOW + h * 3)
    feedback(a, "email_complaint", NOW + h * 4, "c-a", address=a.email)
    feedback(d, "email_bounce", NOW + h / 60, "b-d", bounce_type="soft")
    feedback(e, "email_bounce", NOW + h / 60, "b-e", bounce_type="hard")
    feedback(a, "email_bounce", NOW - h, "b-a-before", bounce_type="hard")
    feedback(b, "email_bounce", NOW + h * 80, "b-b-late", bounce_type="hard")
    withdraw(b, at=NOW + h * 2)
    Event.objects.create(
        contact=c,
        type="purchase",
        occurred_at=NOW + h * 5,
        properties={"amount": 42.5},
        source="shop",
        idempotency_key="order-1",
    )
    conversions_attribute(contact_ids=[c.pk], now=NOW + h * 6)
    return run


def test_run_report_counts_what_happened(sent_run):
    report = run_report(sent_run, now=NOW + timedelta(hours=6))
    t = report.total

    assert report.audience == 6
    assert [(x.reason, x.at_launch, x.now) for x in report.exclusions] == [("no_consent", 1, 1)]
    assert (t.sent, t.failed, t.waiting, t.excluded) == (5, 0, 0, 1)
    assert (t.bounced_hard, t.bounced_soft, t.delivered) == (1, 1, 3)
    assert (t.human_opens, t.machine_opens) == (2, 2)  # a and c; a and b (Apple MPP)
    assert (t.clickers, t.clicks) == (2, 4)
    assert (t.unsubscribes, t.complaints) == (1, 1)
    assert (t.conversions, t.revenue) == (1, Decimal("42.50"))
    assert [(x.url, x.clicks, x.clickers) for x in report.links] == [
        (SOLDES, 3, 2),
        (NOUVEAUTES, 1, 1),
    ]
    assert [(f.channel, f.variant, f.sent, f.human_opens) for f in report.breakdown] == [
        ("email", "", 5, 2)
    ]


def test_report_over_time_counts_human_opens_clicks_and_conversions_per_hour(sent_run):
    report = run_report(sent_run, now=NOW + timedelta(hours=6))

    assert report.timeline_unit == "hour"
    assert [(p["at"], p["opens"], p["clicks"], p["conversions"]) for p in report.timeline] == [
        ("2026-06-10T11:00", 1, 1, 0),  # a's human open (b's and a's machine opens left out)
        ("2026-06-10T12:00", 1, 1, 0),
        ("2026-06-10T13:00", 0, 2, 0),
        ("2026-06-10T15:00", 0, 0, 1),
    ]


def test_report_counts_per_day_once_the_send_is_more_than_three_days_old(sent_run):
    report = run_report(sent_run, now=NOW + timedelta(days=5))

    assert report.timeline_unit == "day"
    assert [(p["at"], p["opens"], p["clicks"], p["conversions"]) for p in report.timeline] == [
        ("2026-06-10", 2, 4, 1)
    ]


def test_campaign_report_adds_its_runs_and_leaves_dry_runs_out(sent_run):
    campaign = sent_run.campaign
    campaign_run_launch(campaign=campaign, now=NOW, dry_run=True)

    report = campaign_report(campaign, now=NOW + timedelta(hours=6))

    assert [r.pk for r in report.runs] == [sent_run.pk]
    assert (report.audience, report.total.sent, report.total.human_opens) == (6, 5, 2)


def user_in(role: str):
    from django.contrib.auth.models import Group, User

    user = User.objects.create_user(f"{role.lower()}-user", password="x", is_staff=True)
    user.groups.add(*Group.objects.filter(name=role))
    return user


def test_report_csv_has_every_number_and_defuses_formulas(sent_run, client):
    OutboxMessage.objects.filter(run=sent_run).update(variant='=HYPERLINK("x")')
    client.force_login(user_in("Marketer"))

    response = client.get(f"/admin/activation/campaignrun/{sent_run.pk}/report.csv")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0] == ["metric", "channel", "variant", "value"]
    values = {(r[0], r[1], r[2]): r[3] for r in rows[1:]}
    assert values[("audience", "", "")] == "6"
    assert values[("excluded:no_consent", "", "")] == "1"
    assert values[("sent", "", "")] == "5"
    assert values[("delivered", "", "")] == "3"
    assert values[("bounced_hard", "", "")] == "1"
    assert values[("human_opens", "", "")] == "2"
    assert values[("machine_opens", "", "")] == "2"
    assert values[("clickers", "", "")] == "2"
    assert values[("unsubscribes", "", "")] == "1"
    assert values[("complaints", "", "")] == "1"
    assert values[("conversions", "", "")] == "1"
    assert values[("revenue", "", "")] == "42.50"
    # A variant named like a formula is written as text (leading apostrophe), not run.
    assert values[("sent", "email", '\'=HYPERLINK("x")')] == "5"
    assert values[(f"clicks:{SOLDES}", "", "")] == "3"
    assert values[(f"clickers:{SOLDES}", "", "")] == "2"


def test_report_pages_show_the_numbers_in_french_and_refuse_who_may_not_view_runs(sent_run, client):
    from django.contrib.auth.models import User

    client.force_login(user_in("Marketer"))
    run_page = client.get(
        f"/admin/activation/campaignrun/{sent_run.pk}/report/", HTTP_ACCEPT_LANGUAGE="fr"
    )
    campaign_page = client.get(
        f"/admin/activation/campaign/{sent_run.campaign_id}/report/", HTTP_ACCEPT_LANGUAGE="fr"
    )

    assert run_page.status_code == 200 and campaign_page.status_code == 200
    html = run_page.content.decode()
    assert "Ouvertures humaines (uniques)" in html
    assert "42,50" in html
    assert SOLDES in html
    assert f"run__exact={sent_run.pk}" in html  # the outbox filtered to the run
    nobody = User.objects.create_user("nobody", password="x", is_staff=True)
    client.force_login(nobody)
    assert client.get(f"/admin/activation/campaignrun/{sent_run.pk}/report/").status_code == 403
    assert client.get(f"/admin/activation/campaignrun/{sent_run.pk}/report.csv").status_code == 403


def test_sent_message_page_shows_the_content_without_tracking(sent_run, client):
    message = OutboxMessage.objects.filter(run=sent_run, state="sent").first()
    client.force_login(user_in("Marketer"))

    html = client.get(f"/admin/activation/outboxmessage/{message.pk}/change/").content.decode()

    assert 'sandbox=""' in html and 'id="sent-html"' in html
    assert message.contact.email in html
    assert "/t/o/" not in html and "/t/c/" not in html  # looking records no open or click
    assert "shop.example.fr" in html
    assert "machine open" in html or "open" in html


@pytest.mark.postgres
def test_run_report_counts_what_happened_on_postgresql(sent_run):
    test_run_report_counts_what_happened(sent_run)
    test_report_over_time_counts_human_opens_clicks_and_conversions_per_hour(sent_run)


def test_hostile_event_properties_change_no_number(sent_run):
    contact_id = OutboxMessage.objects.filter(run=sent_run).first().contact_id
    for i, properties in enumerate(
        [
            {"run_id": str(sent_run.pk), "message_id": "abc", "machine_open": "yes"},
            {"run_id": [sent_run.pk], "message_id": {"deep": [[[1]]]}},
            ["not", "an", "object"],
            "a string",
            {"run_id": sent_run.pk, "message_id": 10**30, "url": "é" * 5000},
        ]
    ):
        Event.objects.create(
            contact_id=contact_id,
            type="email_open" if i % 2 else "email_click",
            occurred_at=NOW + timedelta(hours=1),
            properties=properties,
            source="webhook:mailer",
            idempotency_key=f"hostile-{i}",
        )

    t = run_report(sent_run, now=NOW + timedelta(hours=6)).total

    assert (t.human_opens, t.machine_opens, t.clickers, t.clicks) == (2, 2, 2, 4)


def test_variant_numbers_are_the_experiment_results_pages(consenting, make_campaign, client):
    """Sent, human opens and clickers per variant = delivered, opens and clicks per arm."""
    from django.utils import timezone

    from experiments.results import experiment_results
    from experiments.services import experiment_start
    from tests.factories import ExperimentFactory, VariantFactory

    contacts = consenting(24)
    campaign = make_campaign(contacts)
    experiment = ExperimentFactory(campaign=campaign, primary_metric="click")
    VariantFactory(experiment=experiment, key="A", is_control=True, position=0)
    VariantFactory(experiment=experiment, key="B", position=1, subject="Nouveau : -20 %")
    experiment_start(experiment=experiment, now=NOW - timedelta(minutes=1))
    run = campaign_run_launch(campaign=campaign, now=NOW)
    outbox_deliver_batch(channel="email", limit=100)
    now = timezone.now()
    sent = list(OutboxMessage.objects.filter(run=run, state="sent").order_by("pk"))
    OutboxMessage.objects.filter(run=run, state="sent").update(sent_at=now - timedelta(hours=2))
    for i, message in enumerate(sent):
        at = now - timedelta(hours=1, seconds=i)
        if i % 2 == 0:
            tracking_open_record(message_id=message.pk, at=at, **HUMAN)
        if i % 3 == 0:
            tracking_open_record(message_id=message.pk, at=at + timedelta(seconds=30), **APPLE_MPP)
        if i % 4 == 0:
            tracking_click_record(message_id=message.pk, url=SOLDES, user_agent="x", at=at)

    report = run_report(run, now=now)
    results = experiment_results(experiment=experiment, now=now)

    by_variant = {f.variant: f for f in report.breakdown}
    assert set(by_variant) == {"A", "B"}
    for arm in results.arms:
        funnel = by_variant[arm.key]
        assert funnel.sent == arm.delivered
        assert funnel.human_opens == arm.metrics["open"].count
        assert funnel.clickers == arm.metrics["click"].count
    assert sum(f.human_opens for f in by_variant.values()) == len(sent[::2])
    client.force_login(user_in("Marketer"))
    page = client.get(f"/admin/activation/campaignrun/{run.pk}/report/").content.decode()
    assert f"/experiments/{experiment.pk}/results/" in page
