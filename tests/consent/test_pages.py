"""Public pages from links in messages: RFC 8058 one-click unsubscribe (with a real SMTP
server receiving the message), double opt-in, preference centre, and bad tokens."""

import email
import threading
import time
from email import policy
from urllib.parse import urlsplit

import pytest
from aiosmtpd.controller import Controller
from django.core import signing
from django.core.mail import EmailMessage, get_connection
from django.test import Client
from django.utils import timezone

from consent.models import ConsentEvent
from consent.selectors import consent_state_as_of
from consent.services import consent_record, double_opt_in_request
from consent.tokens import (
    DOUBLE_OPT_IN,
    UNSUBSCRIBE,
    LinkPayload,
    list_unsubscribe_headers,
    preference_centre_url,
    unsubscribe_url,
)
from tests.consent.conftest import T0
from tests.services import free_port

pytestmark = pytest.mark.django_db


class Inbox:
    def __init__(self):
        self.messages: list[bytes] = []
        self.arrived = threading.Event()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd API)
        self.messages.append(envelope.content)
        self.arrived.set()
        return "250 OK"


@pytest.fixture
def smtp_inbox():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield inbox, controller.port
    finally:
        controller.stop()


def grant_email(contact, purpose="newsletter"):
    return consent_record(
        contact=contact,
        purpose=purpose,
        channel="email",
        granted=True,
        source="import",
        at=T0,
    )


def path_of(url: str) -> str:
    return urlsplit(url).path


def is_granted(contact, purpose="newsletter", channel="email") -> bool:
    return consent_state_as_of(
        contact=contact, purpose=purpose, channel=channel, at=timezone.now()
    ).granted


def test_rfc8058_one_click_unsubscribe_through_a_real_smtp_server(contact, smtp_inbox):
    inbox, port = smtp_inbox
    grant_email(contact)
    headers = list_unsubscribe_headers(contact=contact, purpose="newsletter")
    connection = get_connection(
        "django.core.mail.backends.smtp.EmailBackend", host="127.0.0.1", port=port, timeout=10
    )
    EmailMessage(
        subject="Nos nouveautés",
        body="Bonjour Zébulon",
        from_email="news@cible.localhost",
        to=[contact.email],
        headers=headers,
        connection=connection,
    ).send()
    assert inbox.arrived.wait(10), "the SMTP server received nothing"
    received = email.message_from_bytes(inbox.messages[0], policy=policy.default)
    assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = str(received["List-Unsubscribe"]).strip()
    assert link.startswith("<http://127.0.0.1:8000/consent/unsubscribe/") and link.endswith(">")
    url = link[1:-1]

    # What a mailbox provider does: POST the fixed body, no cookies, no CSRF token.
    provider = Client(enforce_csrf_checks=True)
    response = provider.post(
        path_of(url),
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert not is_granted(contact)
    row = ConsentEvent.objects.filter(contact=contact).first()
    assert (row.granted, row.source, row.proof["one_click"]) == (False, "unsubscribe_link", True)
    # A replayed POST changes nothing.
    provider.post(
        path_of(url),
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert ConsentEvent.objects.filter(contact=contact, granted=False).count() == 1


def test_unsubscribe_get_shows_a_confirmation_page_and_changes_nothing(contact, client):
    grant_email(contact)
    url = unsubscribe_url(contact=contact, purpose="newsletter", channel="email")
    response = client.get(path_of(url) + "?lang=fr")
    assert response.status_code == 200
    assert (
        "Lettre d&#x27;information" in response.content.decode()
        or "Lettre d'information" in response.content.decode()
    )
    assert is_granted(contact)
    response = client.post(path_of(url) + "?lang=en")
    assert "You are unsubscribed" in response.content.decode()
    assert not is_granted(contact)


def _old_token(kind: str, payload: LinkPayload, *, days: int) -> str:
    class PastSigner(signing.TimestampSigner):
        def timestamp(self):
            return signing.b62_encode(int(time.time()) - days * 86400)

    data = {"c": payload.contact_id, "p": payload.purpose, "ch": payload.channel}
    if payload.request_event_id is not None:
        data["e"] = payload.request_event_id
    return PastSigner(salt=kind).sign_object(data, compress=True)


def test_forged_expired_and_wrong_kind_tokens_get_one_clear_page_and_change_nothing(
    contact, client
):
    grant_email(contact)
    good = path_of(unsubscribe_url(contact=contact, purpose="newsletter", channel="email"))
    token = good.rstrip("/").rsplit("/", 1)[1]
    forged = token[:-3] + ("aaa" if not token.endswith("aaa") else "bbb")
    expired = _old_token(UNSUBSCRIBE, LinkPayload(contact.pk, "newsletter", "email"), days=500)
    other_kind = path_of(preference_centre_url(contact=contact)).rstrip("/").rsplit("/", 1)[1]
    unknown_contact = signing.dumps(
        {"c": contact.pk + 999, "p": "newsletter", "ch": "email"}, salt=UNSUBSCRIBE, compress=True
    )
    pages = set()
    for bad in (forged, expired, other_kind, unknown_contact):
        response = client.post(f"/consent/unsubscribe/{bad}/?lang=en")
        assert response.status_code == 400
        body = response.content.decode()
        assert "This link is not valid" in body
        assert contact.email not in body
        pages.add(body)
    assert len(pages) == 1  # same page whatever went wrong: nothing leaks
    assert is_granted(contact)
    assert ConsentEvent.objects.count() == 1


def test_double_opt_in_link_confirms_once_and_expired_link_does_not(
    contact, client, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        request = double_opt_in_request(contact=contact, purpose="newsletter", source="form", at=T0)
    link = next(line for line in mailoutbox[0].body.splitlines() if "/consent/confirm/" in line)
    page = client.get(path_of(link.strip()))
    assert page.status_code == 200 and not is_granted(contact)  # prefetching confirms nothing
    assert client.post(path_of(link.strip())).status_code == 200
    assert is_granted(contact)
    replay = client.post(path_of(link.strip()) + "?lang=en")
    assert replay.status_code == 400 and "This link is not valid" in replay.content.decode()
    assert ConsentEvent.objects.filter(contact=contact).count() == 2

    second = double_opt_in_request(contact=contact, purpose="promotions", source="form", at=T0)
    stale = _old_token(
        DOUBLE_OPT_IN,
        LinkPayload(contact.pk, "promotions", "email", request_event_id=second.pk),
        days=8,
    )
    assert client.post(f"/consent/confirm/{stale}/").status_code == 400
    assert not is_granted(contact, purpose="promotions")
    assert request.pk != second.pk


def test_preference_centre_in_french_and_english_saves_toggles(contact, client):
    grant_email(contact, purpose="newsletter")
    url = path_of(preference_centre_url(contact=contact))
    french = client.get(url).content.decode()  # contact.locale is "fr"
    assert "Vos préférences" in french and "Offres promotionnelles" in french
    english = client.get(url + "?lang=en").content.decode()
    assert "Your preferences" in english and "Promotional offers" in english
    assert 'value="newsletter:email" checked' in english

    response = client.post(
        url + "?lang=en", {"granted": ["promotions:sms", "product_updates:push"]}
    )
    assert "Your preferences have been saved." in response.content.decode()
    assert not is_granted(contact, "newsletter", "email")
    assert is_granted(contact, "promotions", "sms")
    assert is_granted(contact, "product_updates", "push")
    assert not is_granted(contact, "profiling", "any")  # unchecked: objection recorded
    sources = set(ConsentEvent.objects.filter(contact=contact).values_list("source", flat=True))
    assert sources == {"import", "preference_centre"}
    # Saving the same choices again writes nothing.
    before = ConsentEvent.objects.count()
    client.post(url, {"granted": ["promotions:sms", "product_updates:push"]})
    assert ConsentEvent.objects.count() == before
