"""The suppression list and keyed identity hashes (erased people)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.crypto import salted_hmac

from consent.models import (
    ConsentChannel,
    Suppression,
    SuppressionReason,
)
from consent.selectors import (
    channel_validate,
)

# --- suppression ----------------------------------------------------------------------------


def normalise_address(*, channel: str, address: str) -> str:
    address = (address or "").strip()
    if channel == ConsentChannel.EMAIL:
        return address.lower()
    if channel == ConsentChannel.SMS:
        return "".join(ch for ch in address if ch.isdigit() or ch == "+")
    return address


def identity_hash(*, channel: str, address: str) -> str:
    """HMAC-SHA256 of the normalised address with the server secret (``CONSENT_HASH_KEY``,
    defaulting to a key derived from ``SECRET_KEY``)."""
    value = normalise_address(channel=channel, address=address)
    secret = settings.CONSENT_HASH_KEY or settings.SECRET_KEY
    return salted_hmac(
        f"cible.consent.identity.{channel}", value, secret=secret, algorithm="sha256"
    ).hexdigest()


def suppression_add(
    *, channel: str, address: str, reason: str, source: str, keep_address: bool = True
) -> None:
    """Put ``address`` on the suppression list of ``channel`` (idempotent). ``keep_address=False``
    stores only the keyed hash (erased people)."""
    channel_validate(channel)
    if reason not in SuppressionReason.values:
        raise ValueError(f"unknown suppression reason {reason!r}")
    address = normalise_address(channel=channel, address=address)
    if not address:
        raise ValueError("cannot suppress an empty address")
    Suppression.objects.get_or_create(
        channel=channel,
        address_hash=identity_hash(channel=channel, address=address),
        defaults={
            "address": address if keep_address else "",
            "reason": reason,
            "source": source[:64],
        },
    )


def is_suppressed(*, channel: str, address: str) -> bool:
    """Whether ``address`` may not be messaged on ``channel`` (bounce, complaint, manual or
    erased person — matched through the keyed hash, so erased addresses count)."""
    if not normalise_address(channel=channel, address=address):
        return False
    return Suppression.objects.filter(
        channel=channel, address_hash=identity_hash(channel=channel, address=address)
    ).exists()


def is_erased_identity(*, email: str = "", phone: str = "") -> bool:
    """Whether this email or phone belonged to an erased person (ingestion refuses them)."""
    hashes = []
    if normalise_address(channel=ConsentChannel.EMAIL, address=email):
        hashes.append((ConsentChannel.EMAIL, identity_hash(channel="email", address=email)))
    if normalise_address(channel=ConsentChannel.SMS, address=phone):
        hashes.append((ConsentChannel.SMS, identity_hash(channel="sms", address=phone)))
    query = models.Q(pk__in=[])
    for channel, digest in hashes:
        query |= models.Q(channel=channel, address_hash=digest)
    return Suppression.objects.filter(query, reason=SuppressionReason.ERASED).exists()
