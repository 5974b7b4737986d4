"""Signed links put in messages: one-click unsubscribe (RFC 8058), preference centre, double
opt-in confirmation. Tokens are signed with ``SECRET_KEY`` (``django.core.signing``, with a salt
per kind) and carry their creation time; they expire after ``CONSENT_LINK_MAX_AGE_DAYS``
(``CONSENT_DOUBLE_OPT_IN_MAX_AGE_DAYS`` for confirmations). They hold ids, never an address.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.urls import reverse

from contacts.models import Contact

UNSUBSCRIBE = "consent.unsubscribe"
PREFERENCES = "consent.preferences"
DOUBLE_OPT_IN = "consent.double-opt-in"


class InvalidToken(Exception):
    """Forged, altered or expired token (the message never says which address it was for)."""


@dataclass(frozen=True)
class LinkPayload:
    contact_id: int
    purpose: str = ""
    channel: str = ""
    request_event_id: int | None = None


def _max_age(kind: str) -> timedelta:
    if kind == DOUBLE_OPT_IN:
        return timedelta(days=settings.CONSENT_DOUBLE_OPT_IN_MAX_AGE_DAYS)
    return timedelta(days=settings.CONSENT_LINK_MAX_AGE_DAYS)


def make_token(kind: str, payload: LinkPayload) -> str:
    data = {"c": payload.contact_id}
    if payload.purpose:
        data["p"] = payload.purpose
    if payload.channel:
        data["ch"] = payload.channel
    if payload.request_event_id is not None:
        data["e"] = payload.request_event_id
    return signing.dumps(data, salt=kind, compress=True)


def read_token(kind: str, token: str) -> LinkPayload:
    """The payload of a valid token of ``kind``; ``InvalidToken`` otherwise."""
    try:
        data = signing.loads(token, salt=kind, max_age=_max_age(kind))
        return LinkPayload(
            contact_id=int(data["c"]),
            purpose=str(data.get("p", "")),
            channel=str(data.get("ch", "")),
            request_event_id=int(data["e"]) if "e" in data else None,
        )
    except (signing.BadSignature, KeyError, TypeError, ValueError) as exc:
        raise InvalidToken from exc


def absolute(path: str) -> str:
    return settings.CIBLE_PUBLIC_BASE_URL.rstrip("/") + path


def _contact_id(contact: Contact | int) -> int:
    return contact.pk if isinstance(contact, Contact) else int(contact)


def _purpose_code(purpose) -> str:
    return getattr(purpose, "code", purpose)


def unsubscribe_url(*, contact: Contact | int, purpose, channel: str) -> str:
    """Absolute URL that withdraws ``purpose`` on ``channel``: GET shows a confirmation page,
    POST (RFC 8058 one-click, no login, cookie or CSRF token needed) withdraws at once."""
    token = make_token(
        UNSUBSCRIBE,
        LinkPayload(
            contact_id=_contact_id(contact), purpose=_purpose_code(purpose), channel=channel
        ),
    )
    return absolute(reverse("consent:unsubscribe", args=[token]))


def preference_centre_url(*, contact: Contact | int) -> str:
    """Absolute URL of the contact's preference centre (per purpose × channel toggles)."""
    token = make_token(PREFERENCES, LinkPayload(contact_id=_contact_id(contact)))
    return absolute(reverse("consent:preferences", args=[token]))


def double_opt_in_confirmation_url(
    *, contact: Contact | int, purpose, request_event_id: int
) -> str:
    """Absolute URL confirming the pending email grant recorded as ledger row
    ``request_event_id``; valid ``CONSENT_DOUBLE_OPT_IN_MAX_AGE_DAYS`` days, usable once."""
    token = make_token(
        DOUBLE_OPT_IN,
        LinkPayload(
            contact_id=_contact_id(contact),
            purpose=_purpose_code(purpose),
            channel="email",
            request_event_id=request_event_id,
        ),
    )
    return absolute(reverse("consent:confirm", args=[token]))


def list_unsubscribe_headers(*, contact: Contact | int, purpose) -> dict[str, str]:
    """Headers every marketing email must carry (RFC 2369 + RFC 8058 one-click)."""
    url = unsubscribe_url(contact=contact, purpose=purpose, channel="email")
    return {
        "List-Unsubscribe": f"<{url}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
