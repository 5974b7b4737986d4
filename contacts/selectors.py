"""Read queries of the contacts app (set-based; none loops over contacts)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db import connection
from django.db.models import Count, F, Max, QuerySet
from django.db.models.functions import Lower, Trim

from contacts.models import Alias, Contact, Event


def alias_table(kind: str) -> dict[str, str]:
    """``matching key → canonical value`` for one alias kind (small table, one query)."""
    return dict(Alias.objects.filter(kind=kind).values_list("key", "canonical"))


@dataclass
class AliasTables:
    event_type: dict[str, str] = field(default_factory=dict)
    category: dict[str, str] = field(default_factory=dict)
    city: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls) -> AliasTables:
        tables = cls()
        for kind, key, canonical in Alias.objects.values_list("kind", "key", "canonical"):
            getattr(tables, kind)[key] = canonical
        return tables


@dataclass
class IdentityIndex:
    """Existing contacts of a batch, by external_id, email and phone (lowest id wins)."""

    by_external_id: dict[str, int] = field(default_factory=dict)
    by_email: dict[str, int] = field(default_factory=dict)
    by_phone: dict[str, int] = field(default_factory=dict)

    def find(self, *, external_id: str = "", email: str = "", phone: str = "") -> int | None:
        if external_id:
            return self.by_external_id.get(external_id)
        if email:
            return self.by_email.get(email)
        if phone:
            return self.by_phone.get(phone)
        return None


def contacts_identity_index(
    *, external_ids: Iterable[str], emails: Iterable[str] = (), phones: Iterable[str] = ()
) -> IdentityIndex:
    """One query: the contacts a batch names, indexed by each identity it may use."""
    external_ids, emails, phones = set(external_ids), set(emails), set(phones)
    index = IdentityIndex()
    if not (external_ids or emails or phones):
        return index
    by_email, by_phone = index.by_email, index.by_phone
    for pk, external_id, email, phone in _identity_rows(external_ids, emails, phones):
        index.by_external_id[external_id] = pk  # unique
        if email in emails and by_email.get(email, pk) >= pk:  # the lowest id wins
            by_email[email] = pk
        if phone in phones and by_phone.get(phone, pk) >= pk:
            by_phone[phone] = pk
    return index


IDENTITY_CHUNK = 10_000  # SQLite bounds the number of query parameters


def _identity_rows(external_ids: set[str], emails: set[str], phones: set[str]) -> list[tuple]:
    """``(id, external_id, email, phone)`` of the contacts matching any identity (any order,
    a contact matching two identities possibly twice). PostgreSQL: one statement with array
    parameters (a 50,000-value ``IN`` list costs more to build client-side than to run), one
    ``UNION ALL`` arm per kind of identity the batch uses — an ``OR`` of the three made the
    planner scan the whole contacts table; elsewhere ``IN`` lists in chunks."""
    if connection.vendor == "postgresql":
        table = Contact._meta.db_table
        arms, params = [], []
        for name, values in (("external_id", external_ids), ("email", emails), ("phone", phones)):
            if values:
                arms.append(
                    f"SELECT id, external_id, email, phone FROM {table} "  # noqa: S608
                    f"WHERE {name} = ANY(%s)"  # fixed names
                )
                params.append(list(values))
        with connection.cursor() as cursor:
            cursor.execute(" UNION ALL ".join(arms), params)
            return cursor.fetchall()
    rows: dict[int, tuple] = {}
    for name, values in (("external_id", external_ids), ("email", emails), ("phone", phones)):
        values = list(values)
        for start in range(0, len(values), IDENTITY_CHUNK):
            chunk = values[start : start + IDENTITY_CHUNK]
            for row in Contact.objects.filter(**{f"{name}__in": chunk}).values_list(
                "id", "external_id", "email", "phone"
            ):
                rows[row[0]] = row
    return [rows[pk] for pk in sorted(rows, reverse=True)]


def contact_by_external_id(external_id: str) -> Contact | None:
    return Contact.objects.filter(external_id=external_id).first()


def contact_by_identifier(value: object) -> Contact | None:
    """The contact a person typed: its external ID (the identifier every page shows), else —
    for links and habits from before — its internal number. None when neither matches, and for
    values no contact can have (empty, over 128 characters, NUL characters)."""
    text = str(value if value is not None else "").strip()
    if not text or len(text) > 128 or "\x00" in text:
        return None
    contact = contact_by_external_id(text)
    if contact is None and text.isascii() and text.isdigit() and len(text) <= 18:
        contact = Contact.objects.filter(pk=int(text)).first()
    return contact


def contact_event_summary(contact: Contact) -> dict:
    summary = Event.objects.filter(contact=contact).aggregate(
        events=Count("id"), last_event_at=Max("occurred_at")
    )
    return summary


DUPLICATE_KEYS = ("email", "phone", "external_id")


def duplicate_groups(*, limit: int = 1000) -> list[dict]:
    """Probable duplicates: contacts sharing an email, a phone, or an external ID that differs
    only by case/spaces. One grouped query per key, one query for the members; oldest first."""
    expressions = {
        "email": F("email"),
        "phone": F("phone"),
        "external_id": Lower(Trim("external_id")),
    }
    groups: list[dict] = []
    for key_name, expression in expressions.items():
        base: QuerySet = Contact.objects.annotate(dup_key=expression)
        keys = list(
            base.exclude(dup_key="")
            .values("dup_key")
            .annotate(n=Count("id"))
            .filter(n__gt=1)
            .order_by("-n", "dup_key")
            .values_list("dup_key", flat=True)[: max(0, limit - len(groups))]
        )
        if not keys:
            continue
        members: dict[str, list[int]] = {k: [] for k in keys}
        for dup_key, pk in (
            base.filter(dup_key__in=keys).order_by("id").values_list("dup_key", "id")
        ):
            members[dup_key].append(pk)
        groups.extend({"key": key_name, "value": k, "contact_ids": members[k]} for k in keys)
    return groups
