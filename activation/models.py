"""Templates, campaigns, runs and the outbox — the state machine that decides what is sent.

The outbox is the truth about a message: one row per ``(run, contact, step)`` (a unique
constraint, so nothing is doubled), moved ``queued → sending → sent | failed`` by delivery
(``deferred`` when waiting for quiet hours to end or for a retry; ``skipped`` with a reason
when the contact is not eligible; ``cancelled`` by an operator). Campaigns and runs are
extended by workflows (issue 7); variants are set by experiments through ``activation.variants``.
"""

from __future__ import annotations

from datetime import time

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from contacts.models import Contact, Event


class MessageChannel(models.TextChoices):
    EMAIL = "email", _("Email")
    SMS = "sms", _("SMS")
    PUSH = "push", _("Push")


class Template(models.Model):
    """A message, written once per locale (``TemplateVersion``), in Django template language."""

    name = models.CharField(_("name"), max_length=150, unique=True)
    channel = models.CharField(_("channel"), max_length=8, choices=MessageChannel.choices)
    default_locale = models.CharField(
        _("default locale"),
        max_length=10,
        default="fr",
        help_text=_("Version used for contacts whose locale has no version of its own."),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("template")
        verbose_name_plural = _("templates")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class TemplateVersion(models.Model):
    """One locale of a template. Fields used depend on the template's channel."""

    template = models.ForeignKey(Template, on_delete=models.CASCADE, related_name="versions")
    locale = models.CharField(
        _("locale"), max_length=10, choices=[("fr", _("French")), ("en", _("English"))]
    )
    subject = models.CharField(_("email subject"), max_length=255, blank=True, default="")
    html = models.TextField(_("email HTML body"), blank=True, default="")
    text = models.TextField(
        _("email plain-text body"),
        blank=True,
        default="",
        help_text=_("Left empty, it is derived from the HTML body."),
    )
    sms_body = models.TextField(_("SMS body"), blank=True, default="")
    push_title = models.CharField(_("push title"), max_length=120, blank=True, default="")
    push_body = models.CharField(_("push body"), max_length=400, blank=True, default="")
    push_url = models.CharField(_("push target URL"), max_length=500, blank=True, default="")
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("template version")
        verbose_name_plural = _("template versions")
        constraints = [
            models.UniqueConstraint(
                fields=["template", "locale"], name="template_version_one_per_locale"
            )
        ]

    def __str__(self) -> str:
        return f"{self.template} [{self.locale}]"


class QuietHoursPolicy(models.TextChoices):
    DEFER = "defer", _("Defer to the next allowed time")
    SKIP = "skip", _("Skip the contact")


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    ACTIVE = "active", _("Active")
    PAUSED = "paused", _("Paused")
    ARCHIVED = "archived", _("Archived")


class Campaign(models.Model):
    """Who (target segments minus exclusion segments), why (purpose), how (channel, template)."""

    name = models.CharField(_("name"), max_length=150)
    purpose = models.ForeignKey(
        "consent.Purpose",
        on_delete=models.PROTECT,
        related_name="campaigns",
        verbose_name=_("purpose"),
        help_text=_("Consent is checked for this purpose on the campaign's channel."),
    )
    channel = models.CharField(_("channel"), max_length=8, choices=MessageChannel.choices)
    template = models.ForeignKey(
        Template, on_delete=models.PROTECT, related_name="campaigns", verbose_name=_("template")
    )
    segments = models.ManyToManyField(
        "segments.Segment",
        related_name="campaigns",
        verbose_name=_("target segments"),
        help_text=_("Members of any of these segments are in the audience."),
    )
    exclusion_segments = models.ManyToManyField(
        "segments.Segment",
        related_name="excluded_from_campaigns",
        blank=True,
        verbose_name=_("exclusion segments"),
        help_text=_("Members of any of these segments are left out."),
    )
    quiet_hours_policy = models.CharField(
        _("during quiet hours"),
        max_length=8,
        choices=QuietHoursPolicy.choices,
        default=QuietHoursPolicy.DEFER,
    )
    quiet_hours_start = models.TimeField(
        _("quiet hours start (contact's local time)"), default=time(21, 0)
    )
    quiet_hours_end = models.TimeField(
        _("quiet hours end (contact's local time)"), default=time(8, 0)
    )
    frequency_capped = models.BooleanField(
        _("apply frequency caps"),
        default=True,
        help_text=_("Count this campaign's messages against the per-channel and global caps."),
    )
    status = models.CharField(
        _("status"), max_length=10, choices=CampaignStatus.choices, default=CampaignStatus.DRAFT
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("campaign")
        verbose_name_plural = _("campaigns")
        ordering = ["-created_at"]
        permissions = [
            ("approve_campaign", _("Can approve a campaign for launch")),
            ("launch_campaign", _("Can launch a campaign (send it now)")),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(quiet_hours_start=models.F("quiet_hours_end")),
                name="campaign_quiet_hours_not_empty_window",
            )
        ]

    def __str__(self) -> str:
        return self.name


class RunStatus(models.TextChoices):
    DRY_RUN = "dry_run", _("Dry run (nothing sent)")
    PREPARING = "preparing", _("Preparing the audience")
    SENDING = "sending", _("Sending")
    DONE = "done", _("Done")
    DONE_WITH_FAILURES = "done_with_failures", _("Done with failures")
    CANCELLED = "cancelled", _("Cancelled")


# A finished run: every row reached a final state (some may have failed).
FINISHED_RUN_STATES = (RunStatus.DONE, RunStatus.DONE_WITH_FAILURES)


class CampaignRun(models.Model):
    """One send of a campaign: the audience snapshot, its eligibility counts and progress.

    ``counts`` holds the numbers shown to marketers: ``{"audience": n, "by_state": {...},
    "by_reason": {...}}``; ``report`` holds the dry-run samples per reason.
    """

    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="runs", verbose_name=_("campaign")
    )
    status = models.CharField(_("status"), max_length=20, choices=RunStatus.choices)
    dry_run = models.BooleanField(_("dry run"), default=False)
    created_at = models.DateTimeField(_("created at"))
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    audience_size = models.PositiveIntegerField(_("audience size"), default=0)
    counts = models.JSONField(_("counts"), default=dict, blank=True)
    report = models.JSONField(_("report"), default=dict, blank=True)

    class Meta:
        verbose_name = _("campaign run")
        verbose_name_plural = _("campaign runs")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.campaign} #{self.pk}"


class OutboxState(models.TextChoices):
    QUEUED = "queued", _("Queued")
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed")
    DEFERRED = "deferred", _("Deferred")
    SKIPPED = "skipped", _("Skipped")
    CANCELLED = "cancelled", _("Cancelled")


class SkipReason(models.TextChoices):
    """Why a contact of the audience gets no message (see docs/sending.md)."""

    NO_CONSENT = "no_consent", _("No consent for this purpose and channel")
    SUPPRESSED = "suppressed", _("Address on the suppression list")
    NO_ADDRESS = "no_address", _("Missing or invalid address / no active subscription")
    FREQUENCY_CAP = "frequency_cap", _("Frequency cap reached")
    QUIET_HOURS = "quiet_hours", _("Quiet hours in the contact's time zone")
    HOLDOUT = "holdout", _("Experiment holdout")
    CONSENT_WITHDRAWN = "consent_withdrawn", _("Consent withdrawn before sending")


CLAIMABLE_STATES = (OutboxState.QUEUED, OutboxState.DEFERRED)
OPEN_STATES = (OutboxState.QUEUED, OutboxState.DEFERRED, OutboxState.SENDING)


class OutboxMessage(models.Model):
    """One message to one contact for one step of a run; the delivery state machine."""

    # No database-level foreign keys here: a launch inserts up to millions of rows in one
    # statement, and PostgreSQL checks a foreign key row by row (a locking read of the contact
    # and of the run per row — a third of a 1M-row launch). Both ids come from the referenced
    # tables in that same statement; deletions cascade through Django (on_delete); delivery
    # cancels a row whose contact vanished meanwhile (see docs/sending.md). No single-column
    # indexes either: (run, contact, step), (run, state) and (contact, created_at) lead with them.
    run = models.ForeignKey(
        CampaignRun,
        on_delete=models.CASCADE,
        related_name="messages",
        verbose_name=_("run"),
        db_constraint=False,
        db_index=False,
    )
    contact = models.ForeignKey(
        Contact,
        on_delete=models.CASCADE,
        related_name="outbox_messages",
        verbose_name=_("contact"),
        db_constraint=False,
        db_index=False,
    )
    step = models.PositiveIntegerField(_("step"), default=0)
    channel = models.CharField(_("channel"), max_length=8, choices=MessageChannel.choices)
    variant = models.CharField(_("variant"), max_length=64, blank=True, default="")
    state = models.CharField(
        _("state"), max_length=10, choices=OutboxState.choices, default=OutboxState.QUEUED
    )
    skip_reason = models.CharField(
        _("skip reason"), max_length=20, choices=SkipReason.choices, blank=True, default=""
    )
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt at"))
    claim_token = models.CharField(_("claim token"), max_length=32, blank=True, default="")
    lease_expires_at = models.DateTimeField(_("lease expires at"), null=True, blank=True)
    provider_message_id = models.CharField(
        _("provider message ID"), max_length=255, blank=True, default=""
    )
    message_id = models.CharField(_("Message-ID header"), max_length=255, blank=True, default="")
    error = models.TextField(_("last error"), blank=True, default="")
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"))

    class Meta:
        verbose_name = _("outbox message")
        verbose_name_plural = _("outbox")
        constraints = [
            models.UniqueConstraint(
                fields=["run", "contact", "step"], name="outbox_once_per_run_contact_step"
            ),
            models.CheckConstraint(
                condition=Q(state__in=["skipped", "deferred"]) | Q(skip_reason=""),
                name="outbox_reason_only_when_skipped_or_deferred",
            ),
        ]
        indexes = [
            # Partial indexes: each covers only the rows its query looks for.
            # (channel, next_attempt_at, id): the claim's ORDER BY … LIMIT reads the first due
            # rows straight from the index instead of sorting every due row of the channel.
            models.Index(
                fields=["channel", "next_attempt_at", "id"],
                condition=Q(state__in=["queued", "deferred"]),
                name="outbox_claim_order",
            ),
            models.Index(
                fields=["lease_expires_at"],
                condition=Q(state="sending"),
                name="outbox_expired_leases",
            ),
            models.Index(
                fields=["claim_token"], condition=~Q(claim_token=""), name="outbox_by_claim"
            ),
            models.Index(
                fields=["sent_at"], condition=Q(state="sent"), name="outbox_frequency_cap"
            ),
            models.Index(fields=["run", "state"], name="outbox_run_progress"),
            models.Index(fields=["contact", "created_at"], name="outbox_by_contact"),
        ]

    def __str__(self) -> str:
        return f"{self.channel} → #{self.contact_id} ({self.state})"


class AttemptOutcome(models.TextChoices):
    SENT = "sent", _("Sent")
    RETRYABLE = "retryable", _("Temporary error (will retry)")
    PERMANENT = "permanent", _("Permanent error")
    GAVE_UP = "gave_up", _("Temporary error, attempts exhausted")


class DeliveryAttempt(models.Model):
    """The delivery log: one row per hand-off attempt of an outbox message."""

    message = models.ForeignKey(OutboxMessage, on_delete=models.CASCADE, related_name="attempt_log")
    attempt = models.PositiveSmallIntegerField(_("attempt"))
    at = models.DateTimeField(_("at"))
    outcome = models.CharField(_("outcome"), max_length=10, choices=AttemptOutcome.choices)
    provider_message_id = models.CharField(
        _("provider message ID"), max_length=255, blank=True, default=""
    )
    error = models.TextField(_("error"), blank=True, default="")

    class Meta:
        verbose_name = _("delivery attempt")
        verbose_name_plural = _("delivery log")
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["outcome", "at"], name="delivery_log_by_outcome")]

    def __str__(self) -> str:
        return f"#{self.message_id} attempt {self.attempt}: {self.outcome}"


class Attribution(models.Model):
    """A conversion event credited to the last message sent to the contact within the window."""

    # No database foreign key: on PostgreSQL events are partitioned and their primary key is
    # (id, occurred_at), so ``id`` alone cannot be referenced. Django still cascades deletes of
    # events made through the ORM; partition drops delete these rows first (retention).
    event = models.OneToOneField(
        Event,
        on_delete=models.CASCADE,
        related_name="attribution",
        verbose_name=_("conversion"),
        db_constraint=False,
    )
    message = models.ForeignKey(
        OutboxMessage, on_delete=models.CASCADE, related_name="attributions"
    )
    run = models.ForeignKey(CampaignRun, on_delete=models.CASCADE, related_name="attributions")
    variant = models.CharField(_("variant"), max_length=64, blank=True, default="")
    value = models.DecimalField(_("value"), max_digits=12, decimal_places=2, null=True)
    attributed_at = models.DateTimeField(_("attributed at"))

    class Meta:
        verbose_name = _("attributed conversion")
        verbose_name_plural = _("attributed conversions")
        indexes = [models.Index(fields=["run", "variant"], name="attribution_by_run_variant")]

    def __str__(self) -> str:
        return f"event #{self.event_id} → message #{self.message_id}"
