"""Everything that writes consent evidence or acts on a person's rights.

- ``consent_record`` appends to the ledger and refreshes the derived current state in the same
  transaction (``current_state_rebuild``, one set-based statement also used by demo loading and
  contact merges).
- Double opt-in, one-click unsubscribe and the preference centre write through it.
- ``suppression_add`` / ``is_suppressed``: the suppression list (HMAC-keyed, see models).
- ``erase_contact``, ``is_erased_identity``, ``export_contact_data``: data-subject rights.
- ``retention_purge``: events and inactive contacts past the retention periods.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.mail import send_mail
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models, transaction
from django.db.models import Exists, OuterRef
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.crypto import get_random_string, salted_hmac
from django.utils.translation import gettext as _

from consent.exports import registered_sections
from consent.models import (
    MESSAGING_CHANNELS,
    ConsentChannel,
    ConsentEvent,
    ConsentSource,
    CurrentConsent,
    ErasedContact,
    LegalBasis,
    Purpose,
    RetentionPurge,
    RightsRequest,
    Suppression,
    SuppressionReason,
)
from consent.selectors import (
    channel_validate,
    consent_summary,
    consent_timeline,
    decision_channel,
    purpose_get,
)
from contacts.models import Contact, Event, PushSubscription
from contacts.signals import contact_erasing

logger = logging.getLogger(__name__)

# Clock skew tolerated for ``at`` in the future (client clocks, webhooks).
FUTURE_TOLERANCE = timedelta(minutes=5)
# Proof keys kept when a contact is erased (they describe our wording and timing, not the person).
PROOF_KEYS_KEPT_ON_ERASURE = ("wording_version", "confirmed_at", "requested_at", "request_event_id")


# --- ledger ---------------------------------------------------------------------------------


def _contact_id(contact: Contact | int) -> int:
    return contact.pk if isinstance(contact, Contact) else int(contact)


def current_state_rebuild(
    *,
    contact_ids: list[int] | None = None,
    contact_id_range: tuple[int, int] | None = None,
    key: tuple[int, int, str] | None = None,
) -> None:
    """Recompute ``CurrentConsent`` from the ledger for the given contacts (or one
    ``(contact_id, purpose_id, channel)`` key) in ONE statement (upsert of the deciding row).

    Used in the transaction of every ledger write, after demo loads and after merges.
    """
    if key is not None:
        where, params = "contact_id = %s AND purpose_id = %s AND channel = %s", list(key)
    elif contact_id_range is not None:
        where, params = "contact_id BETWEEN %s AND %s", list(contact_id_range)
    elif contact_ids:
        where = f"contact_id IN ({', '.join(['%s'] * len(contact_ids))})"
        params = list(contact_ids)
    else:
        return
    ledger = ConsentEvent._meta.db_table
    state = CurrentConsent._meta.db_table
    # Fixed identifiers only (table names from the models); values are parameters.
    sql = f"""
        INSERT INTO {state} (contact_id, purpose_id, channel, granted, event_id, decided_at)
        SELECT contact_id, purpose_id, channel, granted, id, occurred_at FROM (
            SELECT id, contact_id, purpose_id, channel, granted, occurred_at,
                   ROW_NUMBER() OVER (
                       PARTITION BY contact_id, purpose_id, channel
                       ORDER BY occurred_at DESC, id DESC
                   ) AS rank_in_key
            FROM {ledger}
            WHERE awaiting_confirmation = %s AND {where}
        ) ranked
        WHERE rank_in_key = 1
        ON CONFLICT (contact_id, purpose_id, channel) DO UPDATE SET
            granted = excluded.granted,
            event_id = excluded.event_id,
            decided_at = excluded.decided_at
    """  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [False, *params])


def _validate_channel_for(purpose: Purpose, channel: str) -> str:
    channel_validate(channel)
    if channel not in purpose.channels:
        raise ValueError(
            f"channel {channel!r} does not apply to purpose {purpose.code!r} "
            f"(its channels: {', '.join(purpose.channels)})"
        )
    return channel


def _validate_source(source: str) -> str:
    if source not in ConsentSource.values:
        raise ValueError(
            f"unknown consent source {source!r}; known sources: {', '.join(ConsentSource.values)}"
        )
    return source


def consent_record(
    *,
    contact: Contact | int,
    purpose: str | Purpose,
    channel: str,
    granted: bool,
    source: str,
    at: datetime,
    proof: dict | None = None,
    actor: str = "",
    awaiting_confirmation: bool = False,
    source_event_id: int | None = None,
) -> ConsentEvent:
    """Append one ledger row and refresh the current state, in one transaction.

    ``awaiting_confirmation=True`` records a double opt-in request (decides nothing until a
    confirming grant follows). Unknown purpose, channel or source, a channel the purpose does
    not use, a naive or far-future ``at``, or a grant for an erased person → ValueError naming
    the problem, and nothing is written. The purpose's ``wording_version`` is added to ``proof``
    when absent.
    """
    purpose = purpose_get(purpose)
    _validate_channel_for(purpose, channel)
    _validate_source(source)
    if timezone.is_naive(at):
        raise ValueError("consent time must be timezone-aware")
    if at > timezone.now() + FUTURE_TOLERANCE:
        raise ValueError(f"consent time {at.isoformat()} is in the future")
    if awaiting_confirmation and not granted:
        raise ValueError("only a grant can await confirmation")
    contact_id = _contact_id(contact)
    if granted and ErasedContact.objects.filter(contact_id=contact_id).exists():
        raise ValueError("this contact was erased (right to erasure); consent cannot be recorded")
    proof = dict(proof or {})
    proof.setdefault("wording_version", purpose.wording_version)
    with transaction.atomic():
        event = ConsentEvent.objects.create(
            contact_id=contact_id,
            purpose=purpose,
            channel=channel,
            granted=granted,
            awaiting_confirmation=awaiting_confirmation,
            occurred_at=at,
            source=source,
            proof=json.loads(json.dumps(proof, cls=DjangoJSONEncoder)),
            actor=actor[:150],
            source_event_id=source_event_id,
        )
        if not awaiting_confirmation:
            current_state_rebuild(key=(contact_id, purpose.pk, channel))
    return event


def _decides_now(contact_id: int, purpose: Purpose, channel: str) -> bool | None:
    """Current decision of a key (``None``: no deciding row)."""
    row = CurrentConsent.objects.filter(
        contact_id=contact_id, purpose=purpose, channel=channel
    ).values_list("granted", flat=True)
    return row[0] if row else None


def _allowed_now(contact_id: int, purpose: Purpose, channel: str) -> bool:
    decided = _decides_now(contact_id, purpose, channel)
    if decided is None:
        return purpose.legal_basis != LegalBasis.CONSENT
    return decided


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


# --- erasure --------------------------------------------------------------------------------


@dataclass
class ErasureReport:
    contact_id: int
    erased_at: datetime
    events_anonymised: int = 0
    push_subscriptions_deleted: int = 0
    ledger_rows_scrubbed: int = 0
    suppressed_hashes: list[str] = field(default_factory=list)
    rights_requests_scrubbed: int = 0
    admin_log_entries_scrubbed: int = 0

    def as_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self), cls=DjangoJSONEncoder))


def _keyed(value: str) -> str:
    secret = settings.CONSENT_HASH_KEY or settings.SECRET_KEY
    return salted_hmac("cible.consent.erased-key", value, secret=secret).hexdigest()[:40]


def erase_contact(*, contact: Contact | int, actor: str) -> ErasureReport:
    """Right to erasure (Art. 17), all or nothing in one transaction.

    Sends ``contacts.signals.contact_erasing`` first so other apps delete or anonymise their
    rows; then: email and phone go on the suppression list as keyed hashes only; events keep
    type, time, channel, device, country and the properties named in
    ``CONSENT_ERASURE_KEEP_EVENT_PROPERTIES`` (aggregate counts stay right) and lose the rest;
    push subscriptions are deleted; ledger proofs keep only our wording/timing keys; rights
    requests and admin log entries lose the person's text; the contact row is anonymised and
    marked erased. Erasing twice is a no-op returning the first report.
    """
    contact = contact if isinstance(contact, Contact) else Contact.objects.get(pk=contact)
    done = ErasedContact.objects.filter(contact=contact).first()
    if done is not None:
        return ErasureReport(contact_id=contact.pk, erased_at=done.erased_at)
    now = timezone.now()
    report = ErasureReport(contact_id=contact.pk, erased_at=now)
    identifiers = [
        v for v in (contact.email, contact.phone, contact.first_name, contact.last_name) if v
    ]
    with transaction.atomic():
        contact_erasing.send(sender=Contact, contact_id=contact.pk)
        for channel, address in (("email", contact.email), ("sms", contact.phone)):
            if not address:
                continue
            normalised = normalise_address(channel=channel, address=address)
            digest = identity_hash(channel=channel, address=normalised)
            # An existing clear-text entry (bounce, complaint) becomes hash-only.
            updated = Suppression.objects.filter(channel=channel, address_hash=digest).update(
                address="", reason=SuppressionReason.ERASED
            )
            if not updated:
                suppression_add(
                    channel=channel,
                    address=normalised,
                    reason=SuppressionReason.ERASED,
                    source="erasure",
                    keep_address=False,
                )
            report.suppressed_hashes.append(digest)
        report.events_anonymised = _events_anonymise(contact.pk)
        report.push_subscriptions_deleted = PushSubscription.objects.filter(
            contact=contact
        ).delete()[0]
        report.ledger_rows_scrubbed = _ledger_scrub(contact.pk, identifiers)
        report.rights_requests_scrubbed = RightsRequest.objects.filter(contact=contact).update(
            requester=""
        )
        report.admin_log_entries_scrubbed = LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(Contact), object_id=str(contact.pk)
        ).update(object_repr=f"erased contact #{contact.pk}", change_message="")
        Contact.objects.filter(pk=contact.pk).update(
            external_id=f"erased-{get_random_string(16)}",
            email="",
            phone="",
            first_name="",
            last_name="",
            city="",
            birth_year=None,
            attributes={},
            is_anonymous=True,
            updated_at=now,
        )
        ErasedContact.objects.create(
            contact=contact, erased_at=now, actor=actor[:150], report=report.as_dict()
        )
    logger.info("contact %s erased by %s", contact.pk, actor)
    return report


def _events_anonymise(contact_id: int, chunk: int = 2000) -> int:
    """Strip one contact's events down to what aggregates need (loop over that contact's
    events only, in chunks)."""
    keep = set(settings.CONSENT_ERASURE_KEEP_EVENT_PROPERTIES)
    count = 0
    events = Event.objects.filter(contact_id=contact_id).order_by("pk")
    last = 0
    while True:
        batch = list(events.filter(pk__gt=last)[:chunk])
        if not batch:
            return count
        for event in batch:
            props = event.properties if isinstance(event.properties, dict) else {}
            event.properties = {
                k: v for k, v in props.items() if k in keep and isinstance(v, int | float | str)
            }
            if isinstance(event.properties.get("category"), str):
                event.properties["category"] = event.properties["category"][:40]
            event.city = ""
            event.idempotency_key = "erased-" + _keyed(event.idempotency_key)
        Event.objects.bulk_update(batch, ["properties", "city", "idempotency_key"])
        count += len(batch)
        last = batch[-1].pk


def _ledger_scrub(contact_id: int, identifiers: list[str]) -> int:
    """Sanctioned ledger change #1: keep only our wording/timing keys in proofs, and clear an
    actor naming the person."""
    rows = list(ConsentEvent.objects.filter(contact_id=contact_id))
    lowered = [i.lower() for i in identifiers]
    for row in rows:
        row.proof = {k: v for k, v in row.proof.items() if k in PROOF_KEYS_KEPT_ON_ERASURE}
        if any(i in row.actor.lower() for i in lowered):
            row.actor = ""
        row.save(update_fields=["proof", "actor"], _sanctioned=True)
    return len(rows)


# --- merge ----------------------------------------------------------------------------------


def consent_merge(*, survivor_id: int, merged_ids: list[int]) -> int:
    """Sanctioned ledger change #2 (contact merge): ledger rows of ``merged_ids`` are re-pointed
    to ``survivor_id`` (each row keeps its time, source and proof), then the survivor's current
    state is rebuilt from the union, so the latest decision across all duplicates wins.
    Returns the number of rows moved. Idempotent."""
    merged_ids = [int(i) for i in merged_ids if int(i) != int(survivor_id)]
    if not merged_ids:
        return 0
    with transaction.atomic():
        moved = models.QuerySet.update(
            ConsentEvent.objects.filter(contact_id__in=merged_ids), contact_id=survivor_id
        )
        CurrentConsent.objects.filter(contact_id__in=merged_ids).delete()
        current_state_rebuild(contact_ids=[survivor_id])
    return moved


# --- access / portability -------------------------------------------------------------------


def export_contact_data(*, contact: Contact | int) -> dict:
    """Everything Cible holds about the person, JSON-serialisable (Art. 15 and 20): profile,
    events, consent ledger and current state, suppression status, rights requests, plus the
    sections other apps registered in ``consent.exports`` (memberships, messages…)."""
    contact = contact if isinstance(contact, Contact) else Contact.objects.get(pk=contact)
    profile_fields = [
        f.name for f in Contact._meta.concrete_fields if f.name not in ("id", "updated_at")
    ]
    data = {
        "exported_at": timezone.now(),
        "profile": {"id": contact.pk, **{f: getattr(contact, f) for f in profile_fields}},
        "events": list(
            Event.objects.filter(contact=contact)
            .order_by("occurred_at", "id")
            .values(
                "type",
                "occurred_at",
                "channel",
                "device",
                "country",
                "city",
                "properties",
                "source",
            )
        ),
        "push_subscriptions": list(
            PushSubscription.objects.filter(contact=contact).values(
                "endpoint", "user_agent", "active", "created_at", "deactivated_at"
            )
        ),
        "consents": {
            "current": consent_summary(contact)["purposes"],
            "ledger": [
                {
                    "purpose": row.purpose.code,
                    "channel": row.channel,
                    "granted": row.granted,
                    "awaiting_confirmation": row.awaiting_confirmation,
                    "occurred_at": row.occurred_at,
                    "source": row.source,
                    "proof": row.proof,
                }
                for row in consent_timeline(contact)
            ],
        },
        "suppressed": {
            channel: is_suppressed(channel=channel, address=address)
            for channel, address in (("email", contact.email), ("sms", contact.phone))
            if address
        },
        "rights_requests": list(
            RightsRequest.objects.filter(contact=contact).values(
                "kind", "received_at", "due_at", "completed_at"
            )
        ),
    }
    for name, producer in registered_sections().items():
        data[name] = producer(contact)
    return json.loads(json.dumps(data, cls=DjangoJSONEncoder))


# --- rights requests ------------------------------------------------------------------------


def rights_request_complete(*, request: RightsRequest, actor: str, at: datetime) -> RightsRequest:
    """Carry out an erasure or objection request and mark it completed (access requests are
    completed when their export is downloaded)."""
    if request.contact_id is None:
        raise ValueError("this request names no contact")
    if request.kind == "erasure":
        erase_contact(contact=request.contact_id, actor=actor)
    elif request.kind == "objection":
        consent_withdraw_if_allowed(
            contact_id=request.contact_id,
            purpose="profiling",
            channel=ConsentChannel.ANY,
            source=ConsentSource.ADMIN,
            at=at,
            actor=actor,
            proof={"rights_request_id": request.pk},
        )
    RightsRequest.objects.filter(pk=request.pk).update(completed_at=at, handled_by=actor[:150])
    request.refresh_from_db()
    return request


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
    Idempotent (the suppression list is unique per address). Returns entries examined."""
    rows = Event.objects.filter(
        contact_id__in=contact_ids, type__in=("email_bounce", "email_complaint")
    ).values_list("type", "properties", "contact__email", "source")
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


# --- retention ------------------------------------------------------------------------------


def retention_purge(*, now: datetime, dry_run: bool, actor: str = "retention") -> RetentionPurge:
    """Delete events older than ``CONSENT_RETENTION_EVENTS_DAYS`` and erase contacts with no
    interaction (event, consent row, creation) for ``CONSENT_RETENTION_INACTIVE_CONTACT_DAYS``.
    ``dry_run`` changes nothing and reports what would go. Always writes a ``RetentionPurge``
    report. The consent ledger is kept (it is the proof, Art. 7(1)); erased contacts' proofs are
    scrubbed by erasure."""
    events_cutoff = now - timedelta(days=settings.CONSENT_RETENTION_EVENTS_DAYS)
    contacts_cutoff = now - timedelta(days=settings.CONSENT_RETENTION_INACTIVE_CONTACT_DAYS)
    old_events = Event.objects.filter(occurred_at__lt=events_cutoff)
    inactive = (
        Contact.objects.filter(created_at__lt=contacts_cutoff)
        .exclude(
            Exists(Event.objects.filter(contact=OuterRef("pk"), occurred_at__gte=contacts_cutoff))
        )
        .exclude(
            Exists(
                ConsentEvent.objects.filter(
                    contact=OuterRef("pk"), occurred_at__gte=contacts_cutoff
                )
            )
        )
        .exclude(Exists(ErasedContact.objects.filter(contact=OuterRef("pk"))))
    )
    inactive_ids = list(inactive.order_by("pk").values_list("pk", flat=True))
    events_by_type = dict(
        old_events.values("type").annotate(n=models.Count("id")).values_list("type", "n")
    )
    report = {
        "events_by_type": events_by_type,
        "inactive_contact_ids_sample": inactive_ids[:100],
        "events_retention_days": settings.CONSENT_RETENTION_EVENTS_DAYS,
        "inactive_contact_days": settings.CONSENT_RETENTION_INACTIVE_CONTACT_DAYS,
    }
    events_total = sum(events_by_type.values())
    if not dry_run:
        for contact_id in inactive_ids:  # per-contact: each erasure notifies other apps
            erase_contact(contact=contact_id, actor=actor)
        old_events.delete()
    return RetentionPurge.objects.create(
        started_at=now,
        dry_run=dry_run,
        events_cutoff=events_cutoff,
        contacts_cutoff=contacts_cutoff,
        events_deleted=events_total,
        contacts_erased=len(inactive_ids),
        report=report,
    )


__all__ = [
    "MESSAGING_CHANNELS",
    "ConfirmationOutcome",
    "ErasureReport",
    "consent_merge",
    "consent_record",
    "consent_withdraw_if_allowed",
    "current_state_rebuild",
    "double_opt_in_confirm",
    "double_opt_in_request",
    "email_feedback_process",
    "erase_contact",
    "export_contact_data",
    "identity_hash",
    "is_erased_identity",
    "is_suppressed",
    "preference_centre_apply",
    "retention_purge",
    "rights_request_complete",
    "sms_stop_process",
    "suppression_add",
]


# --- API batch ------------------------------------------------------------------------------

CONSENT_BATCH_MAX = 1000


def consent_record_bulk(*, items: list, origin: str, actor: str) -> list[dict]:
    """Record up to ``CONSENT_BATCH_MAX`` API items ``{"external_id", "purpose", "channel",
    "granted", "timestamp" (ISO 8601 with offset), "proof"?}``; answer per item
    ``{"index", "status": "recorded"|"rejected", "event_id"?, "errors"?}``. Each item is its own
    transaction: good items land even when others are rejected."""
    from django.utils.dateparse import parse_datetime

    if len(items) > CONSENT_BATCH_MAX:
        raise ValueError(f"at most {CONSENT_BATCH_MAX} items per request, got {len(items)}")
    results = []
    for index, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise ValueError("expected an object")
            contact = Contact.objects.filter(external_id=str(item.get("external_id", ""))).first()
            if contact is None:
                raise ValueError(f"unknown contact {item.get('external_id')!r}")
            if not isinstance(item.get("granted"), bool):
                raise ValueError("granted must be true or false")
            at = parse_datetime(str(item.get("timestamp", "")))
            if at is None:
                raise ValueError("timestamp must be an ISO 8601 date-time with its offset")
            proof = item.get("proof") or {}
            if not isinstance(proof, dict):
                raise ValueError("proof must be an object")
            event = consent_record(
                contact=contact,
                purpose=str(item.get("purpose", "")),
                channel=str(item.get("channel", "")),
                granted=item["granted"],
                source=ConsentSource.API,
                at=at,
                proof={**proof, "origin": str(origin)[:64]},
                actor=actor,
            )
            results.append({"index": index, "status": "recorded", "event_id": event.pk})
        except ValueError as exc:
            results.append({"index": index, "status": "rejected", "errors": str(exc)})
    return results
