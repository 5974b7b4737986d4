"""The raw MIME writer used with Django's SMTP backend says what Django's own message says."""

from __future__ import annotations

import email
from email import policy

import pytest
from django.core.mail import EmailMultiAlternatives

from activation.channels.email import mime_bytes

HEADERS = {
    "List-Unsubscribe": "<https://cible.example/consent/unsubscribe/abc:def/>",
    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    "Message-ID": "<cible.1.2.0@cible.localhost>",
}
LONG = "x" * 1200


def django_bytes(*, subject, text, html):
    message = EmailMultiAlternatives(
        subject=subject,
        body=text,
        from_email="Cible <no-reply@cible.localhost>",
        to=["zoe@example.fr"],
        headers=HEADERS,
    )
    if html:
        message.attach_alternative(html, "text/html")
    return message.message().as_bytes(linesep="\r\n")


@pytest.mark.parametrize(
    ("subject", "text", "html"),
    [
        ("Bonjour Zoé !", "Bonjour Zoé,\n\nÀ bientôt.\n", "<p>Bonjour Zoé,</p>\n<p>À bientôt</p>"),
        (
            " ".join(["Soldes"] * 20),
            f"Ligne longue : {LONG}é\n.ligne qui commence par un point",
            "",
        ),
        ("Hello", "a\r\nb\rc\nd", f"<p>{LONG}</p>"),
        ("😀 Offre", "", "<p>Seulement du HTML</p>"),
    ],
)
def test_raw_mime_reads_back_like_djangos_message(subject, text, html):
    ours = email.message_from_bytes(
        mime_bytes(
            from_header="Cible <no-reply@cible.localhost>",
            to="zoe@example.fr",
            subject=subject,
            text=text,
            html=html,
            headers=HEADERS,
        ),
        policy=policy.default,
    )
    theirs = email.message_from_bytes(
        django_bytes(subject=subject, text=text, html=html), policy=policy.default
    )

    for name in ("Subject", "From", "To", "Message-ID", "List-Unsubscribe", "MIME-Version"):
        assert str(ours[name]) == str(theirs[name]), name
    assert ours["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert ours["Date"]
    assert ours.get_content_type() == theirs.get_content_type()
    for kind in ("plain", "html"):
        mine, django = ours.get_body((kind,)), theirs.get_body((kind,))
        assert (mine is None) == (django is None), kind
        if mine is not None:
            assert mine.get_content() == django.get_content(), kind
            assert mine["Content-Transfer-Encoding"] == django["Content-Transfer-Encoding"]


def test_raw_mime_lines_fit_smtp():
    data = mime_bytes(
        from_header="Cible <no-reply@cible.localhost>",
        to="zoe@example.fr",
        subject="Bonjour Zoé",
        text=LONG,
        html=f"<p>{LONG}</p>",
        headers=HEADERS,
    )
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    assert b"\n" not in data.replace(b"\r\n", b"")
