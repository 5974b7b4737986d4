"""Segments: per-contact features, rule segments, priority families, materialised memberships.

Invariants the database enforces: one feature row per contact (primary key = contact), at most
one *open* membership per (segment, contact) (partial unique constraint), a membership never
exits before it enters, segment names are unique.
"""

from __future__ import annotations

from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from contacts.models import Contact


class ContactFeatures(models.Model):
    """Behavioural features of one contact, computed as of ``as_of`` by ``segments.features``.

    Purchases are events of type ``CIBLE_PURCHASE_EVENT_TYPE`` whose property
    ``CIBLE_PURCHASE_AMOUNT_PROPERTY`` is a JSON number. Day counts are whole days (floor).
    """

    # No database-level foreign key: the table is derived data rebuilt and swapped in by every
    # full refresh, like a materialised view (docs/decisions.md). Deleting a contact through
    # Django still deletes its row; readers always start from contacts.
    contact = models.OneToOneField(
        Contact,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="features",
        db_constraint=False,
    )
    recency_days = models.IntegerField(
        _("recency (days since last purchase)"), null=True, blank=True
    )
    frequency_90d = models.IntegerField(_("purchases in 90 days"), default=0)
    frequency_365d = models.IntegerField(_("purchases in 365 days"), default=0)
    monetary_total = models.FloatField(_("total spent"), default=0.0)
    avg_basket = models.FloatField(_("average basket"), null=True, blank=True)
    mean_interpurchase_days = models.FloatField(
        _("mean days between purchases"), null=True, blank=True
    )
    engagement_score = models.FloatField(_("engagement score"), default=0.0)
    last_activity_at = models.DateTimeField(_("last activity"), null=True, blank=True)
    preferred_channel = models.CharField(
        _("preferred channel"), max_length=16, blank=True, default=""
    )
    days_since_signup = models.IntegerField(_("days since sign-up"))
    computed_at = models.DateTimeField(_("computed at"))
    as_of = models.DateTimeField(_("as of"))

    # Running totals as of ``as_of`` (``segments.features.STATE_COLUMNS``), from which the
    # incremental refresh folds in a contact's new events instead of reading its whole history
    # (docs/decisions.md). ``events_through`` is the newest event id the row includes and
    # ``fold_key`` the feature settings it was computed with; NULL (SQLite, or after a merge):
    # the next refresh of the contact reads every event.
    events_through = models.BigIntegerField(null=True, blank=True, editable=False)
    fold_key = models.BigIntegerField(null=True, blank=True, editable=False)
    purchases = models.IntegerField(null=True, blank=True, editable=False)
    amounts = models.IntegerField(null=True, blank=True, editable=False)
    spend = models.FloatField(null=True, blank=True, editable=False)
    first_purchase_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_purchase_at = models.DateTimeField(null=True, blank=True, editable=False)
    channel_email = models.IntegerField(null=True, blank=True, editable=False)
    channel_sms = models.IntegerField(null=True, blank=True, editable=False)
    channel_push = models.IntegerField(null=True, blank=True, editable=False)
    channel_web = models.IntegerField(null=True, blank=True, editable=False)
    channel_app = models.IntegerField(null=True, blank=True, editable=False)
    channel_store = models.IntegerField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("contact features")
        verbose_name_plural = _("contact features")

    def __str__(self) -> str:
        return gettext("features of contact %(id)s") % {"id": self.contact_id}


class FeatureWatermark(models.Model):
    """Bookkeeping of an incremental refresh (segment features, ML counters): the last event id
    already folded in."""

    name = models.CharField(max_length=32, primary_key=True)
    last_event_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)
    # When what the watermark tracks was last rebuilt from every event (None: not tracked).
    rebuilt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("feature watermark")
        verbose_name_plural = _("feature watermarks")

    def __str__(self) -> str:
        return f"{self.name}: event {self.last_event_id}"


class SegmentFamily(models.Model):
    """Segments of a family are mutually exclusive: a contact belongs to the first matching
    segment in priority order (lowest number first, then lowest id)."""

    name = models.CharField(_("name"), max_length=120, unique=True)
    description = models.TextField(_("description"), blank=True, default="")

    class Meta:
        verbose_name = _("priority family")
        verbose_name_plural = _("priority families")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Segment(models.Model):
    class Kind(models.TextChoices):
        RULE = "rule", _("Rule segment")
        CLUSTER = "cluster", _("ML cluster segment")

    name = models.CharField(_("name"), max_length=120, unique=True)
    description = models.TextField(_("description"), blank=True, default="")
    rule = models.JSONField(
        _("rule"), default=dict, help_text=_("JSON rule tree; see docs/segments.md.")
    )
    family = models.ForeignKey(
        SegmentFamily,
        verbose_name=_("priority family"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="segments",
    )
    priority = models.PositiveIntegerField(
        _("priority"), default=100, help_text=_("Within a family, the lowest number wins.")
    )
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices, default=Kind.RULE)
    is_active = models.BooleanField(_("active"), default=True)
    size = models.PositiveIntegerField(_("size"), default=0)
    last_computed_at = models.DateTimeField(_("last computed at"), null=True, blank=True)
    last_compute_ms = models.PositiveIntegerField(
        _("last compute duration (ms)"), null=True, blank=True
    )
    # Bookkeeping of the computation a user is waiting for: set when a computation is asked
    # for, cleared when one that started after the request finished (or failed).
    compute_requested_at = models.DateTimeField(
        _("computation requested at"), null=True, blank=True
    )
    compute_failed_at = models.DateTimeField(_("last computation failed at"), null=True, blank=True)
    compute_error = models.TextField(_("why the last computation failed"), blank=True, default="")
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("segment")
        verbose_name_plural = _("segments")
        ordering = ["family__name", "priority", "id"]

    def __str__(self) -> str:
        return self.name


class SegmentMembership(models.Model):
    """A contact's stay in a segment: open while ``exited_at`` is null; history is kept."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="memberships")
    contact = models.ForeignKey(
        Contact, on_delete=models.CASCADE, related_name="segment_memberships"
    )
    entered_at = models.DateTimeField(_("entered at"))
    exited_at = models.DateTimeField(_("exited at"), null=True, blank=True)

    class Meta:
        verbose_name = _("segment membership")
        verbose_name_plural = _("segment memberships")
        constraints = [
            models.UniqueConstraint(
                fields=["segment", "contact"],
                condition=Q(exited_at__isnull=True),
                name="membership_one_open_per_segment",
            ),
            models.CheckConstraint(
                condition=Q(exited_at__isnull=True) | Q(exited_at__gte=F("entered_at")),
                name="membership_exits_after_entering",
            ),
        ]
        indexes = [
            models.Index(
                fields=["contact", "segment"],
                condition=Q(exited_at__isnull=True),
                name="membership_open_by_contact",
            ),
            models.Index(fields=["segment", "entered_at"], name="membership_by_segment_time"),
        ]

    def __str__(self) -> str:
        return f"{self.contact_id} in {self.segment_id}"


class SegmentComputation(models.Model):
    """One full computation of a segment: when, how long, resulting size and the diff."""

    class Trigger(models.TextChoices):
        SCHEDULED = "scheduled", _("Scheduled")
        MANUAL = "manual", _("Manual")

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="computations")
    started_at = models.DateTimeField(_("started at"))
    duration_ms = models.PositiveIntegerField(_("duration (ms)"))
    size = models.PositiveIntegerField(_("size"))
    entered = models.PositiveIntegerField(_("entered"))
    exited = models.PositiveIntegerField(_("exited"))
    trigger = models.CharField(_("trigger"), max_length=16, choices=Trigger.choices)

    class Meta:
        verbose_name = _("segment computation")
        verbose_name_plural = _("segment computations")
        indexes = [models.Index(fields=["segment", "started_at"], name="computation_by_segment")]

    def __str__(self) -> str:
        return f"{self.segment_id} @ {self.started_at:%Y-%m-%d %H:%M}: {self.size}"
