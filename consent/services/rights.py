"""Data-subject rights: erasure, access/portability, rights requests, retention."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone
from django.utils.crypto import get_random_string, salted_hmac

from consent.exports import registered_sections
from consent.models import (
    ConsentChannel,
    ConsentEvent,
    ConsentSource,
    ErasedContact,
    RetentionPurge,
    RightsRequest,
    Suppression,
    SuppressionReason,
)
from consent.selectors import (
    consent_summary,
    consent_timeline,
)
from consent.services.flows import consent_withdraw_if_allowed
from consent.services.suppression import (
    identity_hash,
    is_suppressed,
    normalise_address,
    suppression_add,
)
from contacts.models import Contact, Event, PushSubscription
from contacts.services.partitions import events_delete_before
from contacts.signals import contact_erasing

logger = logging.getLogger(__name__)

# Proof keys kept when a contact is erased (they describe our wording and timing, not the person).
PROOF_KEYS_KEPT_ON_ERASURE = ("wording_version", "confirmed_at", "requested_at", "request_event_id")

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


def rights_request_export(*, request: RightsRequest, actor: str, at: datetime) -> dict:
    """Answer an access/portability request: the contact's data (``export_contact_data``), and
    the request marked completed by ``actor`` at ``at`` the first time (a repeat download keeps
    the first answer's date)."""
    if request.contact_id is None:
        raise ValueError("this request names no contact")
    data = export_contact_data(contact=request.contact_id)
    RightsRequest.objects.filter(pk=request.pk, completed_at__isnull=True).update(
        completed_at=at, handled_by=actor[:150]
    )
    return data


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
        # On partitioned PostgreSQL whole months older than the cut-off are dropped, not deleted.
        events_delete_before(cutoff=events_cutoff)
    return RetentionPurge.objects.create(
        started_at=now,
        dry_run=dry_run,
        events_cutoff=events_cutoff,
        contacts_cutoff=contacts_cutoff,
        events_deleted=events_total,
        contacts_erased=len(inactive_ids),
        report=report,
    )
