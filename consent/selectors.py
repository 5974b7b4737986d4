"""Reads other apps use at send and scoring time: consent state, contactability, summaries.

Decision rule, for a ``(contact, purpose, channel)`` at time *t*: the deciding ledger row is the
latest row with ``occurred_at <= t`` that is not awaiting double opt-in confirmation (ties by id).

- ``consent`` basis: granted only if that row exists and is a grant;
- ``legitimate_interest`` and ``contract`` bases: granted unless that row is a withdrawal
  (objection).

A purpose whose channels are ``["any"]`` (profiling) is decided on the ``any`` channel whatever
channel is asked. Contactable also requires that the channel's address (email, phone) is not on
the suppression list and that the contact was not erased.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import (
    BooleanField,
    Case,
    CharField,
    Exists,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.utils import timezone

from consent.models import (
    MESSAGING_CHANNELS,
    ConsentChannel,
    ConsentEvent,
    CurrentConsent,
    ErasedContact,
    LegalBasis,
    Purpose,
    Suppression,
)
from contacts.models import Contact

# Contact column holding the address of each messaging channel (push has none on Contact:
# push reachability is the subscriptions' business, checked by activation).
CHANNEL_ADDRESS_FIELD = {ConsentChannel.EMAIL: "email", ConsentChannel.SMS: "phone"}
# How far in the past ``at`` must be before the ledger (rather than the current state) decides.
CURRENT_STATE_TOLERANCE = timedelta(seconds=5)

EXCLUSION_NO_CONSENT = "no_consent"
EXCLUSION_SUPPRESSED = "suppressed"
PROFILING_PURPOSE = "profiling"


@dataclass(frozen=True)
class ConsentState:
    """The answer for one ``(contact, purpose, channel)`` at one instant."""

    granted: bool
    basis: str
    event_id: int | None
    decided_at: datetime | None


def purpose_get(purpose: str | Purpose) -> Purpose:
    """The purpose named by ``code`` (or the instance itself); ValueError naming it if unknown."""
    if isinstance(purpose, Purpose):
        return purpose
    found = Purpose.objects.filter(code=purpose).first()
    if found is None:
        known = ", ".join(Purpose.objects.values_list("code", flat=True))
        raise ValueError(f"unknown purpose {purpose!r}; known purposes: {known}")
    return found


def channel_validate(channel: str) -> str:
    """``channel`` if it is a consent channel, else ValueError naming it."""
    if channel not in ConsentChannel.values:
        raise ValueError(
            f"unknown channel {channel!r}; known channels: {', '.join(ConsentChannel.values)}"
        )
    return channel


def decision_channel(purpose: Purpose, channel: str) -> str:
    return ConsentChannel.ANY if purpose.channels == [ConsentChannel.ANY] else channel


def consent_state_as_of(
    *, contact: Contact | int, purpose: str | Purpose, channel: str, at: datetime
) -> ConsentState:
    """Whether ``contact`` may be messaged for ``purpose`` on ``channel`` at instant ``at``,
    read from the ledger (so it answers for any past instant), with the deciding row."""
    purpose = purpose_get(purpose)
    channel = decision_channel(purpose, channel_validate(channel))
    contact_id = contact.pk if isinstance(contact, Contact) else int(contact)
    row = (
        ConsentEvent.objects.filter(
            contact_id=contact_id,
            purpose=purpose,
            channel=channel,
            awaiting_confirmation=False,
            occurred_at__lte=at,
        )
        .order_by("-occurred_at", "-id")
        .values("id", "granted", "occurred_at")
        .first()
    )
    if row is None:
        granted = purpose.legal_basis != LegalBasis.CONSENT
        return ConsentState(
            granted=granted, basis=purpose.legal_basis, event_id=None, decided_at=None
        )
    return ConsentState(
        granted=row["granted"],
        basis=purpose.legal_basis,
        event_id=row["id"],
        decided_at=row["occurred_at"],
    )


def _purpose_code(purpose: str | Purpose) -> str:
    return purpose.code if isinstance(purpose, Purpose) else purpose


def _consent_granted(
    contacts: QuerySet[Contact], *, purpose: str | Purpose, channel: str, at: datetime | None
) -> tuple[QuerySet[Contact], Q]:
    """(queryset with any helper alias, condition "the consent or basis allows it").

    Written so that it needs no prior lookup of the purpose: the basis is read inside the same
    SQL statement, and a purpose decided on the ``any`` channel matches whatever channel.
    """
    code = _purpose_code(purpose)
    channel_match = Q(channel=channel) | Q(channel=ConsentChannel.ANY)
    basis_allows_silence = Exists(
        Purpose.objects.filter(code=code).exclude(legal_basis=LegalBasis.CONSENT)
    )
    if at is None or at >= timezone.now() - CURRENT_STATE_TOLERANCE:
        state = CurrentConsent.objects.filter(
            channel_match, contact=OuterRef("pk"), purpose__code=code
        )
        granted = Exists(state.filter(granted=True))
        withdrawn = Exists(state.filter(granted=False))
        return contacts, Q(granted) | (Q(basis_allows_silence) & ~Q(withdrawn))
    latest = (
        ConsentEvent.objects.filter(
            channel_match,
            contact=OuterRef("pk"),
            purpose__code=code,
            awaiting_confirmation=False,
            occurred_at__lte=at,
        )
        .order_by("-occurred_at", "-id")
        .values("granted")[:1]
    )
    contacts = contacts.alias(consent_granted_as_of=Subquery(latest, output_field=BooleanField()))
    return contacts, Q(consent_granted_as_of=True) | (
        Q(basis_allows_silence) & Q(consent_granted_as_of__isnull=True)
    )


def _suppressed(channel: str) -> Q:
    """Condition "the contact's address for ``channel`` is suppressed, or the contact was erased"."""
    erased = Q(Exists(ErasedContact.objects.filter(contact=OuterRef("pk"))))
    field = CHANNEL_ADDRESS_FIELD.get(channel)
    if field is None:
        return erased
    listed = Suppression.objects.filter(channel=channel, address=OuterRef(field)).exclude(
        address=""
    )
    return erased | Q(Exists(listed))


def contactable(
    contacts: QuerySet[Contact],
    *,
    purpose: str | Purpose,
    channel: str,
    at: datetime | None = None,
) -> QuerySet[Contact]:
    """Narrow ``contacts`` to those who may be messaged for ``purpose`` on ``channel``.

    ``at=None`` (or now) reads the current-state table; a past ``at`` reads the ledger as of
    that instant. Suppression and erasure are always checked as of now. Evaluates as ONE SQL
    statement on SQLite and PostgreSQL (no purpose lookup beforehand). An unknown purpose code
    matches nobody (fails closed); an unknown channel raises ValueError.
    """
    channel_validate(channel)
    contacts, granted = _consent_granted(contacts, purpose=purpose, channel=channel, at=at)
    return contacts.filter(granted).exclude(_suppressed(channel))


def annotate_exclusion_reason(
    contacts: QuerySet[Contact],
    *,
    purpose: str | Purpose,
    channel: str,
    at: datetime | None = None,
) -> QuerySet[Contact]:
    """Add ``consent_exclusion_reason`` to each contact: ``None`` when contactable (same rule as
    ``contactable``), else ``"suppressed"`` (address on the suppression list or contact erased;
    checked first) or ``"no_consent"``. One SQL statement; activation uses it to log why a
    contact of an audience got no message."""
    channel_validate(channel)
    contacts, granted = _consent_granted(contacts, purpose=purpose, channel=channel, at=at)
    return contacts.annotate(
        consent_exclusion_reason=Case(
            When(_suppressed(channel), then=Value(EXCLUSION_SUPPRESSED)),
            When(~granted, then=Value(EXCLUSION_NO_CONSENT)),
            default=Value(None),
            output_field=CharField(),
        )
    )


def without_profiling_objection(contacts: QuerySet[Contact]) -> QuerySet[Contact]:
    """Exclude contacts who objected to profiling (Art. 21) or withdrew the ``profiling``
    purpose on any channel, and erased contacts. Used by ML clustering and scoring."""
    objected = CurrentConsent.objects.filter(
        contact=OuterRef("pk"), purpose__code=PROFILING_PURPOSE, granted=False
    )
    erased = ErasedContact.objects.filter(contact=OuterRef("pk"))
    return contacts.exclude(Exists(objected)).exclude(Exists(erased))


def consent_summary(contact: Contact | int) -> dict:
    """Current state per purpose × channel for the contact API and pages.

    ``{"contact_id", "erased", "purposes": [{"code", "name_fr", "name_en", "legal_basis",
    "channels": {channel: {"granted", "decided_at", "source", "event_id",
    "awaiting_confirmation", "suppressed"}}}]}`` — ``decided_at``/``source``/``event_id`` are
    ``None`` when no ledger row decides (basis default applies).
    """
    contact = contact if isinstance(contact, Contact) else Contact.objects.get(pk=contact)
    states = {
        (s.purpose_id, s.channel): s
        for s in CurrentConsent.objects.filter(contact=contact).select_related("event")
    }
    pending = set(
        ConsentEvent.objects.filter(contact=contact, awaiting_confirmation=True)
        .exclude(
            Exists(
                ConsentEvent.objects.filter(
                    contact=OuterRef("contact"),
                    purpose=OuterRef("purpose"),
                    channel=OuterRef("channel"),
                    awaiting_confirmation=False,
                    id__gt=OuterRef("id"),
                )
            )
        )
        .values_list("purpose_id", "channel")
    )
    suppressed = {
        channel: address_is_listed(channel=channel, address=getattr(contact, field))
        for channel, field in CHANNEL_ADDRESS_FIELD.items()
    }
    erased = ErasedContact.objects.filter(contact=contact).exists()
    purposes = []
    for purpose in Purpose.objects.all():
        channels = {}
        for channel in purpose.channels:
            state = states.get((purpose.pk, channel))
            channels[channel] = {
                "granted": (state.granted if state else purpose.legal_basis != LegalBasis.CONSENT),
                "decided_at": state.decided_at.isoformat() if state else None,
                "source": state.event.source if state else None,
                "event_id": state.event_id if state else None,
                "awaiting_confirmation": (purpose.pk, channel) in pending,
                "suppressed": erased or suppressed.get(channel, False),
            }
        purposes.append(
            {
                "code": purpose.code,
                "name_fr": purpose.name_fr,
                "name_en": purpose.name_en,
                "legal_basis": purpose.legal_basis,
                "channels": channels,
            }
        )
    return {"contact_id": contact.pk, "erased": erased, "purposes": purposes}


def address_is_listed(*, channel: str, address: str) -> bool:
    """Whether the clear-text ``address`` is on the suppression list for ``channel``."""
    if not address:
        return False
    return Suppression.objects.filter(channel=channel, address=address).exists()


def consent_timeline(contact: Contact | int) -> QuerySet[ConsentEvent]:
    """Every ledger row of a contact, oldest first (the DPO's per-contact timeline)."""
    contact_id = contact.pk if isinstance(contact, Contact) else int(contact)
    return (
        ConsentEvent.objects.filter(contact_id=contact_id)
        .select_related("purpose")
        .order_by("occurred_at", "id")
    )


__all__ = [
    "EXCLUSION_NO_CONSENT",
    "EXCLUSION_SUPPRESSED",
    "MESSAGING_CHANNELS",
    "ConsentState",
    "annotate_exclusion_reason",
    "consent_state_as_of",
    "consent_summary",
    "consent_timeline",
    "contactable",
    "purpose_get",
    "without_profiling_objection",
]
