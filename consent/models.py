"""Consent evidence: purposes, the append-only ledger, the derived current state, the
suppression list, erasures, rights requests and retention purge reports.

The ledger (``ConsentEvent``) is the evidence a DPO shows (GDPR Art. 7(1)); ``CurrentConsent``
is derived from it in the same transaction so sends can be filtered with one set-based query.
Ledger rows are never updated or deleted through the ORM: ``save()`` on an existing row,
``delete()``, ``QuerySet.update()`` and ``QuerySet.delete()`` raise ``LedgerIsAppendOnly``.
The two sanctioned exceptions go through ``consent.services`` only: erasure (personal data in
``proof`` is scrubbed) and contact merge (rows are re-pointed to the surviving contact).
"""

from __future__ import annotations

from datetime import timedelta

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from contacts.models import Contact


class LegalBasis(models.TextChoices):
    CONSENT = "consent", _("Consent (Art. 6(1)(a))")
    LEGITIMATE_INTEREST = "legitimate_interest", _("Legitimate interest (Art. 6(1)(f))")
    CONTRACT = "contract", _("Contract (Art. 6(1)(b))")


class ConsentChannel(models.TextChoices):
    EMAIL = "email", _("Email")
    SMS = "sms", _("SMS")
    PUSH = "push", _("Push")
    ANY = "any", _("Any channel")


MESSAGING_CHANNELS = (ConsentChannel.EMAIL, ConsentChannel.SMS, ConsentChannel.PUSH)


class ConsentSource(models.TextChoices):
    FORM = "form", _("Sign-up form")
    DOUBLE_OPT_IN = "double_opt_in", _("Double opt-in confirmation")
    IMPORT = "import", _("Import")
    API = "api", _("API")
    UNSUBSCRIBE_LINK = "unsubscribe_link", _("Unsubscribe link")
    PREFERENCE_CENTRE = "preference_centre", _("Preference centre")
    SMS_STOP = "sms_stop", _("SMS STOP")
    ADMIN = "admin", _("Administration")
    DEMO = "demo", _("Demo data")


class Purpose(models.Model):
    """Why a contact is messaged or processed, with its legal basis and the channels it uses."""

    code = models.SlugField(_("code"), max_length=64, unique=True)
    name_fr = models.CharField(_("name (French)"), max_length=150)
    name_en = models.CharField(_("name (English)"), max_length=150)
    description_fr = models.TextField(_("description (French)"), blank=True, default="")
    description_en = models.TextField(_("description (English)"), blank=True, default="")
    legal_basis = models.CharField(_("legal basis"), max_length=32, choices=LegalBasis.choices)
    channels = models.JSONField(
        _("channels"),
        default=list,
        help_text=_('Channels this purpose applies to, e.g. ["email", "sms"], or ["any"].'),
    )
    wording_version = models.CharField(
        _("wording version"),
        max_length=32,
        default="v1",
        help_text=_("Version of the consent wording shown to people; stored as proof."),
    )
    email_double_opt_in = models.BooleanField(
        _("email double opt-in"),
        default=True,
        help_text=_("Email consent counts only once the person confirms from their mailbox."),
    )
    shown_in_preference_centre = models.BooleanField(
        _("shown in the preference centre"), default=True
    )
    position = models.PositiveSmallIntegerField(_("position"), default=0)

    class Meta:
        verbose_name = _("purpose")
        verbose_name_plural = _("purposes")
        ordering = ["position", "code"]

    def __str__(self) -> str:
        return self.code

    def name(self, language: str) -> str:
        return self.name_fr if language.startswith("fr") else self.name_en

    def requires_double_opt_in(self, channel: str) -> bool:
        return (
            self.legal_basis == LegalBasis.CONSENT
            and self.email_double_opt_in
            and channel == ConsentChannel.EMAIL
        )


class LedgerIsAppendOnly(Exception):
    """Raised on any attempt to change or delete consent ledger rows through the ORM."""


class ConsentEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise LedgerIsAppendOnly("consent ledger rows cannot be updated")

    def delete(self):
        raise LedgerIsAppendOnly("consent ledger rows cannot be deleted")

    update.queryset_only = True
    delete.queryset_only = True


class ConsentEvent(models.Model):
    """One fact of the ledger: a grant or a withdrawal, when, from where, with its proof.

    ``awaiting_confirmation`` marks an email grant under double opt-in that is not yet
    confirmed: it is evidence of the request but decides nothing. The row that decides a
    ``(contact, purpose, channel)`` at time *t* is the latest row with
    ``awaiting_confirmation=False`` and ``occurred_at <= t`` (ties broken by id).
    """

    # Indexed by consent_ledger_decision (contact first); no separate FK index.
    contact = models.ForeignKey(
        Contact,
        on_delete=models.CASCADE,
        related_name="consent_events",
        verbose_name=_("contact"),
        db_index=False,
    )
    purpose = models.ForeignKey(
        Purpose, on_delete=models.PROTECT, related_name="events", verbose_name=_("purpose")
    )
    channel = models.CharField(_("channel"), max_length=8, choices=ConsentChannel.choices)
    granted = models.BooleanField(_("granted"))
    awaiting_confirmation = models.BooleanField(_("awaiting confirmation"), default=False)
    occurred_at = models.DateTimeField(_("occurred at"))
    recorded_at = models.DateTimeField(_("recorded at"), auto_now_add=True)
    source = models.CharField(_("source"), max_length=32, choices=ConsentSource.choices)
    proof = models.JSONField(
        _("proof"),
        default=dict,
        blank=True,
        help_text=_("Wording version shown, IP address, user agent, confirmation time…"),
    )
    actor = models.CharField(_("actor"), max_length=150, blank=True, default="")
    source_event_id = models.BigIntegerField(
        _("source event"),
        null=True,
        blank=True,
        help_text=_("Behavioural event (inbound SMS…) this row was derived from."),
    )

    objects = ConsentEventQuerySet.as_manager()

    class Meta:
        verbose_name = _("consent event")
        verbose_name_plural = _("consent ledger")
        ordering = ["-occurred_at", "-id"]
        indexes = [
            models.Index(
                fields=["contact", "purpose", "channel", "occurred_at"],
                name="consent_ledger_decision",
            ),
            models.Index(fields=["occurred_at"], name="consent_ledger_by_time"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["source_event_id", "purpose", "channel"],
                condition=Q(source_event_id__isnull=False),
                name="consent_event_once_per_source_event",
            ),
            models.CheckConstraint(
                condition=Q(awaiting_confirmation=False) | Q(granted=True),
                name="consent_event_only_grants_await_confirmation",
            ),
        ]

    def __str__(self) -> str:
        verb = "grant" if self.granted else "withdraw"
        return f"{verb} {self.purpose_id}/{self.channel} #{self.contact_id}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not kwargs.pop("_sanctioned", False):
            raise LedgerIsAppendOnly("consent ledger rows cannot be updated")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise LedgerIsAppendOnly("consent ledger rows cannot be deleted")


class CurrentConsent(models.Model):
    """Derived: the deciding ledger row of each ``(contact, purpose, channel)`` now.

    Rebuilt from the ledger by ``consent.services`` in the transaction that appends to it.
    A missing row means "no decision yet" (no consent; legitimate interest applies).
    """

    # The composite indexes below cover lookups by contact and purpose: no separate indexes for
    # those FKs (fewer to maintain when a million rows are rebuilt). ``event`` keeps its index:
    # PostgreSQL's FK check needs it when ledger rows of a deleted contact go.
    contact = models.ForeignKey(
        Contact, on_delete=models.CASCADE, related_name="current_consents", db_index=False
    )
    purpose = models.ForeignKey(Purpose, on_delete=models.CASCADE, related_name="+", db_index=False)
    channel = models.CharField(_("channel"), max_length=8, choices=ConsentChannel.choices)
    granted = models.BooleanField(_("granted"))
    event = models.ForeignKey(ConsentEvent, on_delete=models.CASCADE, related_name="+")
    decided_at = models.DateTimeField(_("decided at"))

    class Meta:
        verbose_name = _("current consent")
        verbose_name_plural = _("current consents")
        constraints = [
            models.UniqueConstraint(
                fields=["contact", "purpose", "channel"], name="current_consent_one_per_key"
            )
        ]
        indexes = [
            models.Index(
                fields=["purpose", "channel", "granted", "contact"],
                name="current_consent_contactable",
            )
        ]

    def __str__(self) -> str:
        return f"{self.contact_id}/{self.purpose_id}/{self.channel}={self.granted}"


class SuppressionReason(models.TextChoices):
    HARD_BOUNCE = "hard_bounce", _("Hard bounce")
    COMPLAINT = "complaint", _("Spam complaint")
    MANUAL = "manual", _("Added by hand")
    ERASED = "erased", _("Erased person (right to erasure)")


class Suppression(models.Model):
    """An address that must never be messaged on a channel.

    ``address_hash`` (HMAC-SHA256 with the server secret) is always set and unique per channel;
    ``address`` holds the normalised clear text for bounces and complaints, and is blank for
    erased people so that no personal data of theirs is kept.
    """

    channel = models.CharField(_("channel"), max_length=8, choices=ConsentChannel.choices)
    address = models.CharField(_("address"), max_length=254, blank=True, default="")
    address_hash = models.CharField(_("address hash (HMAC)"), max_length=64)
    reason = models.CharField(_("reason"), max_length=16, choices=SuppressionReason.choices)
    source = models.CharField(_("source"), max_length=64, blank=True, default="")
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("suppressed address")
        verbose_name_plural = _("suppression list")
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "address_hash"], name="suppression_once_per_address"
            )
        ]
        indexes = [models.Index(fields=["channel", "address"], name="suppression_by_address")]

    def __str__(self) -> str:
        return f"{self.channel}: {self.address or self.address_hash[:12] + '…'}"


class ErasedContact(models.Model):
    """Marks a contact row anonymised by ``erase_contact``; it is never contactable again."""

    contact = models.OneToOneField(
        Contact, on_delete=models.CASCADE, primary_key=True, related_name="erasure"
    )
    erased_at = models.DateTimeField(_("erased at"))
    actor = models.CharField(_("actor"), max_length=150)
    report = models.JSONField(_("report"), default=dict)

    class Meta:
        verbose_name = _("erased contact")
        verbose_name_plural = _("erased contacts")

    def __str__(self) -> str:
        return f"#{self.contact_id}"


class RightsRequestKind(models.TextChoices):
    ACCESS = "access", _("Access / portability (Art. 15, 20)")
    ERASURE = "erasure", _("Erasure (Art. 17)")
    RECTIFICATION = "rectification", _("Rectification (Art. 16)")
    OBJECTION = "objection", _("Objection to profiling (Art. 21)")
    RESTRICTION = "restriction", _("Restriction (Art. 18)")


RIGHTS_REQUEST_DEADLINE = timedelta(days=30)


class RightsRequest(models.Model):
    """A data-subject request handled by the DPO, due one month after receipt (Art. 12(3))."""

    kind = models.CharField(_("request"), max_length=16, choices=RightsRequestKind.choices)
    contact = models.ForeignKey(
        Contact,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="rights_requests",
        verbose_name=_("contact"),
    )
    requester = models.CharField(
        _("requester"),
        max_length=254,
        blank=True,
        default="",
        help_text=_("How the person reached us (cleared when the contact is erased)."),
    )
    received_at = models.DateTimeField(_("received at"))
    due_at = models.DateTimeField(_("due at"), blank=True)
    completed_at = models.DateTimeField(_("completed at"), null=True, blank=True)
    handled_by = models.CharField(_("handled by"), max_length=150, blank=True, default="")
    notes = models.TextField(_("notes"), blank=True, default="")

    class Meta:
        verbose_name = _("rights request")
        verbose_name_plural = _("rights requests")
        ordering = ["completed_at", "due_at"]
        indexes = [models.Index(fields=["completed_at", "due_at"], name="rights_request_due")]
        permissions = [
            (
                "carry_out_rightsrequest",
                _("Can carry out erasure and objection requests (erases personal data)"),
            ),
            ("export_contact", _("Can export a contact's personal data (access requests)")),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk}"

    def save(self, *args, **kwargs):
        if self.due_at is None and self.received_at is not None:
            self.due_at = self.received_at + RIGHTS_REQUEST_DEADLINE
        super().save(*args, **kwargs)


class RetentionPurge(models.Model):
    """Report of one retention run (or dry run): what went, or would go, and why."""

    started_at = models.DateTimeField(_("started at"))
    dry_run = models.BooleanField(_("dry run"))
    events_cutoff = models.DateTimeField(_("events older than"))
    contacts_cutoff = models.DateTimeField(_("contacts inactive since"))
    events_deleted = models.PositiveBigIntegerField(_("events deleted"), default=0)
    contacts_erased = models.PositiveBigIntegerField(_("contacts erased"), default=0)
    report = models.JSONField(_("report"), default=dict)

    class Meta:
        verbose_name = _("retention purge")
        verbose_name_plural = _("retention purges")
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.started_at:%Y-%m-%d %H:%M}{' (dry run)' if self.dry_run else ''}"
