"""Bulk upsert of contacts and bulk recording of events — the one path every door uses
(REST API, CSV import, webhooks, tracking endpoint).

Contract, for both services:
- every item is normalised (``contacts.normalisation``); a bad item is answered ``rejected`` with
  field-level reasons and the others still land;
- the batch is set-based: one query finds the contacts it names, one statement per table writes;
- events are idempotent by ``(source, idempotency_key)``: a repeat (in the batch, from an earlier
  batch, or from a concurrent identical batch) is answered ``duplicate`` and stored once;
- ``contacts.signals.events_ingested`` is sent after commit with the contacts that got new events;
- a person whose identity a registered ``contacts.hooks.identity_blockers`` refuses (erased under
  RGPD) is never re-created.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from contacts.hooks import identity_is_blocked
from contacts.models import Channel, Contact
from contacts.normalisation import (
    InvalidValue,
    check_json_object,
    clean_text,
    echo_safe,
    normalise_birth_year,
    normalise_category,
    normalise_city,
    normalise_country,
    normalise_email,
    normalise_event_type,
    normalise_locale,
    normalise_phone,
    normalise_timezone,
    parse_signup_time,
    parse_timestamp,
    zone_or_none,
)
from contacts.selectors import AliasTables, contacts_identity_index
from contacts.services.storage import contacts_insert

MAX_BATCH = 1000

CONTACT_FIELDS = (
    "external_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "country",
    "city",
    "timezone",
    "locale",
    "birth_year",
    "attributes",
    "signed_up_at",
)
EVENT_FIELDS = (
    "external_id",
    "email",
    "phone",
    "type",
    "timestamp",
    "idempotency_key",
    "properties",
    "channel",
    "device",
    "country",
    "city",
)
ERASED = _("This person asked to be erased; they cannot be re-created.")
NO_IDENTITY = _("Name the contact by external_id, email or phone.")


@dataclass
class ItemResult:
    index: int
    status: str  # created | updated | duplicate | rejected
    errors: dict[str, str] = field(default_factory=dict)
    external_id: str = ""

    def as_dict(self) -> dict:
        answer: dict[str, Any] = {"index": self.index, "status": self.status}
        if self.external_id:
            answer["external_id"] = self.external_id
        if self.errors:
            answer["errors"] = {echo_safe(k): echo_safe(v) for k, v in self.errors.items()}
        return answer


@dataclass
class BulkOutcome:
    results: list[ItemResult]

    @property
    def counts(self) -> dict[str, int]:
        counts = {"created": 0, "updated": 0, "duplicate": 0, "rejected": 0}
        for result in self.results:
            counts[result.status] += 1
        return counts


def derived_external_id(*, email: str = "", phone: str = "") -> str:
    """Stable external_id of a contact first known by email or phone only (same input → same id,
    so concurrent batches creating the same person converge on one row)."""
    identity = f"email:{email}" if email else f"phone:{phone}"
    return "auto-" + hashlib.sha256(identity.encode()).hexdigest()[:32]


def _unknown_fields(item: dict, allowed: tuple[str, ...]) -> dict[str, str]:
    return {str(name)[:64]: _("Unknown field.") for name in item if name not in allowed}


# --- contacts -------------------------------------------------------------------------------


def contact_item_clean(
    item: Any,
    *,
    now: datetime,
    aliases: AliasTables,
    default_country: str,
    default_zone: ZoneInfo | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """``(fields present in the item, normalised; field errors)`` for one contact item.
    ``signed_up_at`` (ISO 8601, or a plain date) is the contact's sign-up time: it becomes the
    contact's ``created_at``; a naive time is read in ``default_zone``."""
    if not isinstance(item, dict):
        return {}, {"item": _("Expected an object.")}
    errors = _unknown_fields(item, CONTACT_FIELDS)
    fields: dict[str, Any] = {}

    def take(name: str, normalise) -> None:
        if name in item:
            try:
                fields[name] = normalise(item[name])
            except InvalidValue as exc:
                errors[name] = exc.reason

    take("external_id", lambda v: clean_text(v, field_max=128))
    take("email", normalise_email)
    take("first_name", lambda v: clean_text(v, field_max=150))
    take("last_name", lambda v: clean_text(v, field_max=150))
    take("country", normalise_country)
    take("city", lambda v: normalise_city(v, aliases=aliases.city))
    take("timezone", normalise_timezone)
    take("locale", normalise_locale)
    take("birth_year", lambda v: normalise_birth_year(v, today=now))
    take("attributes", check_json_object)
    take("signed_up_at", lambda v: parse_signup_time(v, default_zone=default_zone, now=now))
    country = fields.get("country") or default_country
    take("phone", lambda v: normalise_phone(v, country=country))
    if not errors and not any(fields.get(k) for k in ("external_id", "email", "phone")):
        errors["external_id"] = NO_IDENTITY
    if "timezone" in fields and not fields["timezone"]:
        del fields["timezone"]  # an empty zone keeps the current one (the column is required)
    return fields, errors


def contacts_upsert_bulk(
    *,
    items: Sequence[Any],
    source: str,
    now: datetime | None = None,
    default_timezone: str = "",
) -> BulkOutcome:
    """Create or update contacts by ``external_id`` (else email, else phone).

    Only the fields an item carries are written; ``attributes`` are merged key by key. Items
    naming the same contact apply in order. A new contact without external_id gets
    :func:`derived_external_id`. A new contact's ``created_at`` (its sign-up time) is its
    ``signed_up_at`` when given, else now; ``signed_up_at`` on a known contact corrects it.
    ``default_timezone`` (IANA) reads a ``signed_up_at`` without offset (default: setting
    ``CIBLE_INGEST_DEFAULT_TIMEZONE``; without either such a time is rejected).
    """
    now = now or timezone.now()
    aliases = AliasTables.load()
    default_country = settings.CIBLE_DEFAULT_COUNTRY
    default_zone = zone_or_none(default_timezone or settings.CIBLE_INGEST_DEFAULT_TIMEZONE)
    results: list[ItemResult] = []
    cleaned: list[tuple[ItemResult, dict]] = []
    for index, item in enumerate(items):
        fields, errors = contact_item_clean(
            item,
            now=now,
            aliases=aliases,
            default_country=default_country,
            default_zone=default_zone,
        )
        result = ItemResult(index=index, status="rejected", errors=errors)
        results.append(result)
        if not errors:
            cleaned.append((result, fields))
    if not cleaned:
        return BulkOutcome(results)

    def identity(fields: dict) -> tuple[str, str]:
        for name in ("external_id", "email", "phone"):
            if fields.get(name):
                return name, fields[name]
        raise AssertionError("cleaned contact items carry an identity")

    with transaction.atomic():
        index = contacts_identity_index(
            external_ids=(f["external_id"] for _r, f in cleaned if f.get("external_id")),
            emails=(f["email"] for _r, f in cleaned if not f.get("external_id") and f.get("email")),
            phones=(
                f["phone"]
                for _r, f in cleaned
                if not f.get("external_id") and not f.get("email") and f.get("phone")
            ),
        )
        existing = Contact.objects.in_bulk(
            set(index.by_external_id.values())
            | set(index.by_email.values())
            | set(index.by_phone.values())
        )
        targets: dict[tuple[str, str], Contact] = {}
        new: dict[str, Contact] = {}
        to_update: dict[int, Contact] = {}
        touched: set[str] = set()
        applied: list[tuple[ItemResult, Contact, dict]] = []
        for result, fields in cleaned:
            key = identity(fields)
            contact = targets.get(key)
            if contact is None:
                pk = index.find(**{key[0]: key[1]})
                contact = existing.get(pk) if pk else None
            if contact is None:
                email, phone = fields.get("email", ""), fields.get("phone", "")
                if identity_is_blocked(email=email, phone=phone):
                    result.errors = {"email" if email else "phone": ERASED}
                    continue
                external_id = fields.get("external_id") or derived_external_id(
                    email=email, phone=phone
                )
                contact = new.get(external_id) or Contact(
                    external_id=external_id, created_at=now, updated_at=now, attributes={}
                )
                result.status = "updated" if external_id in new else "created"
                new[external_id] = contact
            else:
                result.status = "updated"
                if contact.pk:
                    to_update[contact.pk] = contact
            targets[key] = contact
            _apply(contact, fields)
            touched.update(fields)
            result.external_id = contact.external_id
            applied.append((result, contact, fields))

        created = contacts_insert([_contact_row(c, now) for c in new.values()])
        raced = [external_id for external_id in new if external_id not in created]
        if raced:  # created by a concurrent batch since our lookup: update those instead
            winners = Contact.objects.in_bulk(raced, field_name="external_id")
            for result, contact, fields in applied:
                winner = winners.get(contact.external_id) if contact.pk is None else None
                if winner is not None:
                    _apply(winner, fields)
                    result.status = "updated"
                    to_update[winner.pk] = winner
            touched.update(CONTACT_FIELDS)
        if to_update:
            for contact in to_update.values():
                contact.updated_at = now
            update_fields = sorted(
                {"created_at" if f == "signed_up_at" else f for f in touched - {"external_id"}}
                | {"updated_at", "is_anonymous"}
            )
            Contact.objects.bulk_update(list(to_update.values()), update_fields, batch_size=500)
    return BulkOutcome(results)


def _apply(contact: Contact, fields: dict) -> None:
    for name, value in fields.items():
        if name == "attributes":
            contact.attributes = {**(contact.attributes or {}), **value}
        elif name == "signed_up_at":
            contact.created_at = value
        elif name != "external_id" or not contact.external_id:
            setattr(contact, name, value)
    contact.is_anonymous = False


def _contact_row(contact: Contact, now: datetime) -> tuple:
    return (
        contact.external_id,
        contact.email or "",
        contact.phone or "",
        contact.first_name or "",
        contact.last_name or "",
        contact.locale or "fr",
        contact.timezone or "Europe/Paris",
        contact.country or "",
        contact.city or "",
        contact.birth_year,
        contact.attributes or {},
        contact.is_anonymous,
        contact.created_at or now,
        now,
    )


# --- events ---------------------------------------------------------------------------------


@dataclass
class CleanEvent:
    result: ItemResult
    identity: tuple[str, str]
    type: str
    occurred_at: datetime
    idempotency_key: str
    properties: dict
    channel: str
    device: str
    country: str
    city: str


def event_item_clean(
    item: Any,
    *,
    index: int,
    now: datetime,
    aliases: AliasTables,
    default_zone: ZoneInfo | None,
    default_country: str,
) -> CleanEvent | ItemResult:
    """A normalised event, or a rejected :class:`ItemResult` saying why."""
    if not isinstance(item, dict):
        return ItemResult(index=index, status="rejected", errors={"item": _("Expected an object.")})
    errors = _unknown_fields(item, EVENT_FIELDS)
    values: dict[str, Any] = {}

    def take(name: str, normalise, required: bool = False) -> None:
        if name not in item or item[name] in (None, ""):
            if required:
                errors[name] = _("This field is required.")
            return
        try:
            values[name] = normalise(item[name])
        except InvalidValue as exc:
            errors[name] = exc.reason

    take("type", lambda v: normalise_event_type(v, aliases=aliases.event_type), required=True)
    take(
        "timestamp", lambda v: parse_timestamp(v, default_zone=default_zone, now=now), required=True
    )
    take("idempotency_key", lambda v: clean_text(v, field_max=128), required=True)
    take("properties", check_json_object)
    take("channel", _channel)
    take("device", lambda v: clean_text(v, field_max=32).lower())
    take("country", normalise_country)
    take("city", lambda v: normalise_city(v, aliases=aliases.city))
    take("external_id", lambda v: clean_text(v, field_max=128))
    take("email", normalise_email)
    take("phone", lambda v: normalise_phone(v, country=values.get("country") or default_country))
    identity = next(
        ((n, values[n]) for n in ("external_id", "email", "phone") if values.get(n)), None
    )
    if identity is None and not errors:
        errors["external_id"] = NO_IDENTITY
    properties = values.get("properties") or {}
    if values.get("type") == settings.CIBLE_PURCHASE_EVENT_TYPE and "properties" not in errors:
        properties = _purchase_properties(properties, aliases=aliases, errors=errors)
    if errors:
        return ItemResult(index=index, status="rejected", errors=errors)
    return CleanEvent(
        result=ItemResult(index=index, status="created"),
        identity=identity,
        type=values["type"],
        occurred_at=values["timestamp"],
        idempotency_key=values["idempotency_key"],
        properties=properties,
        channel=values.get("channel", ""),
        device=values.get("device", ""),
        country=values.get("country", ""),
        city=values.get("city", ""),
    )


def _channel(value: Any) -> str:
    text = clean_text(value, field_max=16).lower()
    if text and text not in Channel.values:
        raise InvalidValue(
            _("Unknown channel; expected one of %(choices)s.")
            % {"choices": ", ".join(Channel.values)}
        )
    return text


def _purchase_properties(properties: dict, *, aliases: AliasTables, errors: dict) -> dict:
    amount_name = settings.CIBLE_PURCHASE_AMOUNT_PROPERTY
    amount = properties.get(amount_name)
    if isinstance(amount, str):
        try:
            amount = float(amount.strip().replace(",", "."))
        except ValueError:
            amount = None
    if isinstance(amount, bool) or not isinstance(amount, int | float) or amount != amount:
        errors["properties"] = _("A purchase needs a numeric %(name)s property.") % {
            "name": amount_name
        }
        return properties
    properties = {**properties, amount_name: amount}
    if "category" in properties:
        try:
            properties["category"] = normalise_category(
                properties["category"], aliases=aliases.category
            )
        except InvalidValue as exc:
            errors["properties"] = exc.reason
    return properties


def events_record_bulk(
    *,
    items: Sequence[Any],
    source: str,
    create_unknown: bool | None = None,
    default_timezone: str = "",
    now: datetime | None = None,
    aliases: AliasTables | None = None,
) -> BulkOutcome:
    """Store events, each naming its contact by external_id, email or phone.

    ``create_unknown`` (default: setting ``CIBLE_INGEST_CREATE_UNKNOWN_CONTACTS``) creates an
    anonymous profile for a contact nobody knows yet; otherwise such items are rejected.
    ``default_timezone`` (IANA name) is applied to timestamps without offset; without it they are
    rejected. Results say ``created``, ``duplicate`` or ``rejected`` per item.
    """
    from contacts.services.event_batch import TEXT_FIELDS, events_record_columns

    now = now or timezone.now()
    aliases = aliases or AliasTables.load()
    if create_unknown is None:
        create_unknown = settings.CIBLE_INGEST_CREATE_UNKNOWN_CONTACTS
    default_zone = zone_or_none(default_timezone or settings.CIBLE_INGEST_DEFAULT_TIMEZONE)
    n = len(items)
    if not n:
        return BulkOutcome([])
    allowed = frozenset(EVENT_FIELDS)
    # Vectorised path for plain items (an object of known fields with string values); any other
    # item is cleaned on its own by event_item_clean (see contacts.services.event_batch).
    plain = (str, type(None))
    eligible = np.fromiter(  # the item's own fields only: all of them are known fields
        (
            type(item) is dict
            and allowed.issuperset(item)
            and all(type(value) in plain for name, value in item.items() if name != "properties")
            for item in items
        ),
        dtype=bool,
        count=n,
    )
    columns = {
        name: np.array(
            [
                (item.get(name) or "") if ok else ""
                for item, ok in zip(items, eligible, strict=True)
            ],
            dtype=object,
        )
        for name in TEXT_FIELDS
    }
    properties = [
        item.get("properties") if ok else None for item, ok in zip(items, eligible, strict=True)
    ]
    outcome = events_record_columns(
        columns=columns,
        n=n,
        item_at=items.__getitem__,
        eligible=eligible,
        source=source,
        now=now,
        aliases=aliases,
        default_zone=default_zone,
        create_unknown=create_unknown,
        api_properties=properties,
    )
    return BulkOutcome(
        [
            ItemResult(index=i, status=status, errors=outcome.errors.get(i, {}))
            for i, status in enumerate(outcome.status.tolist())
        ]
    )
