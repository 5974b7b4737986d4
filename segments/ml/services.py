"""Everything that writes or decides for ML clusters: training, activation, assignment, drift.

Guarantees:
- A training either produces a complete new version (clusters, explanations, assignments of
  every eligible contact) that becomes the active one, or fails with a ``TrainingError`` whose
  message says why; the failed attempt is recorded (``TrainingRun``) and the previous active
  version keeps serving, its assignments untouched.
- Contacts who objected to profiling are neither used for training nor assigned.
- Assignments are written in bulk (PostgreSQL ``COPY``; batched inserts on SQLite) inside the
  transaction that activates the version, so segments never see a half-written version.
"""

from __future__ import annotations

import io
import logging
import time
from datetime import datetime, timedelta

import joblib
import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

from segments.binary_copy import copy_in_rows
from segments.ml import explain, quality
from segments.ml.catalogue import FEATURE_NAMES
from segments.ml.extraction import (
    FeatureMatrix,
    feature_matrix_read,
    features_snapshot_matrix,
)
from segments.ml.models import (
    NOISE_CLUSTER,
    Cluster,
    ClusterAssignment,
    ClusterLabel,
    ClusterModel,
    ClusterModelVersion,
    DriftReport,
    TrainingRun,
)
from segments.ml.pipeline import (
    ClusterPipeline,
    TrainingConfig,
    TrainingError,
    _subsample,
    check_trainable,
    compute_threads,
    log_transform,
    pipeline_fit,
)
from segments.ml.stability import match_stable_ids

logger = logging.getLogger(__name__)

SQLITE_INSERT_BATCH = 5_000


# --- configuration ----------------------------------------------------------------------------


def cluster_model_configure(*, model: ClusterModel, **changes: object) -> ClusterModel:
    """Apply configuration ``changes`` (algorithm, k, auto_k_min/max, seed, features, …) and save.

    Raises ``TrainingError`` for values the pipeline cannot use (unknown algorithm or feature,
    k below 2, an empty automatic-k range).
    """
    allowed = {
        "algorithm",
        "k",
        "auto_k_min",
        "auto_k_max",
        "seed",
        "features",
        "imputer",
        "reduction",
        "sample_size",
        "dbscan_eps",
        "dbscan_min_samples",
        "description",
        "auto_retrain",
    }
    unknown = set(changes) - allowed
    if unknown:
        raise TypeError(f"unknown cluster model fields: {', '.join(sorted(unknown))}")
    for key, value in changes.items():
        setattr(model, key, value)
    from segments.ml.models import Algorithm

    if model.algorithm not in Algorithm.values:
        raise TrainingError(
            _("Unknown algorithm “%(name)s” (choose among %(known)s).")
            % {"name": model.algorithm, "known": ", ".join(Algorithm.values)}
        )
    if model.k is not None and model.k < 2:
        raise TrainingError(_("The number of clusters must be at least 2."))
    if model.auto_k_min < 2 or model.auto_k_max < model.auto_k_min:
        raise TrainingError(
            _("The automatic k range must be MIN:MAX with 2 ≤ MIN ≤ MAX (got %(lo)s:%(hi)s).")
            % {"lo": model.auto_k_min, "hi": model.auto_k_max}
        )
    _check_feature_names(list(model.features))
    model.save()
    return model


def _check_feature_names(names: list[str], *, version: ClusterModelVersion | None = None) -> None:
    if not names:
        raise TrainingError(_("The model has no feature to cluster on."))
    unknown = [n for n in names if n not in FEATURE_NAMES]
    if unknown:
        if version is not None:
            raise TrainingError(
                _(
                    "Version %(version)s was trained on features that no longer exist: %(names)s. "
                    "Retrain the model with the current features."
                )
                % {"version": version.number, "names": ", ".join(unknown)}
            )
        raise TrainingError(
            _("Unknown feature(s): %(names)s. Known features: %(known)s.")
            % {"names": ", ".join(unknown), "known": ", ".join(FEATURE_NAMES)}
        )


def _config(model: ClusterModel) -> TrainingConfig:
    return TrainingConfig(
        features=list(model.features),
        algorithm=model.algorithm,
        k=model.k,
        k_range=(model.auto_k_min, model.auto_k_max),
        imputer=model.imputer,
        reduction=model.reduction,
        sample_size=model.sample_size,
        seed=model.seed,
        dbscan_eps=model.dbscan_eps,
        dbscan_min_samples=model.dbscan_min_samples,
    )


# --- training ---------------------------------------------------------------------------------


def cluster_model_train(
    *,
    model: ClusterModel,
    trigger: str = TrainingRun.Trigger.MANUAL,
    reason: str = "",
    user=None,
    now: datetime | None = None,
    run: TrainingRun | None = None,
) -> ClusterModelVersion:
    """Train ``model`` on every eligible contact's features as of ``now``, activate the new
    version and assign every eligible contact to a stable cluster id. ``run``: the queued
    run of ``cluster_model_train_request`` to carry on (else a new run is recorded).

    Raises ``TrainingError`` (clear message, recorded on a failed ``TrainingRun``) when the data
    cannot be clustered; the previous active version then keeps serving.
    """
    now = now or timezone.now()
    if run is None:
        run = TrainingRun.objects.create(
            model=model, trigger=trigger, reason=reason[:300], requested_by=user, started_at=now
        )
    else:
        TrainingRun.objects.filter(pk=run.pk).update(
            status=TrainingRun.Status.RUNNING, started_at=timezone.now()
        )
    started = time.perf_counter()
    try:
        with compute_threads():
            version = _train(model=model, user=user, now=now, trigger=trigger, reason=reason)
    except Exception as exc:  # recorded, then re-raised: the caller decides what to show
        TrainingRun.objects.filter(pk=run.pk).update(
            status=TrainingRun.Status.FAILED,
            message=str(exc) if isinstance(exc, TrainingError) else repr(exc),
            finished_at=timezone.now(),
        )
        raise
    version.duration_ms = int((time.perf_counter() - started) * 1000)
    version.save(update_fields=["duration_ms"])
    TrainingRun.objects.filter(pk=run.pk).update(
        status=TrainingRun.Status.SUCCEEDED,
        version=version,
        message=_metrics_line(version),
        finished_at=timezone.now(),
    )
    _after_activation(version)
    return version


def cluster_model_train_request(*, model: ClusterModel, user=None) -> TrainingRun:
    """Queue the training of ``model`` for a worker (after commit) and return its run, shown
    as *Queued* until the worker starts it. A run already queued or running is returned
    instead of queuing a second one."""
    from segments.ml.tasks import train_cluster_model

    pending = TrainingRun.objects.filter(
        model=model, status__in=[TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING]
    ).first()
    if pending is not None:
        return pending
    run = TrainingRun.objects.create(
        model=model,
        trigger=TrainingRun.Trigger.MANUAL,
        status=TrainingRun.Status.QUEUED,
        requested_by=user,
        started_at=timezone.now(),
    )
    user_id = user.pk if user is not None else None
    transaction.on_commit(
        lambda: train_cluster_model.delay(model.pk, TrainingRun.Trigger.MANUAL, user_id, run.pk)
    )
    return run


def _metrics_line(version: ClusterModelVersion) -> str:
    m = version.metrics
    parts = [f"k={m.get('k')}"]
    for key in ("silhouette", "davies_bouldin", "calinski_harabasz"):
        if m.get(key) is not None:
            parts.append(f"{key}={m[key]:.3f}")
    if version.surrogate:
        parts.append(f"tree_fidelity={version.surrogate.get('fidelity', 0):.3f}")
    if version.migration.get("stayed_share") is not None:
        parts.append(f"stayed={version.migration['stayed_share']:.3f}")
    return " ".join(parts)


def _train(
    *, model: ClusterModel, user, now: datetime, trigger: str, reason: str
) -> ClusterModelVersion:
    config = _config(model)
    clock, phases = [time.perf_counter()], {}
    _check_feature_names(config.features)
    if config.algorithm != "dbscan" and config.k is None and config.k_range[0] < 2:
        raise TrainingError(_("The number of clusters must be at least 2."))
    matrix = features_snapshot_matrix(now=now, names=config.features)
    phases["features SQL + read"] = _lap(clock)
    check_trainable(matrix.values, config.features, k=config.k, k_max=config.k_range[1])
    sample_rows = _subsample(len(matrix), config.sample_size, config.seed)
    fit = pipeline_fit(matrix.values[sample_rows], config)
    phases["fit on the sample"] = _lap(clock)
    pipeline = fit.pipeline
    internal = pipeline.predict_labels(matrix.values)
    phases["assign every contact"] = _lap(clock)
    names = config.features
    x_log = log_transform(matrix.values, names)
    base = explain.base_statistics(x_log, matrix.values, names)
    profiles = explain.cluster_profiles(x_log, matrix.values, internal, names, base)
    previous = model.active_version
    previous_centroids = (
        {c.stable_id: c.centroid for c in previous.clusters.all()} if previous else {}
    )
    used = max(
        Cluster.objects.filter(version__model=model).aggregate(m=Max("stable_id"))["m"] or 0,
        ClusterLabel.objects.filter(model=model).aggregate(m=Max("stable_id"))["m"] or 0,
    )
    pipeline.label_to_stable = match_stable_ids(
        new_centroids={label: p["centroid"] for label, p in profiles.items() if label >= 0},
        previous_centroids=previous_centroids,
        base=base,
        next_free_id=used + 1,
    )
    stable = _to_stable(pipeline, internal)
    sample_stable = _to_stable(pipeline, fit.sample_labels)
    surrogate = explain.surrogate_fit(matrix.values, stable, names, seed=config.seed)
    representativeness = quality.representativeness(matrix.values, sample_rows, names)
    reference = quality.drift_reference(matrix.values, names, seed=config.seed)
    projection = _projection(fit.sample_embedded, sample_stable, seed=config.seed)
    phases["profiles, matching, tree, quality, charts"] = _lap(clock)
    params = {
        "algorithm": config.algorithm,
        "k": config.k,
        "k_range": list(config.k_range),
        "imputer": config.imputer,
        "reduction": config.reduction,
        "sample_size": config.sample_size,
        "seed": config.seed,
        "dbscan_eps": config.dbscan_eps,
        "dbscan_min_samples": config.dbscan_min_samples,
    }
    with transaction.atomic():
        ClusterModel.objects.select_for_update().filter(pk=model.pk).first()
        number = (model.versions.aggregate(m=Max("number"))["m"] or 0) + 1
        version = ClusterModelVersion(
            model=model,
            number=number,
            params=params,
            feature_names=names,
            metrics=fit.metrics,
            auto_k=fit.auto_k,
            sample_size=len(sample_rows),
            contacts_assigned=len(matrix),
            base_stats=base,
            representativeness=representativeness,
            drift_reference=reference,
            surrogate=surrogate,
            projection=projection,
            trigger=trigger,
            reason=reason[:300],
            trained_by=user,
            trained_at=now,
        )
        buffer = io.BytesIO()
        joblib.dump(pipeline, buffer, compress=3)
        version.artefact.save(
            f"{model.name}-v{number}.joblib", ContentFile(buffer.getvalue()), save=False
        )
        version.save()
        n = max(len(matrix), 1)
        training_n = max(len(sample_stable), 1)
        Cluster.objects.bulk_create(
            Cluster(
                version=version,
                stable_id=_stable_of(pipeline, label),
                size=p["size"],
                share=p["size"] / n,
                training_share=float((sample_stable == _stable_of(pipeline, label)).sum())
                / training_n,
                centroid=p["centroid"],
                feature_means=p["feature_means"],
                zscores=p["zscores"],
            )
            for label, p in profiles.items()
        )
        assignments_write(version=version, contact_ids=matrix.contact_ids, stable_ids=stable)
        if previous is not None:
            version.migration = migration_matrix(previous=previous, current=version)
            version.save(update_fields=["migration"])
        _activate(version)
    phases["write and activate"] = _lap(clock)
    version.phase_seconds = phases  # not stored: for logs and the benchmark
    logger.info(
        "cluster model %s v%s trained: %s",
        model.name,
        version.number,
        ", ".join(f"{name} {seconds:.1f} s" for name, seconds in phases.items()),
    )
    return version


def _lap(clock: list[float]) -> float:
    """Seconds since the previous lap (``clock`` holds the last instant)."""
    now = time.perf_counter()
    elapsed, clock[0] = now - clock[0], now
    return elapsed


def _stable_of(pipeline: ClusterPipeline, label: int) -> int:
    return NOISE_CLUSTER if label < 0 else pipeline.label_to_stable[label]


def _to_stable(pipeline: ClusterPipeline, internal: np.ndarray) -> np.ndarray:
    lookup = np.zeros(pipeline.n_clusters + 1, dtype=np.int64)
    for label, stable in pipeline.label_to_stable.items():
        lookup[label] = stable
    return lookup[internal]


def _projection(z: np.ndarray, stable: np.ndarray, *, seed: int) -> dict:
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    rows = _subsample(len(z), settings.ML_PROJECTION_POINTS, seed)
    points = z[rows]
    out: dict = {"labels": [int(s) for s in stable[rows]]}
    if points.shape[1] >= 2:
        pca = PCA(n_components=2, random_state=seed).fit_transform(points)
        out["pca"] = np.round(pca, 3).tolist()
    tsne_n = min(settings.ML_TSNE_POINTS, len(points))
    if tsne_n >= 10 and points.shape[1] >= 2:
        perplexity = float(min(30, (tsne_n - 1) / 3))
        emb = TSNE(
            n_components=2, perplexity=perplexity, init="pca", max_iter=500, random_state=seed
        ).fit_transform(points[:tsne_n])
        out["tsne"] = np.round(emb, 3).tolist()
        out["tsne_labels"] = out["labels"][:tsne_n]
    return out


# --- assignments --------------------------------------------------------------------------------


def assignments_write(
    *, version: ClusterModelVersion, contact_ids: np.ndarray, stable_ids: np.ndarray
) -> int:
    """Replace the assignments of ``version`` by ``(contact_ids[i], stable_ids[i])``, in bulk.

    PostgreSQL: one binary ``COPY``; SQLite: batched multi-row inserts. Runs in the caller's transaction.
    """
    table = ClusterAssignment._meta.db_table
    ClusterAssignment.objects.filter(version=version)._raw_delete(ClusterAssignment.objects.db)
    if len(contact_ids) == 0:
        return 0
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            copy_in_rows(
                cursor.cursor,
                f"{table} (version_id, contact_id, stable_id)",
                [
                    (">i8", np.full(len(contact_ids), version.pk, dtype=np.int64)),
                    (">i8", contact_ids),
                    (">i2", stable_ids),
                ],
            )
        else:
            sql = f"INSERT INTO {table} (version_id, contact_id, stable_id) VALUES (%s, %s, %s)"  # noqa: S608 (fixed identifiers)
            rows = np.column_stack(
                [np.full(len(contact_ids), version.pk), contact_ids, stable_ids]
            ).tolist()
            for start in range(0, len(rows), SQLITE_INSERT_BATCH):
                cursor.executemany(sql, rows[start : start + SQLITE_INSERT_BATCH])
    return len(contact_ids)


def migration_matrix(*, previous: ClusterModelVersion, current: ClusterModelVersion) -> dict:
    """How many contacts moved between stable clusters from ``previous`` to ``current``.

    ``{"previous_version", "matrix": {from_id: {to_id: n}}, "common", "stayed",
    "stayed_share"}``; contacts assigned by only one of the versions are left out. One SQL
    GROUP BY over the two versions' assignments.
    """
    table = ClusterAssignment._meta.db_table
    sql = (
        f"SELECT a.stable_id, b.stable_id, count(*) FROM {table} a "  # noqa: S608 (fixed identifiers)
        f"JOIN {table} b ON b.contact_id = a.contact_id AND b.version_id = %s "
        "WHERE a.version_id = %s GROUP BY a.stable_id, b.stable_id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [current.pk, previous.pk])
        rows = cursor.fetchall()
    matrix: dict[str, dict[str, int]] = {}
    common = stayed = 0
    for old, new, count in rows:
        matrix.setdefault(str(old), {})[str(new)] = int(count)
        common += count
        if old == new:
            stayed += count
    return {
        "previous_version": previous.number,
        "matrix": matrix,
        "common": common,
        "stayed": stayed,
        "stayed_share": stayed / common if common else None,
    }


def _activate(version: ClusterModelVersion) -> None:
    """Make ``version`` the only active version of its model; keep assignments of the active and
    the previously active version only (the latter for the migration matrix and rollback)."""
    previous = (
        ClusterModelVersion.objects.filter(model_id=version.model_id, is_active=True)
        .exclude(pk=version.pk)
        .first()
    )
    ClusterModelVersion.objects.filter(model_id=version.model_id, is_active=True).update(
        is_active=False
    )
    ClusterModelVersion.objects.filter(pk=version.pk).update(is_active=True)
    version.is_active = True
    keep = [version.pk] + ([previous.pk] if previous else [])
    stale = ClusterAssignment.objects.filter(version__model_id=version.model_id).exclude(
        version_id__in=keep
    )
    stale._raw_delete(stale.db)


def _dependent_segment_ids(model: ClusterModel) -> list[int]:
    try:
        from segments.models import Segment
    except ImportError:  # segments' rule segments not installed
        return []
    needle = f'"model": "{model.name}"'
    return [
        pk
        for pk, rule in Segment.objects.filter(is_active=True).values_list("pk", "rule")
        if needle in _json_text(rule)
    ]


def _json_text(rule: object) -> str:
    import json

    return json.dumps(rule, sort_keys=True)


def _after_activation(version: ClusterModelVersion) -> None:
    """Recompute the rule segments using this model's clusters; log to MLflow when configured."""
    segment_ids = _dependent_segment_ids(version.model)
    if segment_ids:
        from segments.services import segment_compute_request

        segment_compute_request(segment_ids=segment_ids)
    if settings.ML_MLFLOW_TRACKING_URI:
        from segments.ml.tracking import mlflow_log_version

        transaction.on_commit(lambda: mlflow_log_version(version))


def cluster_version_activate(*, version: ClusterModelVersion) -> ClusterModelVersion:
    """Make an existing version the active one (e.g. roll back), re-assigning every eligible
    contact with that version's pipeline when its assignments were pruned.

    Raises ``TrainingError`` when the version cannot assign today's contacts (a feature it was
    trained on no longer exists); the current active version then keeps serving.
    """
    with transaction.atomic():
        if not ClusterAssignment.objects.filter(version=version).exists():
            _assign_with(version, now=timezone.now(), refresh=True)
        _activate(version)
    _after_activation(version)
    return version


def pipeline_load(version: ClusterModelVersion) -> ClusterPipeline:
    """The fitted pipeline of ``version`` (from its joblib artefact)."""
    with version.artefact.open("rb") as fh:
        return joblib.load(fh)


def _assign_with(
    version: ClusterModelVersion, *, now: datetime, refresh: bool
) -> tuple[FeatureMatrix, np.ndarray]:
    _check_feature_names(list(version.feature_names), version=version)
    names = list(version.feature_names)
    matrix = (
        features_snapshot_matrix(now=now, names=names)
        if refresh
        else feature_matrix_read(names=names)
    )
    pipeline = pipeline_load(version)
    with compute_threads():
        stable = pipeline.predict(matrix.values) if len(matrix) else np.zeros(0, np.int64)
    assignments_write(version=version, contact_ids=matrix.contact_ids, stable_ids=stable)
    ClusterModelVersion.objects.filter(pk=version.pk).update(contacts_assigned=len(matrix))
    return matrix, stable


def cluster_assignments_refresh(*, model: ClusterModel, now: datetime | None = None) -> int:
    """Re-assign every eligible contact (new contacts, objections) with the active version.

    Returns the number of contacts assigned. Raises ``TrainingError`` when the active version
    cannot run on today's features; its previous assignments are then left as they were.
    """
    version = model.active_version
    if version is None:
        raise TrainingError(_("Model “%(name)s” has no active version yet.") % {"name": model.name})
    with transaction.atomic():
        matrix, _stable = _assign_with(version, now=now or timezone.now(), refresh=True)
    _after_activation(version)
    return len(matrix)


# --- explanations → segments ---------------------------------------------------------------------


def cluster_label_set(*, model: ClusterModel, stable_id: int, name: str) -> ClusterLabel:
    """Name (or rename) the stable cluster ``stable_id`` of ``model``; the name survives retrains."""
    label, _created = ClusterLabel.objects.update_or_create(
        model=model, stable_id=stable_id, defaults={"name": name.strip()}
    )
    return label


def segment_from_surrogate_leaf(
    *, version: ClusterModelVersion, leaf: int, name: str | None = None
):
    """Create an editable rule segment from one leaf of the version's decision-tree surrogate:
    the leaf's path becomes an ``all`` group of ``ml_feature`` conditions.

    Returns the ``segments.Segment``, whose computation is requested (as for a segment saved
    in the admin); raises ``KeyError`` for an unknown leaf.
    """
    from segments.services import segment_compute_request, segment_create

    found = next((lf for lf in version.surrogate.get("leaves", []) if lf["leaf"] == leaf), None)
    if found is None:
        raise KeyError(leaf)
    cluster_name = (
        ClusterLabel.objects.filter(model=version.model, stable_id=found["cluster"])
        .values_list("name", flat=True)
        .first()
    ) or _("cluster %(id)s") % {"id": found["cluster"]}
    base_name = name or _("%(model)s v%(version)s — %(cluster)s (tree leaf %(leaf)s)") % {
        "model": version.model.name,
        "version": version.number,
        "cluster": cluster_name,
        "leaf": leaf,
    }
    from segments.models import Segment

    name_taken = Segment.objects.filter
    candidate, n = base_name[:120], 2
    while name_taken(name=candidate).exists():  # a second click: "… (2)", "… (3)"
        suffix = f" ({n})"
        candidate, n = base_name[: 120 - len(suffix)] + suffix, n + 1
    segment = segment_create(
        name=candidate,
        rule=explain.leaf_rule(found["conditions"]),
        description=_(
            "From the decision tree explaining model %(model)s v%(version)s: %(path)s. "
            "%(purity).0f %% of these contacts are in the cluster."
        )
        % {
            "model": version.model.name,
            "version": version.number,
            "path": explain.describe_conditions(found["conditions"]),
            "purity": 100 * found["purity"],
        },
    )
    segment_compute_request(segment_ids=[segment.pk])
    return segment


# --- drift and scheduled retraining ------------------------------------------------------------


def cluster_drift_check(*, model: ClusterModel, now: datetime | None = None) -> DriftReport:
    """Compare today's features and cluster shares with the active version's training data.

    Refreshes the feature snapshot, computes PSI and KS per feature and the share shift per
    cluster, and records a ``DriftReport`` (``drifted`` when a PSI exceeds
    ``ML_DRIFT_PSI_THRESHOLD`` or a share moves more than ``ML_DRIFT_SHARE_THRESHOLD``).
    """
    now = now or timezone.now()
    version = model.active_version
    if version is None:
        raise TrainingError(_("Model “%(name)s” has no active version yet.") % {"name": model.name})
    _check_feature_names(list(version.feature_names), version=version)
    matrix = features_snapshot_matrix(now=now, names=list(version.feature_names))
    per_feature = quality.feature_drift(matrix.values, matrix.names, version.drift_reference)
    with compute_threads():
        stable_now = pipeline_load(version).predict(matrix.values)
    shares = {str(c.stable_id): c.share for c in version.clusters.all()}
    shift = quality.share_shift(shares, stable_now)
    max_psi = max((f["psi"] for f in per_feature.values()), default=0.0)
    max_shift = max((abs(s["shift"]) for s in shift.values()), default=0.0)
    drifted = (
        max_psi > settings.ML_DRIFT_PSI_THRESHOLD or max_shift > settings.ML_DRIFT_SHARE_THRESHOLD
    )
    return DriftReport.objects.create(
        model=model,
        version=version,
        computed_at=now,
        features=per_feature,
        share_shift=shift,
        max_psi=max_psi,
        max_share_shift=max_shift,
        drifted=drifted,
    )


def drift_reason(report: DriftReport) -> str:
    """Why a report calls for retraining, in words (empty when it does not)."""
    if not report.drifted:
        return ""
    reasons = []
    worst = max(report.features.items(), key=lambda kv: kv[1]["psi"], default=None)
    if worst and worst[1]["psi"] > settings.ML_DRIFT_PSI_THRESHOLD:
        reasons.append(
            _("PSI %(psi).2f on %(feature)s") % {"psi": worst[1]["psi"], "feature": worst[0]}
        )
    moved = max(report.share_shift.items(), key=lambda kv: abs(kv[1]["shift"]), default=None)
    if moved and abs(moved[1]["shift"]) > settings.ML_DRIFT_SHARE_THRESHOLD:
        reasons.append(
            _("cluster %(id)s share moved by %(points).1f points")
            % {"id": moved[0], "points": 100 * moved[1]["shift"]}
        )
    return _("drift: ") + "; ".join(reasons)


def cluster_models_monitor(*, now: datetime | None = None) -> list[str]:
    """The scheduled monitor: for each model set to retrain automatically, retrain when the
    active version is older than ``ML_RETRAIN_EVERY_DAYS`` or has drifted (the reason is
    recorded on the run and the drift report), otherwise refresh its assignments.

    Returns one line per model saying what was done. A model's failure does not stop the others.
    """
    now = now or timezone.now()
    lines = []
    for model in ClusterModel.objects.filter(auto_retrain=True).order_by("name"):
        version = model.active_version
        try:
            if version is None:
                continue
            due = version.trained_at + timedelta(days=settings.ML_RETRAIN_EVERY_DAYS)
            if now >= due:
                reason = _("monthly: last trained on %(date)s") % {
                    "date": version.trained_at.date().isoformat()
                }
                new = cluster_model_train(
                    model=model, trigger=TrainingRun.Trigger.SCHEDULE, reason=reason, now=now
                )
                lines.append(f"{model.name}: {reason} → v{new.number}")
                continue
            report = cluster_drift_check(model=model, now=now)
            if report.drifted:
                reason = drift_reason(report)
                new = cluster_model_train(
                    model=model, trigger=TrainingRun.Trigger.DRIFT, reason=reason, now=now
                )
                report.action = _("retrained: v%(n)s") % {"n": new.number}
                report.save(update_fields=["action"])
                lines.append(f"{model.name}: {reason} → v{new.number}")
            else:
                assigned = cluster_assignments_refresh(model=model, now=now)
                report.action = _("no drift; %(n)s contacts re-assigned") % {"n": assigned}
                report.save(update_fields=["action"])
                lines.append(f"{model.name}: {report.action}")
        except TrainingError as exc:
            logger.warning("cluster model %s: %s", model.name, exc)
            lines.append(f"{model.name}: {exc}")
    return lines


def cluster_model_get_or_create(*, name: str) -> ClusterModel:
    """The model called ``name``, created with the default configuration when missing."""
    model, _created = ClusterModel.objects.get_or_create(name=name)
    return model


__all__ = [
    "assignments_write",
    "cluster_assignments_refresh",
    "cluster_drift_check",
    "cluster_label_set",
    "cluster_model_configure",
    "cluster_model_get_or_create",
    "cluster_model_train",
    "cluster_models_monitor",
    "cluster_version_activate",
    "drift_reason",
    "migration_matrix",
    "pipeline_load",
    "segment_from_surrogate_leaf",
]
