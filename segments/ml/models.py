"""ML clusters: models, their trained versions, clusters, assignments and monitoring rows.

Invariants the database enforces: version numbers are unique per model, at most one version of
a model is active (partial unique constraint), one assignment per (version, contact), one
cluster row per (version, stable id), one marketer's name per (model, stable id).
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from contacts.models import Contact
from segments.ml.catalogue import default_feature_names

NOISE_CLUSTER = 0  # DBSCAN noise: the "unassigned" group; real clusters are numbered from 1


class Algorithm(models.TextChoices):
    KMEANS = "kmeans", _("k-means (k-means++, 10 starts)")
    MINIBATCH = "minibatch", _("mini-batch k-means (large bases)")
    AGGLOMERATIVE = "agglomerative", _("hierarchical (Ward) on a sample, nearest centroid")
    DBSCAN = "dbscan", _("DBSCAN (density; noise is unassigned)")


class Imputer(models.TextChoices):
    KNN = "knn", _("k nearest neighbours")
    ITERATIVE = "iterative", _("iterative (model-based)")


class Reduction(models.TextChoices):
    NONE = "none", _("none")
    PCA = "pca", _("PCA keeping 95 % of the variance")
    AUTOENCODER = "autoencoder", _("autoencoder bottleneck")


class ClusterModel(models.Model):
    """A named clustering configuration; its trained versions live in ``ClusterModelVersion``."""

    title = models.CharField(
        _("name"),
        max_length=120,
        blank=True,
        default="",
        help_text=_("What people call this model, e.g. “Shopping profiles”."),
    )
    name = models.SlugField(
        _("identifier"),
        max_length=64,
        unique=True,
        help_text=_("Used in segment rules; derived from the name when left empty."),
    )
    description = models.TextField(_("description"), blank=True, default="")
    features = models.JSONField(
        _("features"),
        default=default_feature_names,
        help_text=_("Feature names from the catalogue (see docs/ml.md)."),
    )
    algorithm = models.CharField(
        _("algorithm"), max_length=16, choices=Algorithm.choices, default=Algorithm.KMEANS
    )
    k = models.PositiveSmallIntegerField(
        _("number of clusters"),
        null=True,
        blank=True,
        validators=[MinValueValidator(2), MaxValueValidator(50)],
        help_text=_("Empty: chosen automatically between the minimum and maximum below."),
    )
    auto_k_min = models.PositiveSmallIntegerField(_("automatic k: minimum"), default=2)
    auto_k_max = models.PositiveSmallIntegerField(_("automatic k: maximum"), default=10)
    imputer = models.CharField(
        _("missing values"), max_length=16, choices=Imputer.choices, default=Imputer.KNN
    )
    reduction = models.CharField(
        _("dimension reduction"), max_length=16, choices=Reduction.choices, default=Reduction.NONE
    )
    sample_size = models.PositiveIntegerField(
        _("training sample size"),
        default=200_000,
        help_text=_("Contacts the clusters are fitted on; every eligible contact is assigned."),
    )
    seed = models.IntegerField(_("random seed"), default=42)
    dbscan_eps = models.FloatField(_("DBSCAN radius (eps)"), default=1.5)
    dbscan_min_samples = models.PositiveIntegerField(_("DBSCAN minimum samples"), default=10)
    auto_retrain = models.BooleanField(
        _("retrain monthly or on drift"),
        default=True,
        help_text=_("The scheduled monitor retrains this model when it is due or drifts."),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("cluster model")
        verbose_name_plural = _("cluster models")
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(auto_k_min__gte=2) & Q(auto_k_max__gte=models.F("auto_k_min")),
                name="clustermodel_auto_k_range_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.title or self.name

    @property
    def active_version(self) -> ClusterModelVersion | None:
        return self.versions.filter(is_active=True).first()


class ClusterModelVersion(models.Model):
    """One successful training: parameters, metrics, explanations, the fitted pipeline."""

    model = models.ForeignKey(ClusterModel, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField(_("version"))
    is_active = models.BooleanField(_("active"), default=False)
    params = models.JSONField(_("parameters"), default=dict)
    feature_names = models.JSONField(_("features"), default=list)
    metrics = models.JSONField(_("metrics"), default=dict)
    auto_k = models.JSONField(_("automatic k scores"), default=list, blank=True)
    sample_size = models.PositiveIntegerField(_("training sample size"))
    contacts_assigned = models.PositiveIntegerField(_("contacts assigned"), default=0)
    base_stats = models.JSONField(_("base statistics per feature"), default=dict)
    representativeness = models.JSONField(_("sample representativeness"), default=dict)
    drift_reference = models.JSONField(_("drift reference"), default=dict)
    surrogate = models.JSONField(_("decision-tree surrogate"), default=dict)
    migration = models.JSONField(_("migration from the previous version"), default=dict)
    projection = models.JSONField(_("2-D projections of a sample"), default=dict)
    artefact = models.FileField(_("fitted pipeline (joblib)"), upload_to="ml/models/")
    trigger = models.CharField(_("trigger"), max_length=16, default="manual")
    reason = models.CharField(_("reason"), max_length=300, blank=True, default="")
    trained_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        verbose_name=_("trained by"),
    )
    trained_at = models.DateTimeField(_("trained at"))
    duration_ms = models.PositiveIntegerField(_("training duration (ms)"), default=0)

    class Meta:
        verbose_name = _("cluster model version")
        verbose_name_plural = _("cluster model versions")
        ordering = ["model", "-number"]
        constraints = [
            models.UniqueConstraint(
                fields=["model", "number"], name="clusterversion_unique_number"
            ),
            models.UniqueConstraint(
                fields=["model"], condition=Q(is_active=True), name="clusterversion_one_active"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model.name} v{self.number}"


class Cluster(models.Model):
    """A cluster of a version, identified by its stable id (kept across retrains)."""

    version = models.ForeignKey(
        ClusterModelVersion, on_delete=models.CASCADE, related_name="clusters"
    )
    stable_id = models.PositiveSmallIntegerField(_("cluster"))
    size = models.PositiveIntegerField(_("contacts"))
    share = models.FloatField(_("share of contacts"))
    training_share = models.FloatField(_("share in the training sample"), default=0.0)
    centroid = models.JSONField(_("centroid (scaled features)"), default=list)
    feature_means = models.JSONField(_("feature means"), default=dict)
    zscores = models.JSONField(_("z-scores vs. the base"), default=dict)

    class Meta:
        verbose_name = _("cluster")
        verbose_name_plural = _("clusters")
        ordering = ["version", "stable_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "stable_id"], name="cluster_unique_stable_id"
            )
        ]

    def __str__(self) -> str:
        return f"{self.version} #{self.stable_id}"


class ClusterLabel(models.Model):
    """The marketer's name for a stable cluster identity of a model (survives retrains)."""

    model = models.ForeignKey(ClusterModel, on_delete=models.CASCADE, related_name="labels")
    stable_id = models.PositiveSmallIntegerField(_("cluster"))
    name = models.CharField(_("name"), max_length=120)

    class Meta:
        verbose_name = _("cluster name")
        verbose_name_plural = _("cluster names")
        constraints = [
            models.UniqueConstraint(fields=["model", "stable_id"], name="clusterlabel_unique")
        ]

    def __str__(self) -> str:
        return self.name


class ClusterAssignment(models.Model):
    """Which cluster (stable id) each eligible contact got from a version. Written in bulk."""

    # No database-level FK checks on this bulk-rewritten, derived table (1M per-row RI checks
    # cost more than the whole training); deletions still cascade through the ORM. No
    # single-column FK indexes either: (contact, version) and (version, stable_id) below serve
    # both lookups, and every extra index is maintained for each of the 1M rows a version writes.
    version = models.ForeignKey(
        ClusterModelVersion,
        on_delete=models.CASCADE,
        related_name="assignments",
        db_constraint=False,
        db_index=False,
    )
    contact = models.ForeignKey(
        Contact, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    stable_id = models.PositiveSmallIntegerField(_("cluster"))

    class Meta:
        verbose_name = _("cluster assignment")
        verbose_name_plural = _("cluster assignments")
        constraints = [
            models.UniqueConstraint(
                fields=["contact", "version"], name="clusterassignment_one_per_version"
            )
        ]
        indexes = [
            models.Index(fields=["version", "stable_id"], name="clusterassign_by_version"),
        ]

    def __str__(self) -> str:
        return f"{self.contact_id} → {self.stable_id}"


class ContactMlFeatures(models.Model):
    """The latest feature snapshot of one eligible contact (see ``segments.ml.catalogue``).

    Rewritten by ``segments.ml.extraction`` before each training, assignment and drift check;
    rows of contacts who objected to profiling are deleted. NULL = no data (e.g. no purchase).
    """

    contact = models.OneToOneField(
        Contact,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="ml_features",
        db_constraint=False,  # derived and bulk-rewritten: see ClusterAssignment
    )
    computed_at = models.DateTimeField(_("computed at"))
    events_total = models.FloatField(null=True)
    purchases = models.FloatField(null=True)
    spend_total = models.FloatField(null=True)
    avg_basket = models.FloatField(null=True)
    days_since_last_event = models.FloatField(null=True)
    days_since_first_event = models.FloatField(null=True)
    days_since_last_purchase = models.FloatField(null=True)
    days_since_signup = models.FloatField(null=True)
    share_purchase = models.FloatField(null=True)
    share_email_open = models.FloatField(null=True)
    share_email_click = models.FloatField(null=True)
    share_page_view = models.FloatField(null=True)
    share_cart_updated = models.FloatField(null=True)
    share_app_open = models.FloatField(null=True)
    share_desktop = models.FloatField(null=True)
    share_mobile = models.FloatField(null=True)
    share_tablet = models.FloatField(null=True)
    share_channel_email = models.FloatField(null=True)
    share_channel_web = models.FloatField(null=True)
    share_channel_app = models.FloatField(null=True)
    purchase_weekend_share = models.FloatField(null=True)
    purchase_month_end_share = models.FloatField(null=True)
    age = models.FloatField(null=True)
    engagement_score = models.FloatField(null=True)
    mean_interpurchase_days = models.FloatField(null=True)

    class Meta:
        verbose_name = _("contact ML features")
        verbose_name_plural = _("contact ML features")

    def __str__(self) -> str:
        return gettext("ML features of contact %(id)s") % {"id": self.contact_id}


class ContactMlCounters(models.Model):
    """Running per-contact aggregates of every stored event, from which the feature snapshot is
    derived without reading the events again (``segments.ml.extraction``).

    Counts, sums, first and last timestamps only — everything an event adds to them folds in
    (``+``, ``LEAST``, ``GREATEST``). New events are folded in by event id (a watermark in
    ``segments.FeatureWatermark``); the table is rebuilt from the events when it is older than
    ``ML_COUNTERS_REBUILD_HOURS`` or was never built. The per-type, per-device and per-channel
    columns follow ``extraction.OTHER_EVENT_TYPES``, ``DEVICES`` and ``CHANNELS``.
    """

    contact = models.OneToOneField(
        Contact,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="ml_counters",
        db_constraint=False,  # derived and bulk-rewritten: see ClusterAssignment
    )
    n_events = models.BigIntegerField(default=0)
    n_purchases = models.BigIntegerField(default=0)
    spend = models.FloatField(default=0.0)
    n_amounts = models.BigIntegerField(default=0)  # purchases with a numeric amount
    first_event_at = models.DateTimeField(null=True)
    last_event_at = models.DateTimeField(null=True)
    last_purchase_at = models.DateTimeField(null=True)
    n_weekend_purchases = models.BigIntegerField(default=0)
    n_month_end_purchases = models.BigIntegerField(default=0)
    n_email_open = models.BigIntegerField(default=0)
    n_email_click = models.BigIntegerField(default=0)
    n_page_view = models.BigIntegerField(default=0)
    n_cart_updated = models.BigIntegerField(default=0)
    n_app_open = models.BigIntegerField(default=0)
    n_desktop = models.BigIntegerField(default=0)
    n_mobile = models.BigIntegerField(default=0)
    n_tablet = models.BigIntegerField(default=0)
    n_channel_email = models.BigIntegerField(default=0)
    n_channel_web = models.BigIntegerField(default=0)
    n_channel_app = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = _("contact ML counters")
        verbose_name_plural = _("contact ML counters")

    def __str__(self) -> str:
        return gettext("ML counters of contact %(id)s") % {"id": self.contact_id}


class TrainingRun(models.Model):
    """Every training attempt, successful or not, with why it ran and what it said."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")

    class Trigger(models.TextChoices):
        MANUAL = "manual", _("Manual")
        COMMAND = "command", _("Command line")
        SCHEDULE = "schedule", _("Monthly schedule")
        DRIFT = "drift", _("Drift")

    model = models.ForeignKey(ClusterModel, on_delete=models.CASCADE, related_name="runs")
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.RUNNING
    )
    trigger = models.CharField(_("trigger"), max_length=16, choices=Trigger.choices)
    reason = models.CharField(_("reason"), max_length=300, blank=True, default="")
    message = models.TextField(_("message"), blank=True, default="")
    version = models.ForeignKey(
        ClusterModelVersion, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    started_at = models.DateTimeField(_("started at"))
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("training run")
        verbose_name_plural = _("training runs")
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.model.name} @ {self.started_at:%Y-%m-%d %H:%M} ({self.status})"


class DriftReport(models.Model):
    """One drift check of an active version against today's features."""

    model = models.ForeignKey(ClusterModel, on_delete=models.CASCADE, related_name="drift_reports")
    version = models.ForeignKey(
        ClusterModelVersion, on_delete=models.CASCADE, related_name="drift_reports"
    )
    computed_at = models.DateTimeField(_("computed at"))
    features = models.JSONField(_("PSI and KS per feature"), default=dict)
    share_shift = models.JSONField(_("cluster share shift"), default=dict)
    max_psi = models.FloatField(_("largest PSI"))
    max_share_shift = models.FloatField(_("largest cluster share shift"))
    drifted = models.BooleanField(_("drifted"))
    action = models.CharField(_("action"), max_length=300, blank=True, default="")

    class Meta:
        verbose_name = _("drift report")
        verbose_name_plural = _("drift reports")
        ordering = ["-computed_at"]

    def __str__(self) -> str:
        return f"{self.model.name} @ {self.computed_at:%Y-%m-%d %H:%M}"
