"""Experiments: A/B/n tests of messages and of targeting strategies, with stored assignments.

An :class:`Experiment` has two or more :class:`Variant` rows (one of them the control, optionally
one holdout that receives nothing). Each contact that reaches the experiment is given a variant
once, deterministically (see ``experiments.assignment``), and the choice is stored in
:class:`Assignment` so it survives runs, workers and weight edits. Every automatic or manual
winner decision is written to :class:`DecisionLog` with the numbers it was based on.
"""

from __future__ import annotations

import secrets

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from activation.models import MessageChannel
from contacts.models import Contact


def new_salt() -> str:
    return secrets.token_hex(8)


class ExperimentKind(models.TextChoices):
    MESSAGE = "message", _("Message variants (subject, content, channel, send time)")
    TARGETING = "targeting", _("Targeting strategies (which audience to send to)")


class ExperimentStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    RUNNING = "running", _("Running")
    AWAITING_DECISION = "awaiting_decision", _("Waiting for the marketer's decision")
    ROLLING_OUT = "rolling_out", _("Sending the winner to the remainder")
    COMPLETED = "completed", _("Completed")


class Metric(models.TextChoices):
    OPEN = "open", _("Open rate (machine opens excluded)")
    CLICK = "click", _("Click rate")
    CONVERSION = "conversion", _("Conversion rate within N days")
    REVENUE = "revenue", _("Revenue per recipient")
    UNSUBSCRIBE = "unsubscribe", _("Unsubscribe rate")
    COMPLAINT = "complaint", _("Complaint rate")


PRIMARY_METRICS = (Metric.OPEN, Metric.CLICK, Metric.CONVERSION, Metric.REVENUE)
GUARDRAIL_METRICS = (Metric.UNSUBSCRIBE, Metric.COMPLAINT)
#: Metrics for which a lower value is better (guardrails).
LOWER_IS_BETTER = frozenset(GUARDRAIL_METRICS)


class Fallback(models.TextChoices):
    CONTROL = "control", _("Send the control to the remainder")
    ASK = "ask", _("Ask the marketer")


class Experiment(models.Model):
    name = models.CharField(_("name"), max_length=200)
    kind = models.CharField(
        _("kind"), max_length=16, choices=ExperimentKind.choices, default=ExperimentKind.MESSAGE
    )
    salt = models.CharField(
        _("assignment salt"),
        max_length=64,
        default=new_salt,
        help_text=_("Mixed with the contact ID to pick the variant. Never change it once running."),
    )
    status = models.CharField(
        _("status"), max_length=20, choices=ExperimentStatus.choices, default=ExperimentStatus.DRAFT
    )
    primary_metric = models.CharField(
        _("primary metric"),
        max_length=16,
        choices=[(m.value, m.label) for m in PRIMARY_METRICS],
        default=Metric.CLICK,
    )
    conversion_event_type = models.CharField(
        _("conversion event type"),
        max_length=64,
        default="purchase",
        help_text=_("Event that counts as a conversion (and carries the revenue amount)."),
    )
    conversion_window_days = models.PositiveSmallIntegerField(
        _("conversion window (days)"),
        default=7,
        validators=[MinValueValidator(1), MaxValueValidator(90)],
    )
    guardrail_unsubscribe = models.BooleanField(_("guardrail: unsubscribes"), default=True)
    guardrail_complaint = models.BooleanField(_("guardrail: complaints"), default=True)
    alpha = models.FloatField(
        _("significance level (alpha)"),
        default=0.05,
        validators=[MinValueValidator(0.001), MaxValueValidator(0.2)],
    )
    power = models.FloatField(
        _("power"), default=0.8, validators=[MinValueValidator(0.5), MaxValueValidator(0.99)]
    )
    minimum_detectable_effect = models.FloatField(
        _("minimum detectable effect (relative)"),
        default=0.10,
        validators=[MinValueValidator(0.005), MaxValueValidator(5.0)],
        help_text=_("Smallest relative change worth detecting, e.g. 0.10 for +10 %."),
    )
    baseline_rate = models.FloatField(
        _("expected baseline rate"),
        null=True,
        blank=True,
        validators=[MinValueValidator(0.0001), MaxValueValidator(0.9999)],
        help_text=_("Used by the sample-size calculator before launch, e.g. 0.03 for 3 %."),
    )
    sequential = models.BooleanField(
        _("sequential mode (safe to look every day)"),
        default=False,
        help_text=_("Always-valid p-values and confidence sequences (mSPRT)."),
    )
    msprt_tau2 = models.FloatField(
        _("mSPRT mixing variance"),
        default=1e-4,
        validators=[MinValueValidator(1e-8), MaxValueValidator(1.0)],
        help_text=_("About (expected absolute difference of rates)²; chosen before launch."),
    )
    auto_winner = models.BooleanField(_("send the winner automatically"), default=False)
    sample_share = models.FloatField(
        _("test sample share"),
        default=0.2,
        validators=[MinValueValidator(0.01), MaxValueValidator(1.0)],
        help_text=_("Share of the audience that takes part in the test when auto-winner is on."),
    )
    decision_wait_hours = models.PositiveIntegerField(_("wait before deciding (hours)"), default=24)
    fallback = models.CharField(
        _("when no variant wins"), max_length=10, choices=Fallback.choices, default=Fallback.CONTROL
    )
    campaign = models.ForeignKey(
        "activation.Campaign",
        verbose_name=_("campaign"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="experiments",
        help_text=_("The campaign whose runs ask this experiment for each contact's variant."),
    )
    winner = models.ForeignKey(
        "Variant",
        verbose_name=_("winner sent to the remainder"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    outcomes_event_id = models.BigIntegerField(
        _("outcomes computed up to event"),
        default=0,
        help_text=_("Watermark of the incremental outcome refresh (an event ID)."),
    )
    outcomes_refreshed_at = models.DateTimeField(_("outcomes refreshed at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)

    class Meta:
        verbose_name = _("experiment")
        verbose_name_plural = _("experiments")
        constraints = [
            models.CheckConstraint(
                condition=Q(alpha__gt=0, alpha__lt=1), name="experiment_alpha_in_unit_interval"
            ),
            models.CheckConstraint(
                condition=Q(sample_share__gt=0, sample_share__lte=1),
                name="experiment_sample_share_in_unit_interval",
            ),
            models.UniqueConstraint(
                fields=["campaign"],
                condition=Q(status__in=["running", "awaiting_decision", "rolling_out"]),
                name="experiment_one_active_per_campaign",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def guardrail_metrics(self) -> list[str]:
        out = []
        if self.guardrail_unsubscribe:
            out.append(Metric.UNSUBSCRIBE.value)
        if self.guardrail_complaint:
            out.append(Metric.COMPLAINT.value)
        return out

    @property
    def effective_sample_share(self) -> float:
        """Share of the audience in the test: ``sample_share`` with auto-winner, else all."""
        return self.sample_share if self.auto_winner else 1.0


class Variant(models.Model):
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="variants")
    key = models.SlugField(_("key"), max_length=20, help_text=_("Short code, e.g. A, B, holdout."))
    name = models.CharField(_("name"), max_length=200)
    weight = models.PositiveIntegerField(
        _("weight"), default=1, help_text=_("Relative share of the test sample.")
    )
    position = models.PositiveSmallIntegerField(_("position"), default=0)
    is_control = models.BooleanField(_("control"), default=False)
    is_holdout = models.BooleanField(
        _("holdout (receives nothing)"),
        default=False,
        help_text=_("Measures the lift of the campaign itself."),
    )
    # Overrides applied by activation to this variant's messages (blank = the campaign's
    # value); see experiments.hooks for how each one reaches what is sent.
    subject = models.CharField(
        _("subject"),
        max_length=300,
        blank=True,
        default="",
        help_text=_("Email subject (push title); template language, every locale."),
    )
    content = models.TextField(
        _("content"),
        blank=True,
        default="",
        help_text=_("Email HTML body, SMS body or push body, per the variant's channel."),
    )
    template = models.ForeignKey(
        "activation.Template",
        verbose_name=_("template"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="variants",
        help_text=_("Sent instead of the campaign's template (its own locales)."),
    )
    channel = models.CharField(
        _("channel"), max_length=16, choices=MessageChannel.choices, blank=True, default=""
    )
    send_time = models.TimeField(
        _("send time (contact's local time)"), null=True, blank=True, default=None
    )
    # Targeting experiments: the contacts this arm's strategy selects (ITT analysis covers the
    # whole randomised union; only the selected ones are sent the message).
    targeting_description = models.CharField(
        _("targeting strategy"), max_length=300, blank=True, default=""
    )

    class Meta:
        verbose_name = _("variant")
        verbose_name_plural = _("variants")
        ordering = ["experiment", "position", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "key"], name="variant_unique_key"),
            models.UniqueConstraint(
                fields=["experiment"],
                condition=Q(is_control=True),
                name="variant_one_control_per_experiment",
            ),
            models.UniqueConstraint(
                fields=["experiment"],
                condition=Q(is_holdout=True),
                name="variant_one_holdout_per_experiment",
            ),
            models.CheckConstraint(
                condition=~Q(is_control=True, is_holdout=True),
                name="variant_control_is_not_holdout",
            ),
            models.CheckConstraint(condition=Q(weight__gt=0), name="variant_weight_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.key} — {self.name}"


class Assignment(models.Model):
    """The variant a contact was given in an experiment. One row per (experiment, contact).

    ``targeted`` is False for contacts of a targeting experiment whose arm's strategy does not
    select them: they are analysed (intention to treat) but not sent anything.
    """

    # No database-level foreign keys: assigning a campaign's audience inserts up to millions of
    # rows in one statement, and PostgreSQL checks a foreign key row by row at commit (a
    # locking read of the contact, the variant and the experiment per row — more than the
    # insert itself). The statement only inserts ids of existing contacts and of the
    # experiment's own variants; deletions cascade through Django (on_delete), like the
    # outbox's. The single-column index on the experiment is the unique index's first column.
    experiment = models.ForeignKey(
        Experiment,
        on_delete=models.CASCADE,
        related_name="assignments",
        db_constraint=False,
        db_index=False,
    )
    contact = models.ForeignKey(
        Contact,
        on_delete=models.CASCADE,
        related_name="experiment_assignments",
        db_constraint=False,
    )
    variant = models.ForeignKey(
        Variant, on_delete=models.CASCADE, related_name="assignments", db_constraint=False
    )
    bucket = models.PositiveSmallIntegerField(_("bucket"))
    targeted = models.BooleanField(_("selected by the arm's targeting"), default=True)
    assigned_at = models.DateTimeField(_("assigned at"))
    # Outcomes after the assignment, kept up to date from contacts' events by
    # ``experiments.outcomes.outcomes_refresh`` (recomputed, never accumulated: refreshing twice is harmless).
    first_open_at = models.DateTimeField(_("first human open"), null=True, blank=True)
    first_click_at = models.DateTimeField(_("first click"), null=True, blank=True)
    first_conversion_at = models.DateTimeField(
        _("first conversion in the window"), null=True, blank=True
    )
    unsubscribed_at = models.DateTimeField(_("unsubscribed at"), null=True, blank=True)
    complained_at = models.DateTimeField(_("complained at"), null=True, blank=True)
    revenue = models.FloatField(_("revenue in the window"), default=0.0)

    class Meta:
        verbose_name = _("assignment")
        verbose_name_plural = _("assignments")
        constraints = [
            models.UniqueConstraint(
                fields=["experiment", "contact"], name="assignment_one_per_contact"
            ),
            models.CheckConstraint(
                condition=Q(bucket__gte=0, bucket__lt=10000), name="assignment_bucket_range"
            ),
        ]
        indexes = [
            # Results page: per-variant counts and the join to events, without the heap.
            models.Index(
                fields=["experiment", "variant", "assigned_at", "contact"],
                name="assignment_results_covering",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.contact_id} → {self.variant_id}"


class DecisionKind(models.TextChoices):
    WINNER = "winner", _("Winner sent to the remainder")
    FALLBACK_CONTROL = "fallback_control", _("No significant winner: control sent")
    ASK_MARKETER = "ask_marketer", _("No significant winner: marketer asked")
    MANUAL = "manual", _("Chosen by a marketer")
    BLOCKED_GUARDRAIL = "blocked_guardrail", _("Winner blocked by a guardrail")


class DecisionLog(models.Model):
    """One auto-winner (or manual) decision and the numbers it rested on. Append-only."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="decisions")
    decided_at = models.DateTimeField(_("decided at"))
    kind = models.CharField(_("decision"), max_length=20, choices=DecisionKind.choices)
    variant = models.ForeignKey(
        Variant,
        verbose_name=_("variant sent to the remainder"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    reason = models.TextField(_("reason"))
    numbers = models.JSONField(_("numbers"), default=dict)
    decided_by = models.CharField(_("decided by"), max_length=150, default="auto-winner")

    class Meta:
        verbose_name = _("decision")
        verbose_name_plural = _("decisions")
        ordering = ["-decided_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(decided_at__isnull=False) & ~Q(reason=""),
                name="decision_has_time_and_reason",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.experiment_id}: {self.kind} @ {self.decided_at:%Y-%m-%d %H:%M}"


__all__ = [
    "Assignment",
    "DecisionKind",
    "DecisionLog",
    "Experiment",
    "ExperimentKind",
    "ExperimentStatus",
    "Fallback",
    "GUARDRAIL_METRICS",
    "LOWER_IS_BETTER",
    "Metric",
    "PRIMARY_METRICS",
    "Variant",
]
