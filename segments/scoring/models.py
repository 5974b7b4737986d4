"""Predictive scores: fitted model versions and one row of scores per contact.

Invariants the database enforces: one score row per contact (primary key = contact, a real
foreign key to the contact),
probabilities in [0, 1], expected values non-negative, ``*_top`` shares in (0, 1], at most one
*active* model version per kind (the one whose scores are stored).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from contacts.models import Contact


class ModelKind(models.TextChoices):
    CLV = "clv", _("Customer lifetime value (BG/NBD + Gamma-Gamma)")
    CHURN = "churn", _("Churn risk")
    PURCHASE = "purchase", _("Purchase propensity")


class ScoringModel(models.Model):
    """One fitted model version: parameters, quality figures and the charts of its page.

    ``parameters``: CLV → ``{"bgnbd": {r, alpha, a, b}, "gamma_gamma": {p, q, gamma},
    "log_likelihood", "customers", "time_unit", ...}``; propensity → chosen estimator and both
    candidates' held-out figures. ``report``: chart data (calibration, importances, distribution).
    """

    kind = models.CharField(_("kind"), max_length=16, choices=ModelKind.choices)
    version = models.PositiveIntegerField(_("version"))
    active = models.BooleanField(
        _("active"), default=False, help_text=_("Its scores are the ones stored on contacts.")
    )
    created_at = models.DateTimeField(_("fitted at"))
    reference_date = models.DateTimeField(
        _("reference date"),
        help_text=_("Calibration end (CLV) or the start of the held-out period (propensity)."),
    )
    horizon_days = models.PositiveIntegerField(_("horizon (days)"))
    training_rows = models.PositiveIntegerField(_("training rows"), default=0)
    scored_contacts = models.PositiveIntegerField(_("contacts scored"), default=0)
    auc = models.FloatField(_("AUC (held-out)"), null=True, blank=True)
    brier = models.FloatField(_("Brier score (held-out)"), null=True, blank=True)
    parameters = models.JSONField(_("parameters"), default=dict)
    report = models.JSONField(_("report"), default=dict)
    duration_seconds = models.FloatField(_("duration (s)"), default=0.0)

    class Meta:
        verbose_name = _("predictive model")
        verbose_name_plural = _("predictive models")
        ordering = ("-created_at", "-id")
        constraints = [
            models.UniqueConstraint(fields=["kind", "version"], name="scoring_model_kind_version"),
            models.UniqueConstraint(
                fields=["kind"], condition=Q(active=True), name="scoring_one_active_model_per_kind"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} v{self.version}"


def _unit_interval(field: str) -> Q:
    return Q(**{f"{field}__isnull": True}) | Q(**{f"{field}__gte": 0, f"{field}__lte": 1})


class ContactScore(models.Model):
    """The latest scores of one contact. A column is NULL when that score does not apply (no
    purchase yet for CLV, objected to profiling, not in the model's population).

    ``*_top`` is the contact's position from the top among scored contacts, as a share in
    (0, 1]: 0.2 means "in the top 20 %" (ties share the best position).
    """

    contact = models.OneToOneField(
        Contact, on_delete=models.CASCADE, primary_key=True, related_name="predictive_scores"
    )
    p_alive = models.FloatField(_("probability alive"), null=True, blank=True)
    expected_purchases = models.FloatField(_("expected purchases (horizon)"), null=True, blank=True)
    clv = models.FloatField(_("predicted CLV"), null=True, blank=True)
    churn = models.FloatField(_("churn risk"), null=True, blank=True)
    purchase_30d = models.FloatField(_("purchase propensity"), null=True, blank=True)
    p_alive_top = models.FloatField(null=True, blank=True, editable=False)
    clv_top = models.FloatField(null=True, blank=True, editable=False)
    churn_top = models.FloatField(null=True, blank=True, editable=False)
    purchase_30d_top = models.FloatField(null=True, blank=True, editable=False)
    # Every score row of a kind points at that kind's active model (scores_write sets them all
    # in one statement), so the model links are kept by the service and by Django's
    # on_delete, not by per-row database checks: a refresh rewrites ~all rows, and a foreign
    # key check plus an index entry per row cost more than the whole fit at 1M contacts.
    clv_model = models.ForeignKey(
        ScoringModel,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    churn_model = models.ForeignKey(
        ScoringModel,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    purchase_model = models.ForeignKey(
        ScoringModel,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_constraint=False,
        db_index=False,
    )
    updated_at = models.DateTimeField(_("updated at"))

    class Meta:
        verbose_name = _("contact scores")
        verbose_name_plural = _("contact scores")
        constraints = [
            *(
                models.CheckConstraint(condition=_unit_interval(f), name=f"scoring_{f}_in_0_1")
                for f in (
                    "p_alive",
                    "churn",
                    "purchase_30d",
                    "p_alive_top",
                    "clv_top",
                    "churn_top",
                    "purchase_30d_top",
                )
            ),
            models.CheckConstraint(
                condition=Q(clv__isnull=True) | Q(clv__gte=0), name="scoring_clv_non_negative"
            ),
            models.CheckConstraint(
                condition=Q(expected_purchases__isnull=True) | Q(expected_purchases__gte=0),
                name="scoring_expected_purchases_non_negative",
            ),
        ]
        # No index on score columns: rule conditions on scores select large shares of the
        # table (scanned), and an indexed column that changes makes every refresh update
        # non-HOT (one entry per index per row). With only the primary key indexed and free
        # room on each page (fillfactor, migration 0002), PostgreSQL rewrites rows in place.

    def __str__(self) -> str:
        return f"scores of contact {self.contact_id}"


# Score names usable in rules → (value column, top-share column, model kind).
SCORE_COLUMNS: dict[str, tuple[str, str, str]] = {
    "churn": ("churn", "churn_top", ModelKind.CHURN),
    "purchase_30d": ("purchase_30d", "purchase_30d_top", ModelKind.PURCHASE),
    "clv": ("clv", "clv_top", ModelKind.CLV),
    "p_alive": ("p_alive", "p_alive_top", ModelKind.CLV),
}
# Columns each model kind writes (all others are left untouched by its refresh).
KIND_COLUMNS: dict[str, tuple[str, ...]] = {
    ModelKind.CLV: ("p_alive", "expected_purchases", "clv", "p_alive_top", "clv_top", "clv_model"),
    ModelKind.CHURN: ("churn", "churn_top", "churn_model"),
    ModelKind.PURCHASE: ("purchase_30d", "purchase_30d_top", "purchase_model"),
}


class ScoringJob(models.Model):
    """A training of one model kind asked for from the admin: queued → running → succeeded
    (with the model version it produced) or failed (with the reason). At most one job per kind
    is queued or running at a time."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")

    kind = models.CharField(_("kind"), max_length=16, choices=ModelKind.choices)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.QUEUED
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("requested by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
    )
    requested_at = models.DateTimeField(_("requested at"))
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    message = models.TextField(_("message"), blank=True, default="")
    model = models.ForeignKey(
        ScoringModel,
        verbose_name=_("model version"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        verbose_name = _("training job")
        verbose_name_plural = _("training jobs")
        ordering = ("-requested_at", "-id")
        constraints = [
            models.UniqueConstraint(
                fields=["kind"],
                condition=Q(status__in=["queued", "running"]),
                name="scoring_one_pending_job_per_kind",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} — {self.get_status_display()}"
