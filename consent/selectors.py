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
    FilteredRelation,
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


def _is_current(at: datetime | None) -> bool:
    return at is None or at >= timezone.now() - CURRENT_STATE_TOLERANCE


def _latest_as_of(purpose: Purpose, channel: str, at: datetime) -> Subquery:
    """Correlated: the ``granted`` value of the contact's deciding ledger row as of ``at``
    (NULL when none). One index probe (``consent_ledger_decision``) per contact."""
    latest = (
        ConsentEvent.objects.filter(
            contact=OuterRef("pk"),
            purpose_id=purpose.pk,
            channel=channel,
            awaiting_confirmation=False,
            occurred_at__lte=at,
        )
        .order_by("-occurred_at", "-id")
        .values("granted")[:1]
    )
    return Subquery(latest, output_field=BooleanField())


def _resolve(purpose: str | Purpose, channel: str) -> tuple[Purpose, str]:
    channel_validate(channel)
    purpose = purpose_get(purpose)
    return purpose, decision_channel(purpose, channel)


def _suppressed_address(channel: str) -> Q | None:
    field = CHANNEL_ADDRESS_FIELD.get(channel)
    if field is None:
        return None
    listed = Suppression.objects.filter(channel=channel, address=OuterRef(field))
    return Q(Exists(listed.exclude(address="")))


def contactable(
    contacts: QuerySet[Contact],
    *,
    purpose: str | Purpose,
    channel: str,
    at: datetime | None = None,
) -> QuerySet[Contact]:
    """Narrow ``contacts`` to those who may be messaged for ``purpose`` on ``channel``.

    ``at=None`` (or now) reads the current-state table; a past ``at`` reads the ledger as of
    that instant. Suppression and erasure are always checked as of now. The narrowing is ONE
    SQL statement of AND-ed (NOT) EXISTS conditions, which PostgreSQL runs as hash semi/anti
    joins; when ``purpose`` is a code, one small indexed read of the purpose (its legal basis
    decides the rule) comes first — pass a ``Purpose`` to skip it. Unknown purpose or channel →
    ValueError naming it.
    """
    purpose, decided_on = _resolve(purpose, channel)
    consent_basis = purpose.legal_basis == LegalBasis.CONSENT
    if _is_current(at):
        state = CurrentConsent.objects.filter(
            contact=OuterRef("pk"), purpose_id=purpose.pk, channel=decided_on
        )
        if consent_basis:
            contacts = contacts.filter(Exists(state.filter(granted=True)))
        else:
            contacts = contacts.exclude(Exists(state.filter(granted=False)))
    else:
        contacts = contacts.alias(consent_as_of=_latest_as_of(purpose, decided_on, at))
        if consent_basis:
            contacts = contacts.filter(consent_as_of=True)
        else:
            contacts = contacts.filter(Q(consent_as_of__isnull=True) | Q(consent_as_of=True))
    contacts = contacts.exclude(Exists(ErasedContact.objects.filter(contact=OuterRef("pk"))))
    suppressed = _suppressed_address(channel)
    return contacts if suppressed is None else contacts.exclude(suppressed)


def annotate_exclusion_reason(
    contacts: QuerySet[Contact],
    *,
    purpose: str | Purpose,
    channel: str,
    at: datetime | None = None,
) -> QuerySet[Contact]:
    """Add ``consent_exclusion_reason`` to each contact: ``None`` when contactable (same rule as
    ``contactable``), else ``"suppressed"`` (address on the suppression list or contact erased;
    checked first) or ``"no_consent"``. One SQL statement (after the purpose read, as in
    ``contactable``): the current state is LEFT JOINed, so PostgreSQL hashes it once; activation
    uses it to say why a contact of an audience got no message."""
    purpose, decided_on = _resolve(purpose, channel)
    if _is_current(at):
        contacts = contacts.alias(
            consent_decision=FilteredRelation(
                "current_consents",
                condition=Q(current_consents__purpose_id=purpose.pk)
                & Q(current_consents__channel=decided_on),
            )
        )
        decision = "consent_decision__granted"
    else:
        contacts = contacts.alias(consent_as_of=_latest_as_of(purpose, decided_on, at))
        decision = "consent_as_of"
    refused = Q(**{decision: False})
    if purpose.legal_basis == LegalBasis.CONSENT:
        refused |= Q(**{f"{decision}__isnull": True})
    suppressed = Q(erasure__isnull=False)
    by_address = _suppressed_address(channel)
    if by_address is not None:
        suppressed |= by_address
    return contacts.annotate(
        consent_exclusion_reason=Case(
            When(suppressed, then=Value(EXCLUSION_SUPPRESSED)),
            When(refused, then=Value(EXCLUSION_NO_CONSENT)),
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
