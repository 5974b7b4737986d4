"""The ``consent`` condition: contacts who may be messaged for a purpose on a channel now,
as decided by ``consent.selectors.contactable`` (ledger state + suppression list)."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from segments.rules.registry import (
    CompileContext,
    ReferenceContact,
    ValidationContext,
    register_condition,
)


def _validate(condition: dict, ctx: ValidationContext) -> dict:
    from consent.models import ConsentChannel, Purpose
    from consent.selectors import channel_validate

    purpose, channel = condition.get("purpose"), condition.get("channel")
    if not isinstance(purpose, str) or not Purpose.objects.filter(code=purpose).exists():
        known = ", ".join(Purpose.objects.values_list("code", flat=True)) or "—"
        raise ctx.error(
            _("unknown consent purpose “%(purpose)s” (known: %(known)s).")
            % {"purpose": purpose, "known": known}
        )
    try:
        channel_validate(channel)
    except (ValueError, TypeError):
        raise ctx.error(
            _("unknown channel “%(channel)s” (known: %(known)s).")
            % {"channel": channel, "known": ", ".join(ConsentChannel.values)}
        ) from None
    return {"purpose": purpose, "channel": channel}


def _contactable(condition: dict, contacts):
    from consent.selectors import contactable

    return contactable(contacts, purpose=condition["purpose"], channel=condition["channel"])


def _compile(condition: dict, ctx: CompileContext) -> Q:
    from contacts.models import Contact

    contacts = Contact.objects.all()
    if ctx.contact_ids is not None:
        contacts = contacts.filter(pk__in=ctx.contact_ids)
    return Q(pk__in=_contactable(condition, contacts).values("pk"))


def _evaluate(condition: dict, contact: ReferenceContact, now: datetime) -> bool:
    from contacts.models import Contact

    return _contactable(condition, Contact.objects.filter(pk=contact.contact.pk)).exists()


def _describe(condition: dict) -> str:
    return gettext("may be contacted for “%(purpose)s” by %(channel)s") % condition


def register_consent_condition() -> None:
    register_condition(
        "consent",
        _compile,
        _validate,
        _describe,
        _evaluate,
        explainer=lambda c, contact, now: (
            gettext("yes") if _evaluate(c, contact, now) else gettext("no")
        ),
        label=_("Consent"),
        builder={"consent": True},
    )
