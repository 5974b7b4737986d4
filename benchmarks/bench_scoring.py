"""Scoring benchmark: CLV fit + scoring of every customer (target ≤ 60 s for 1,000,000 contacts),
broken down into the RFM aggregate, the two maximum-likelihood fits, the predictions and the
score write, and compared, in the same run, with a plain GROUP BY of the purchase events per
contact (the floor of any RFM query) and a ``count(*)`` of them.

Measured twice: the first fit of a population (every score row inserted) and a refresh (every
row rewritten), which is what the daily beat task does. Re-runnable on a kept cluster: the
scores and model versions of earlier runs are removed first. Also times one churn propensity
training (time split, calibrated models) for information."""

from __future__ import annotations

import time

from benchmarks.harness import Context, Result, timed


def _clv_result(ctx: Context, name: str, fit, seconds: float, comparison: str) -> None:
    from segments.scoring.models import ContactScore

    parts = fit.timings
    full_scale = ctx.contacts >= 1_000_000
    ctx.record(
        Result(
            benchmark=name,
            value=seconds,
            unit="s",
            target="≤ 60 s for 1M contacts",
            passed=(seconds <= 60) if full_scale else None,
            comparison=(
                f"{comparison}; parts: RFM SQL {parts['rfm_sql']:.1f} s, fits "
                f"{parts['fits']:.1f} s, scoring {parts['scoring']:.1f} s, writing "
                f"{parts['writing']:.1f} s"
            ),
            details={
                "customers": fit.customers,
                "scored": ContactScore.objects.filter(clv__isnull=False).count(),
                "parts_seconds": {k: round(v, 3) for k, v in parts.items()},
                "bgnbd": fit.bgnbd.as_dict(),
                "gamma_gamma": fit.gamma_gamma.as_dict(),
            },
        )
    )


def run(ctx: Context) -> None:
    from django.conf import settings
    from django.db import connection
    from django.utils import timezone

    from segments.scoring.services import clv_fit

    with connection.cursor() as cursor:
        # Start from a population never scored (earlier runs on a kept cluster).
        cursor.execute("TRUNCATE scoring_contactscore, scoring_scoringmodel CASCADE")
        cursor.execute("VACUUM ANALYZE scoring_contactscore")
    with connection.cursor() as cursor, timed() as scan:
        cursor.execute(
            "SELECT count(*) FROM contacts_event WHERE type = %s",
            [settings.CIBLE_PURCHASE_EVENT_TYPE],
        )
        purchases = cursor.fetchone()[0]
    with connection.cursor() as cursor, timed() as group_by:
        cursor.execute(
            "SELECT count(*) FROM (SELECT contact_id, count(*), max(occurred_at) "
            "FROM contacts_event WHERE type = %s GROUP BY contact_id) AS per_contact",
            [settings.CIBLE_PURCHASE_EVENT_TYPE],
        )
        buyers = cursor.fetchone()[0]
    comparison = (
        f"plain GROUP BY contact of the {purchases:,} purchase events ({buyers:,} buyers): "
        f"{group_by['seconds']:.1f} s, count(*) of them {scan['seconds']:.1f} s"
    )
    with timed() as first:
        fit = clv_fit(now=timezone.now())
    _clv_result(ctx, "CLV fit + scoring, first fit (fit_clv)", fit, first["seconds"], comparison)
    with timed() as again:
        fit = clv_fit(now=timezone.now())
    _clv_result(ctx, "CLV fit + scoring, refresh (fit_clv)", fit, again["seconds"], comparison)

    started = time.perf_counter()
    from segments.scoring.services import propensity_train
    from segments.services import features_refresh

    with timed() as refresh:
        features_refresh()
    model = propensity_train(target="churn", now=timezone.now())
    ctx.record(
        Result(
            benchmark="churn propensity training + scoring",
            value=time.perf_counter() - started - refresh["seconds"],
            unit="s",
            comparison=f"one full features refresh: {refresh['seconds']:.1f} s "
            f"(training computes two as-of refreshes)",
            details={
                "auc": model.auc,
                "brier": model.brier,
                "rows": model.training_rows,
                "estimator": model.parameters.get("estimator"),
            },
        )
    )
