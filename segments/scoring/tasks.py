"""Thin Celery tasks: scheduled refresh of the CLV and propensity scores and of the cohorts
page's cached tables (beat, ``ml`` queue)."""

from __future__ import annotations

import logging

from celery import shared_task
from django.utils import timezone

from segments.scoring.services import (
    ScoringError,
    clv_fit,
    cohort_tables_refresh,
    propensity_train,
)

log = logging.getLogger(__name__)


@shared_task(name="segments.scoring.tasks.refresh_clv")
def refresh_clv() -> dict | None:
    """Refit the CLV model and rescore; a refused fit keeps the previous scores (logged)."""
    try:
        return clv_fit(now=timezone.now()).as_json()
    except ScoringError as exc:
        log.warning("CLV refresh skipped: %s", exc)
        return None


@shared_task(name="segments.scoring.tasks.refresh_propensity")
def refresh_propensity() -> dict[str, float | None]:
    """Retrain churn and purchase models on the latest complete window and rescore."""
    results: dict[str, float | None] = {}
    for target in ("churn", "purchase"):
        try:
            results[target] = propensity_train(target=target, now=timezone.now()).auc
        except ScoringError as exc:
            log.warning("%s propensity refresh skipped: %s", target, exc)
            results[target] = None
    return results


@shared_task(name="segments.scoring.tasks.run_scoring_job")
def run_scoring_job(job_id: int) -> str:
    """Train what an admin button asked for. Safe to re-run: a job already started is skipped."""
    from segments.scoring.jobs import scoring_job_run

    return scoring_job_run(job_id=job_id).status


@shared_task(name="segments.scoring.tasks.refresh_cohorts")
def refresh_cohorts() -> list[str]:
    """Recompute the cohorts page's default tables into the shared cache. Safe to re-run: it
    only replaces the same cache entries."""
    return cohort_tables_refresh(now=timezone.now())
