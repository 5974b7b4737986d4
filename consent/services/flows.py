"""Opt-in/out flows: double opt-in, unsubscribe, preference centre, SMS STOP, bounces."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from consent.models import (
    ConsentChannel,
    ConsentEvent,
    ConsentSource,
    LegalBasis,
    Purpose,
    SuppressionReason,
)
from consent.selectors import (
    decision_channel,
    purpose_get,
)
from consent.services.ledger import _allowed_now, consent_record
from consent.services.suppression import suppression_add
from contacts.models import Contact, Event

# --- double opt-in --------------------------------------------------------------------------


def double_opt_in_request(
    *,
    contact: Contact,
    purpose: str | Purpose,
    source: str,
    at: datetime,
    proof: dict | None = None,
    actor: str = "",
) -> ConsentEvent:
    """Record a pending email grant and send the confirmation email with a signed, expiring
    link (``double_opt_in_confirm``). The consent counts only once confirmed."""
    from consent.tokens import double_opt_in_confirmation_url

    purpose = purpose_get(purpose)
    if not contact.email:
        raise ValueError("this contact has no email address to confirm")
    event = consent_record(
        contact=contact,
        purpose=purpose,
        channel=ConsentChannel.EMAIL,
        granted=True,
        source=source,
        at=at,
        proof={**(proof or {}), "requested_at": at},
        actor=actor,
        awaiting_confirmation=purpose.requires_double_opt_in(ConsentChannel.EMAIL),
    )
    if event.awaiting_confirmation:
        url = double_opt_in_confirmation_url(
            contact=contact, purpose=purpose, request_event_id=event.pk
        )
        language = contact.locale or settings.LANGUAGE_CODE
        with translation.override(language):
            context = {"purpose_name": purpose.name(language), "url": url}
            subject = _("Please confirm your subscription")
            body = render_to_string("consent/email/double_opt_in.txt", context)
        transaction.on_commit(
            lambda: send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [contact.email])
        )
    return event


@dataclass(frozen=True)
class ConfirmationOutcome:
    confirmed: bool
    event: ConsentEvent | None = None


def double_opt_in_confirm(
    *, contact_id: int, request_event_id: int, at: datetime, proof: dict | None = None
) -> ConfirmationOutcome:
    """Confirm the pending grant ``request_event_id`` of ``contact_id``.

    Appends a confirming grant (source ``double_opt_in``) unless the request does not belong to
    the contact, is not pending, or any deciding row (an earlier confirmation, a withdrawal)
    came after it: then nothing is written and ``confirmed`` is False (replayed or stale link).
    """
    with transaction.atomic():
        request = (
            ConsentEvent.objects.select_for_update()
            .filter(pk=request_event_id, contact_id=contact_id, awaiting_confirmation=True)
            .select_related("purpose")
            .first()
        )
        if request is None:
            return ConfirmationOutcome(confirmed=False)
        later = ConsentEvent.objects.filter(
            contact_id=contact_id,
            purpose_id=request.purpose_id,
            channel=request.channel,
            awaiting_confirmation=False,
            id__gt=request.pk,
        ).exists()
        if later:
            return ConfirmationOutcome(confirmed=False)
        event = consent_record(
            contact=contact_id,
            purpose=request.purpose,
            channel=request.channel,
            granted=True,
            source=ConsentSource.DOUBLE_OPT_IN,
            at=at,
            proof={
                **(proof or {}),
                "wording_version": request.proof.get("wording_version", ""),
                "request_event_id": request.pk,
                "requested_at": request.occurred_at,
                "confirmed_at": at,
            },
        )
    return ConfirmationOutcome(confirmed=True, event=event)


# --- unsubscribe and preference centre ------------------------------------------------------


def consent_withdraw_if_allowed(
    *,
    contact_id: int,
    purpose: str | Purpose,
    channel: str,
    source: str,
    at: datetime,
    proof: dict | None = None,
    actor: str = "",
    source_event_id: int | None = None,
) -> ConsentEvent | None:
    """Withdraw unless already withdrawn (so replayed unsubscribe links change nothing).
    Returns the new ledger row, or None when the state already forbade messages."""
    purpose = purpose_get(purpose)
    channel = decision_channel(purpose, channel)
    with transaction.atomic():
        Contact.objects.select_for_update().filter(pk=contact_id).first()
        if not _allowed_now(contact_id, purpose, channel):
            return None
        return consent_record(
            contact=contact_id,
            purpose=purpose,
            channel=channel,
            granted=False,
            source=source,
            at=at,
            proof=proof,
            actor=actor,
            source_event_id=source_event_id,
        )


def preference_centre_purposes() -> list[Purpose]:
    return list(Purpose.objects.filter(shown_in_preference_centre=True))


def preference_centre_apply(
    *, contact: Contact, wanted: set[tuple[str, str]], at: datetime, proof: dict | None = None
) -> list[ConsentEvent]:
    """Make the contact's preferences match ``wanted`` (``(purpose code, channel)`` pairs that
    should be granted) for every purpose shown in the preference centre; only changes are
    written. The signed link came from the contact's own mailbox, so an email grant made here
    counts as confirmed (proof ``confirmed_via: signed_link``)."""
    written = []
    with transaction.atomic():
        for purpose in preference_centre_purposes():
            for channel in purpose.channels:
                want = (purpose.code, channel) in wanted
                if want == _allowed_now(contact.pk, purpose, channel):
                    continue
                written.append(
                    consent_record(
                        contact=contact,
                        purpose=purpose,
                        channel=channel,
                        granted=want,
                        source=ConsentSource.PREFERENCE_CENTRE,
                        at=at,
                        proof={**(proof or {}), "confirmed_via": "signed_link"},
                    )
                )
    return written


# --- inbound signals: SMS STOP, bounces, complaints -----------------------------------------


def _is_stop_word(body: str) -> bool:
    import unicodedata

    text = unicodedata.normalize("NFKD", body or "").encode("ascii", "ignore").decode()
    text = " ".join("".join(c if c.isalnum() else " " for c in text).upper().split())
    return text in {w.upper() for w in settings.CONSENT_SMS_STOP_WORDS}


def sms_stop_process(*, contact_ids: list[int]) -> int:
    """Withdraw SMS consent for every non-contract purpose of contacts whose unprocessed
    ``sms_inbound`` events say STOP (or a variant). Idempotent per inbound event. Returns the
    number of STOP messages acted on."""
    handled = ConsentEvent.objects.filter(source_event_id=OuterRef("pk"))
    inbound = (
        Event.objects.filter(contact_id__in=contact_ids, type="sms_inbound")
        .exclude(Exists(handled))
        .values_list("id", "contact_id", "occurred_at", "properties")
    )
    purposes = [
        p
        for p in Purpose.objects.exclude(legal_basis=LegalBasis.CONTRACT)
        if ConsentChannel.SMS in p.channels
    ]
    acted = 0
    for event_id, contact_id, occurred_at, properties in inbound:
        body = (properties or {}).get("body", "") if isinstance(properties, dict) else ""
        if not _is_stop_word(str(body)):
            continue
        acted += 1
        with transaction.atomic():
            for purpose in purposes:
                consent_record(
                    contact=contact_id,
                    purpose=purpose,
                    channel=ConsentChannel.SMS,
                    granted=False,
                    source=ConsentSource.SMS_STOP,
                    at=min(occurred_at, timezone.now()),
                    proof={"sms_body": str(body)[:40]},
                    source_event_id=event_id,
                )
    return acted


def email_feedback_process(*, contact_ids: list[int]) -> int:
    """Suppress addresses of hard bounces and spam complaints among the contacts' events.
    Idempotent (the suppression list is unique per address). Returns entries examined. Events
    from the public tracking endpoint (source ``tracking``) are never trusted as feedback."""
    rows = (
        Event.objects.filter(
            contact_id__in=contact_ids, type__in=("email_bounce", "email_complaint")
        )
        .exclude(source="tracking")
        .values_list("type", "properties", "contact__email", "source")
    )
    seen = 0
    for event_type, properties, contact_email, source in rows:
        properties = properties if isinstance(properties, dict) else {}
        if event_type == "email_bounce" and properties.get("bounce_type") != "hard":
            continue
        address = str(properties.get("address") or contact_email or "")
        if not address:
            continue
        reason = (
            SuppressionReason.HARD_BOUNCE
            if event_type == "email_bounce"
            else SuppressionReason.COMPLAINT
        )
        suppression_add(channel="email", address=address, reason=reason, source=source)
        seen += 1
    return seen
