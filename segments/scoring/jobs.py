"""Training jobs asked for from the admin: the CLV model and the churn / purchase propensity
models trained by a worker, with a state row the admin page shows while it runs."""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import formats, timezone
from django.utils.translation import gettext

from segments.scoring.models import ModelKind, ScoringJob, ScoringModel
from segments.scoring.services import ScoringError, clv_fit, propensity_train

log = logging.getLogger(__name__)

PENDING = (ScoringJob.Status.QUEUED, ScoringJob.Status.RUNNING)


def scoring_job_request(*, kind: str, user=None, now: datetime | None = None) -> ScoringJob:
    """Queue the training of ``kind`` (a ``ModelKind``) for a worker, after commit. If one is
    already queued or running for that kind, that job is returned and nothing is queued."""
    from segments.scoring.tasks import run_scoring_job

    if kind not in ModelKind.values:
        raise ValueError(f"unknown model kind {kind!r}")
    pending = ScoringJob.objects.filter(kind=kind, status__in=PENDING).first()
    if pending is not None:
        return pending
    try:
        with transaction.atomic():
            job = ScoringJob.objects.create(
                kind=kind, requested_by=user, requested_at=now or timezone.now()
            )
    except IntegrityError:  # a concurrent request queued it first
        return ScoringJob.objects.get(kind=kind, status__in=PENDING)
    transaction.on_commit(lambda: run_scoring_job.delay(job.pk))
    return job


def scoring_job_run(*, job_id: int, now: datetime | None = None) -> ScoringJob:
    """Run a queued job: train its model kind as of ``now`` (the scores of every eligible
    contact are rewritten by the training service) and record the outcome on the job. A job
    that is no longer queued (run twice by the broker) is left alone."""
    started = timezone.now()
    if not ScoringJob.objects.filter(pk=job_id, status=ScoringJob.Status.QUEUED).update(
        status=ScoringJob.Status.RUNNING, started_at=started
    ):
        return ScoringJob.objects.get(pk=job_id)
    job = ScoringJob.objects.get(pk=job_id)
    now = now or started
    try:
        model = _train(job.kind, now)
    except ScoringError as exc:
        _finish(job, ScoringJob.Status.FAILED, str(exc))
    except Exception as exc:  # noqa: BLE001 - recorded for the user, then re-raised for the logs
        _finish(job, ScoringJob.Status.FAILED, f"{type(exc).__name__}: {exc}"[:2000])
        raise
    else:
        _finish(job, ScoringJob.Status.SUCCEEDED, _summary(model), model=model)
    return job


def _train(kind: str, now: datetime) -> ScoringModel:
    if kind == ModelKind.CLV:
        return clv_fit(now=now).model
    target = "churn" if kind == ModelKind.CHURN else "purchase"
    return propensity_train(target=target, now=now)


def _summary(model: ScoringModel) -> str:
    text = gettext("%(model)s: %(n)s contacts scored.") % {
        "model": model,
        "n": formats.number_format(model.scored_contacts, force_grouping=True),
    }
    if model.auc is not None:
        text += " " + gettext("Held-out AUC %(auc).3f.") % {"auc": model.auc}
    return text


def _finish(job: ScoringJob, status: str, message: str, *, model: ScoringModel | None = None):
    job.status = status
    job.message = message
    job.model = model
    job.finished_at = timezone.now()
    job.save(update_fields=["status", "message", "model", "finished_at"])
