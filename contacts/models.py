"""Contacts and their behavioural events — the data every other app reads.

Values are stored normalised (E.164 phones, lower-cased emails, aware UTC timestamps,
ISO 3166-1 alpha-2 countries, IANA time zones); normalisation happens at the door
(contacts.services / ingestion), the database enforces what it can.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Length
from django.utils.translation import gettext_lazy as _

models.CharField.register_lookup(Length)


class Channel(models.TextChoices):
    EMAIL = "email", _("Email")
    SMS = "sms", _("SMS")
    PUSH = "push", _("Push")
    WEB = "web", _("Web")
    APP = "app", _("Mobile app")
    STORE = "store", _("Store")


class Contact(models.Model):
    external_id = models.CharField(_("external ID"), max_length=128, unique=True)
    email = models.CharField(_("email"), max_length=254, blank=True, default="")
    phone = models.CharField(_("phone (E.164)"), max_length=16, blank=True, default="")
    first_name = models.CharField(_("first name"), max_length=150, blank=True, default="")
    last_name = models.CharField(_("last name"), max_length=150, blank=True, default="")
    locale = models.CharField(_("locale"), max_length=10, blank=True, default="fr")
    timezone = models.CharField(_("time zone (IANA)"), max_length=64, default="Europe/Paris")
    country = models.CharField(
        _("country (ISO 3166-1 alpha-2)"), max_length=2, blank=True, default=""
    )
    city = models.CharField(_("city"), max_length=120, blank=True, default="")
    birth_year = models.PositiveSmallIntegerField(_("birth year"), null=True, blank=True)
    attributes = models.JSONField(_("attributes"), default=dict, blank=True)
    is_anonymous = models.BooleanField(
        _("anonymous profile"),
        default=False,
        help_text=_("Created from an event naming an unknown contact."),
    )
    created_at = models.DateTimeField(_("created at"), db_index=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")
        indexes = [
            models.Index(fields=["email"], name="contact_by_email"),
            models.Index(fields=["phone"], name="contact_by_phone"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(phone="") | Q(phone__startswith="+"),
                name="contact_phone_is_e164",
            ),
            models.CheckConstraint(
                condition=Q(country="") | Q(country__length=2),
                name="contact_country_is_alpha2",
            ),
            models.CheckConstraint(
                condition=Q(birth_year__isnull=True)
                | Q(birth_year__gte=1900, birth_year__lte=2100),
                name="contact_birth_year_plausible",
            ),
        ]

    def __str__(self) -> str:
        name = f"{self.first_name} {self.last_name}".strip()
        return name or self.email or self.external_id


class Event(models.Model):
    """A behavioural event. Idempotent by ``(source, idempotency_key)``."""

    # No single-column index: ``event_contact_by_time`` (contact, occurred_at) serves every
    # lookup by contact, and each index is one more random page write per ingested event.
    contact = models.ForeignKey(
        Contact, on_delete=models.CASCADE, related_name="events", db_index=False
    )
    type = models.CharField(_("type"), max_length=64)
    occurred_at = models.DateTimeField(_("occurred at (UTC)"))
    received_at = models.DateTimeField(_("received at"), auto_now_add=True)
    properties = models.JSONField(_("properties"), default=dict, blank=True)
    channel = models.CharField(
        _("channel"), max_length=16, choices=Channel.choices, blank=True, default=""
    )
    device = models.CharField(_("device"), max_length=32, blank=True, default="")
    country = models.CharField(_("country"), max_length=2, blank=True, default="")
    city = models.CharField(_("city"), max_length=120, blank=True, default="")
    source = models.CharField(_("source"), max_length=64)
    idempotency_key = models.CharField(_("idempotency key"), max_length=128)

    class Meta:
        verbose_name = _("event")
        verbose_name_plural = _("events")
        constraints = [
            models.UniqueConstraint(
                fields=["source", "idempotency_key"], name="event_unique_per_source_key"
            ),
        ]
        indexes = [
            models.Index(fields=["contact", "occurred_at"], name="event_contact_by_time"),
            # Covers contact_id: a count of one type's events in a time window (segment event
            # conditions) is answered by an index-only scan, with no heap page per event.
            models.Index(
                fields=["type", "occurred_at"], include=["contact"], name="event_type_by_time"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type} @ {self.occurred_at:%Y-%m-%d %H:%M}"


class PushSubscription(models.Model):
    """A Web Push subscription (endpoint + keys) of a contact's browser or device."""

    contact = models.ForeignKey(
        Contact, on_delete=models.CASCADE, related_name="push_subscriptions"
    )
    endpoint = models.URLField(_("endpoint"), max_length=1000, unique=True)
    p256dh = models.CharField(_("p256dh key"), max_length=200)
    auth = models.CharField(_("auth secret"), max_length=100)
    user_agent = models.CharField(_("user agent"), max_length=300, blank=True, default="")
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    deactivated_at = models.DateTimeField(_("deactivated at"), null=True, blank=True)

    class Meta:
        verbose_name = _("push subscription")
        verbose_name_plural = _("push subscriptions")
        indexes = [models.Index(fields=["contact", "active"], name="push_active_by_contact")]

    def __str__(self) -> str:
        return self.endpoint[:60]


class ApiKey(models.Model):
    """A REST API key. Only a SHA-256 hash is stored; the key is shown once at creation.

    Header: ``Authorization: Api-Key <prefix>.<secret>``. Scopes name what the key may do
    (e.g. ``contacts:write``, ``events:write``, ``segments:read``); ``*`` allows everything.
    """

    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(_("prefix"), max_length=12, unique=True)
    hashed_key = models.CharField(_("hashed key"), max_length=64)
    scopes = models.JSONField(_("scopes"), default=list, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)

    class Meta:
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def allows(self, scope: str) -> bool:
        return "*" in self.scopes or scope in self.scopes


class AliasKind(models.TextChoices):
    EVENT_TYPE = "event_type", _("Event type")
    CATEGORY = "category", _("Product category")
    CITY = "city", _("City")


class Alias(models.Model):
    """One spelling marketers' data uses → the canonical value stored (editable in the admin).

    ``key`` is the folded form of ``alias`` (accents, case and punctuation ignored; for cities
    "St"/"Ste" expanded), so "Page View", "page-view" and "PAGE_VIEW" share one row.
    """

    kind = models.CharField(_("kind"), max_length=16, choices=AliasKind.choices)
    alias = models.CharField(_("alias"), max_length=120)
    key = models.CharField(_("matching key"), max_length=120, editable=False)
    canonical = models.CharField(_("canonical value"), max_length=120)

    class Meta:
        verbose_name = _("alias")
        verbose_name_plural = _("aliases")
        ordering = ("kind", "key")
        constraints = [
            models.UniqueConstraint(fields=["kind", "key"], name="alias_unique_per_kind_key"),
        ]

    def __str__(self) -> str:
        return f"{self.alias} → {self.canonical}"

    def save(self, *args, **kwargs):
        from contacts.normalisation import alias_key, city_key

        self.key = city_key(self.alias) if self.kind == AliasKind.CITY else alias_key(self.alias)
        super().save(*args, **kwargs)


class ImportJob(models.Model):
    """A CSV import started from the admin (or a command): its file, mapping, progress and counts."""

    class Kind(models.TextChoices):
        CONTACTS = "contacts", _("Contacts")
        EVENTS = "events", _("Events")

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting for a worker")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.PENDING
    )
    file = models.FileField(_("file"), upload_to="imports/%Y/%m/")
    original_name = models.CharField(_("file name"), max_length=255, blank=True, default="")
    source = models.CharField(_("source"), max_length=64)
    delimiter = models.CharField(_("delimiter"), max_length=1, blank=True, default="")
    encoding = models.CharField(_("encoding"), max_length=16, blank=True, default="")
    default_timezone = models.CharField(
        _("default time zone"), max_length=64, blank=True, default=""
    )
    column_map = models.JSONField(
        _("column mapping"),
        default=dict,
        blank=True,
        help_text=_("CSV column → field; an empty target ignores the column."),
    )
    total_lines = models.PositiveIntegerField(_("lines"), default=0)
    processed_lines = models.PositiveIntegerField(_("lines processed"), default=0)
    created = models.PositiveIntegerField(_("created"), default=0)
    updated = models.PositiveIntegerField(_("updated"), default=0)
    duplicates = models.PositiveIntegerField(_("duplicates"), default=0)
    rejected = models.PositiveIntegerField(_("rejected"), default=0)
    rejects_file = models.FileField(_("reject file"), upload_to="imports/rejects/", blank=True)
    error = models.TextField(_("error"), blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        verbose_name=_("by"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("CSV import")
        verbose_name_plural = _("CSV imports")
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return f"{self.get_kind_display()} — {self.original_name or self.file.name}"

    @property
    def percent(self) -> int:
        if not self.total_lines:
            return 100 if self.status == self.Status.DONE else 0
        return min(100, round(100 * self.processed_lines / self.total_lines))


class ContactMerge(models.Model):
    """Audit row of one merge: who merged which contacts into which survivor, what moved."""

    survivor = models.ForeignKey(
        Contact,
        on_delete=models.SET_NULL,
        null=True,
        related_name="merges",
        verbose_name=_("survivor"),
    )
    survivor_external_id = models.CharField(_("survivor external ID"), max_length=128)
    merged_ids = models.JSONField(_("merged contact IDs"), default=list)
    merged_external_ids = models.JSONField(_("merged external IDs"), default=list)
    fields_filled = models.JSONField(_("fields filled from duplicates"), default=dict, blank=True)
    moved_events = models.PositiveIntegerField(_("events moved"), default=0)
    moved_push_subscriptions = models.PositiveIntegerField(_("push subscriptions moved"), default=0)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        verbose_name=_("by"),
    )
    actor_label = models.CharField(_("by (label)"), max_length=150, blank=True, default="")
    created_at = models.DateTimeField(_("merged at"), auto_now_add=True)

    class Meta:
        verbose_name = _("contact merge")
        verbose_name_plural = _("contact merges")
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return f"{', '.join(self.merged_external_ids)} → {self.survivor_external_id}"


class DuplicateReport(models.Model):
    """Probable duplicates found by the scheduled scan (same email, phone or external ID)."""

    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    group_counts = models.JSONField(_("groups per key"), default=dict)
    contacts_involved = models.PositiveIntegerField(_("contacts involved"), default=0)
    groups = models.JSONField(
        _("groups"), default=list, help_text=_("At most 1,000 groups are kept per report.")
    )

    class Meta:
        verbose_name = _("duplicate report")
        verbose_name_plural = _("duplicate reports")
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} — {self.contacts_involved}"
