"""Open pixel, click redirect (no open redirect), machine opens, conversion attribution."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from activation.models import Attribution, OutboxMessage
from activation.services import (
    campaign_run_launch,
    conversions_attribute,
    outbox_deliver_batch,
)
from activation.tracking import click_url
from contacts.models import Event
from tests.activation.conftest import NOW

pytestmark = pytest.mark.django_db

LINK = re.compile(r'href="(http://[^"]+/t/c/[^"]+)"')
PIXEL = re.compile(r'src="(http://[^"]+/t/o/[^"]+)"')


@pytest.fixture
def sent_email(consenting, make_campaign):
    """One marketing email sent (locmem backend); returns (row, html)."""
    contact = consenting(1)[0]
    run = campaign_run_launch(campaign=make_campaign([contact]), now=NOW)
    outbox_deliver_batch(channel="email", limit=10)
    row = OutboxMessage.objects.get(run=run)
    [message] = mail.outbox
    html = message.alternatives[0][0]
    return row, html


def path_of(url: str) -> str:
    return url.split("8000", 1)[1]


def test_open_pixel_records_an_open_with_campaign_run_and_variant(client, sent_email):
    row, html = sent_email
    pixel = PIXEL.search(html).group(1)

    response = client.get(
        path_of(pixel),
        HTTP_USER_AGENT="Mozilla/5.0 (Windows NT 10.0; Win64; x64) Firefox/128.0",
        REMOTE_ADDR="203.0.113.9",
    )

    assert response.status_code == 200 and response["Content-Type"] == "image/gif"
    event = Event.objects.get(type="email_open", contact_id=row.contact_id)
    assert event.properties["machine_open"] is False
    assert event.properties["message_id"] == row.pk
    assert event.properties["run_id"] == row.run_id
    assert event.properties["campaign_id"] == row.run.campaign_id
    assert event.properties["variant"] == ""


@pytest.mark.parametrize(
    ("user_agent", "ip"),
    [
        ("Mozilla/5.0", "198.51.100.7"),  # Apple Mail Privacy Protection's bare user agent
        ("Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15", "17.58.100.2"),  # Apple network
        ("Barracuda Sentinel (EE)", "198.51.100.8"),  # security scanner
    ],
)
def test_machine_opens_are_flagged(client, sent_email, user_agent, ip):
    row, html = sent_email
    client.get(path_of(PIXEL.search(html).group(1)), HTTP_USER_AGENT=user_agent, REMOTE_ADDR=ip)
    assert Event.objects.get(type="email_open").properties["machine_open"] is True


def test_click_redirects_to_the_url_of_the_message_and_records_it(client, sent_email):
    row, html = sent_email
    link = LINK.search(html).group(1)

    response = client.get(path_of(link))

    assert response.status_code == 302
    assert response["Location"] == "https://shop.example.fr/soldes?utm=cible&x=1"
    event = Event.objects.get(type="email_click")
    assert event.contact_id == row.contact_id
    assert event.properties["url"] == "https://shop.example.fr/soldes?utm=cible&x=1"
    assert event.properties["run_id"] == row.run_id


def test_no_open_redirect_tampered_or_forged_tokens_are_refused(client, sent_email):
    row, html = sent_email
    link = path_of(LINK.search(html).group(1))
    tampered = link[:-3] + ("aaa" if not link.endswith("aaa") else "bbb")
    assert client.get(tampered).status_code == 404
    # A token signed with another key (an attacker's) for an arbitrary target.
    from django.test import override_settings

    with override_settings(SECRET_KEY="attacker-key-" + "x" * 40):
        forged = path_of(click_url(row.pk, "https://evil.example/phish"))
    assert client.get(forged).status_code == 404
    assert not Event.objects.filter(type="email_click").exists()


def test_invalid_pixel_token_answers_the_gif_but_records_nothing(client, sent_email):
    response = client.get("/t/o/123:forged.gif")
    assert response.status_code == 200
    assert not Event.objects.filter(type="email_open").exists()


def sent_at(row, at):
    OutboxMessage.objects.filter(pk=row.pk).update(sent_at=at)


def test_conversion_attributed_to_the_last_message_within_the_window(
    consenting, make_campaign, settings
):
    settings.ACTIVATION_ATTRIBUTION_WINDOW_HOURS = 72
    contact = consenting(1)[0]
    first = campaign_run_launch(campaign=make_campaign([contact]), now=NOW)
    second = campaign_run_launch(campaign=make_campaign([contact]), now=NOW)
    outbox_deliver_batch(channel="email", limit=10)
    now = timezone.now()
    row1, row2 = OutboxMessage.objects.get(run=first), OutboxMessage.objects.get(run=second)
    sent_at(row1, now - timedelta(hours=30))
    sent_at(row2, now - timedelta(hours=20))
    purchase = Event.objects.create(
        contact=contact,
        type="purchase",
        occurred_at=now - timedelta(hours=1),
        properties={"amount": 59.9},
        source="shop",
        idempotency_key="o-1",
    )
    before_any = Event.objects.create(
        contact=contact,
        type="purchase",
        occurred_at=now - timedelta(hours=40),
        properties={"amount": 10},
        source="shop",
        idempotency_key="o-0",
    )

    assert conversions_attribute(contact_ids=[contact.pk], now=now) == 1
    assert conversions_attribute(contact_ids=[contact.pk], now=now) == 0  # idempotent

    attribution = Attribution.objects.get()
    assert attribution.event == purchase
    assert attribution.message == row2 and attribution.run == second
    assert str(attribution.value) == "59.90"
    assert not Attribution.objects.filter(event=before_any).exists()


def test_conversion_outside_the_window_is_not_attributed(consenting, make_campaign, settings):
    settings.ACTIVATION_ATTRIBUTION_WINDOW_HOURS = 24
    contact = consenting(1)[0]
    run = campaign_run_launch(campaign=make_campaign([contact]), now=NOW)
    outbox_deliver_batch(channel="email", limit=10)
    now = timezone.now()
    sent_at(OutboxMessage.objects.get(run=run), now - timedelta(hours=30))
    Event.objects.create(
        contact=contact, type="purchase", occurred_at=now, source="shop", idempotency_key="o-2"
    )
    assert conversions_attribute(contact_ids=[contact.pk], now=now) == 0


def test_ingested_purchase_is_attributed_through_the_events_signal(
    consenting, make_campaign, django_capture_on_commit_callbacks
):
    from contacts.services import events_record_bulk

    contact = consenting(1)[0]
    campaign_run_launch(campaign=make_campaign([contact]), now=NOW)
    outbox_deliver_batch(channel="email", limit=10)
    with django_capture_on_commit_callbacks(execute=True):
        outcome = events_record_bulk(
            items=[
                {
                    "external_id": contact.external_id,
                    "type": "purchase",
                    "timestamp": timezone.now().isoformat(),
                    "idempotency_key": "order-77",
                    "properties": {"amount": 20},
                }
            ],
            source="shop",
        )
    assert [r.status for r in outcome.results] == ["created"], outcome.results
    assert Attribution.objects.get().event.idempotency_key == "order-77"


def test_tracking_links_resolve_to_the_tracking_views(client, sent_email):
    from django.conf import settings
    from django.urls import resolve

    from activation.tracking import click_url, open_pixel_url

    base = settings.CIBLE_PUBLIC_BASE_URL.rstrip("/")
    click = click_url(41, "https://shop.example.fr/a?b=1&c=é")
    pixel = open_pixel_url(41)
    assert click.startswith(base) and pixel.startswith(base)
    assert resolve(click.removeprefix(base)).url_name == "click"
    assert resolve(pixel.removeprefix(base)).url_name == "open"
    assert click_url(42, "https://x.example/") != click_url(41, "https://x.example/")
