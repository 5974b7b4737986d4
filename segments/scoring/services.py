"""Everything in scoring that writes or decides: CLV fits, propensity training, score storage.

A fit or training that fails raises :class:`ScoringError` with a message for a marketer and
writes nothing: scores are only replaced, in one transaction, by a model that succeeded.
Contacts who objected to profiling (``consent.selectors.without_profiling_objection``) are
neither trained on nor scored; their stored scores are cleared by the next refresh.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max, Q, QuerySet
from django.utils.translation import gettext_lazy as _

from consent.selectors import without_profiling_objection
from contacts.models import Contact
from segments.binary_copy import copy_in_rows
from segments.scoring import btyd
from segments.scoring.models import KIND_COLUMNS, ContactScore, ModelKind, ScoringModel
from segments.scoring.sql import RfmSummary, purchase_bounds, rfm_summary

TIME_UNIT_DAYS = {"day": 1.0, "week": 7.0}
DAYS_PER_MONTH = 365.25 / 12
COPY_CHUNK_ROWS = 100_000


class ScoringError(ValueError):
    """A model could not be fitted or trained; nothing was written. The message says why."""


def scoring_population() -> QuerySet[Contact]:
    """Contacts that may be profiled (no objection to profiling, not erased)."""
    return without_profiling_objection(Contact.objects.all())


# --- score storage ------------------------------------------------------------------------


def top_share(values: np.ndarray) -> np.ndarray:
    """Each value's position from the top as a share in (0, 1] (ties share the best one)."""
    n = len(values)
    if n == 0:
        return np.zeros(0)
    ordered = np.sort(values)
    strictly_greater = n - np.searchsorted(ordered, values, side="right")
    return (strictly_greater + 1) / n


def scores_write(
    *,
    model: ScoringModel,
    contact_ids: np.ndarray,
    columns: dict[str, np.ndarray],
    now: datetime,
) -> int:
    """Store ``columns`` (score column → values aligned with ``contact_ids``) for ``model``'s
    kind, make ``model`` the active one of its kind, and clear that kind's columns on every
    other row (contacts no longer scored). One transaction; returns the rows written.

    Only the kind's own columns are touched: a CLV refresh never changes churn scores.
    """
    kind_columns = KIND_COLUMNS[model.kind]
    model_column = next(c for c in kind_columns if c.endswith("_model"))
    value_columns = [c for c in kind_columns if c != model_column]
    if set(columns) != set(value_columns):
        raise ValueError(f"expected columns {value_columns}, got {sorted(columns)}")
    frame = pd.DataFrame({"contact_id": np.asarray(contact_ids, dtype=np.int64)})
    for name in value_columns:
        frame[name] = np.asarray(columns[name], dtype=np.float64)
    db_columns = ["contact_id", *value_columns, f"{model_column}_id", "updated_at"]
    with transaction.atomic():
        ScoringModel.objects.filter(kind=model.kind, active=True).exclude(pk=model.pk).update(
            active=False
        )
        ScoringModel.objects.filter(pk=model.pk).update(active=True)
        if connection.vendor == "postgresql":
            _upsert_postgres(frame, db_columns, model_id=model.pk, now=now)
        else:
            _upsert_sqlite(frame, db_columns, model_id=model.pk, now=now)
        stale = Q(**{f"{model_column}__isnull": False}) & ~Q(**{f"{model_column}_id": model.pk})
        stale |= Q(**{f"{model_column}__isnull": True}) & Q(
            **{f"{value_columns[0]}__isnull": False}
        )
        ContactScore.objects.filter(stale).update(
            **{c: None for c in value_columns}, **{model_column: None}, updated_at=now
        )
    model.active = True
    return len(frame)


def _upsert_sql(db_columns: list[str], source: str) -> str:
    updates = ", ".join(f"{c} = excluded.{c}" for c in db_columns[1:])
    return (
        f"INSERT INTO scoring_contactscore ({', '.join(db_columns)}) {source} "  # noqa: S608
        f"ON CONFLICT (contact_id) DO UPDATE SET {updates}"
    )


def _upsert_postgres(frame: pd.DataFrame, db_columns: list[str], *, model_id: int, now) -> None:
    value_columns = db_columns[1:-2]
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE scoring_incoming (contact_id bigint, "
            + ", ".join(f"{c} float8" for c in value_columns)
            + ") ON COMMIT DROP"
        )
        ids = frame["contact_id"].to_numpy(dtype=np.int64)
        values = [frame[c].to_numpy(dtype=np.float64) for c in value_columns]
        copy_in_rows(
            cursor,
            f"scoring_incoming (contact_id, {', '.join(value_columns)})",
            [(">i8", ids)] + [(">f8", v) for v in values],
        )
        # NaN (a score that does not apply) is stored as NULL, as on SQLite.
        nulled = ", ".join(f"NULLIF({c}, 'NaN'::float8)" for c in value_columns)
        source = (
            f"SELECT contact_id, {nulled}, %s, %s FROM scoring_incoming "  # noqa: S608
            "WHERE contact_id IN (SELECT id FROM contacts_contact)"
        )
        cursor.execute(_upsert_sql(db_columns, source), [model_id, now])
        cursor.execute("DROP TABLE scoring_incoming")


def _upsert_sqlite(frame: pd.DataFrame, db_columns: list[str], *, model_id: int, now) -> None:
    placeholders = ", ".join(["%s"] * len(db_columns))
    sql = _upsert_sql(db_columns, f"VALUES ({placeholders})")
    stamp = connection.ops.adapt_datetimefield_value(now)
    clean = frame.astype(object).where(frame.notna(), None)
    with connection.cursor() as cursor:
        for start in range(0, len(clean), COPY_CHUNK_ROWS):
            chunk = clean.iloc[start : start + COPY_CHUNK_ROWS]
            rows = [(*row, model_id, stamp) for row in chunk.itertuples(index=False, name=None)]
            cursor.executemany(sql, rows)


def _next_version(kind: str) -> int:
    latest = ScoringModel.objects.filter(kind=kind).aggregate(v=Max("version"))["v"]
    return (latest or 0) + 1


# --- CLV ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClvFit:
    """What ``clv_fit`` found, in the chosen time unit (also stored on the model)."""

    model: ScoringModel
    bgnbd: btyd.BgNbdParams
    gamma_gamma: btyd.GammaGammaParams
    log_likelihood: float
    customers: int
    # Seconds spent in each phase: rfm_sql, fits, scoring (predictions, holdout check,
    # distributions), writing (model row + score upsert + commit).
    timings: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict:
        """The ``fit_clv --json`` contract."""
        return {
            "bgnbd": {k: float(v) for k, v in self.bgnbd.as_dict().items()},
            "gamma_gamma": {k: float(v) for k, v in self.gamma_gamma.as_dict().items()},
            "log_likelihood": float(self.log_likelihood),
            "customers": int(self.customers),
        }


@dataclass(frozen=True)
class ClvPredictions:
    p_alive: np.ndarray
    expected_purchases: np.ndarray
    clv: np.ndarray
    spend: np.ndarray


def clv_predict(
    *,
    bgnbd: btyd.BgNbdParams,
    gamma_gamma: btyd.GammaGammaParams,
    summary: RfmSummary,
    unit_days: float,
    horizon_days: int,
    monthly_discount: float,
) -> ClvPredictions:
    """Per-customer P(alive), expected purchases and discounted CLV over ``horizon_days``."""
    x, t_x, T = summary.x, summary.t_x / unit_days, summary.T / unit_days
    has_spend = np.isfinite(summary.m) & (summary.m > 0) & (summary.x > 0)
    spend = btyd.gamma_gamma_expected_spend(
        gamma_gamma, np.where(has_spend, x, 0.0), np.where(has_spend, summary.m, 0.0)
    )
    months = max(1, round(horizon_days / DAYS_PER_MONTH))
    with np.errstate(all="ignore"):
        p_alive = btyd.bgnbd_probability_alive(bgnbd, x, t_x, T)
        expected = btyd.bgnbd_expected_purchases(bgnbd, horizon_days / unit_days, x, t_x, T)
        clv = btyd.discounted_clv(
            bgnbd,
            spend,
            x,
            t_x,
            T,
            months=months,
            month_length=DAYS_PER_MONTH / unit_days,
            monthly_discount=monthly_discount,
        )
    if not (np.all(np.isfinite(expected)) and np.all(np.isfinite(clv))):
        raise ScoringError(
            _("The fitted CLV model gives non-finite predictions; scores were not changed.")
        )
    return ClvPredictions(
        p_alive=np.clip(p_alive, 0.0, 1.0),
        expected_purchases=np.maximum(expected, 0.0),
        clv=np.maximum(clv, 0.0),
        spend=spend,
    )


def clv_fit(
    *,
    now: datetime,
    calibration_end: datetime | date | None = None,
    time_unit: str = "day",
    horizon_days: int | None = None,
) -> ClvFit:
    """Fit BG/NBD + Gamma-Gamma on purchases before ``calibration_end`` (default ``now``),
    store the model version (parameters, holdout check, CLV distribution) and score every
    eligible customer on their whole history up to ``now``. A ``date`` as calibration end
    includes that whole (UTC) day's purchases while T counts to that date (lifetimes'
    ``observation_period_end``, Fader-Hardie-Lee's CDNOW calibration); a ``datetime`` is an
    instant: purchases before it.

    Raises ScoringError (nothing written) on: an unknown time unit, a calibration end in the
    future or before the first purchase, fewer than ``SCORING_CLV_MIN_CUSTOMERS`` customers,
    no repeat buyer, a fit that does not converge.
    """
    started = time.perf_counter()
    if time_unit not in TIME_UNIT_DAYS:
        raise ScoringError(
            _("Unknown time unit “%(unit)s”; use day or week.") % {"unit": time_unit}
        )
    unit_days = TIME_UNIT_DAYS[time_unit]
    horizon_days = int(horizon_days or settings.SCORING_CLV_HORIZON_DAYS)
    calibration_end = calibration_end or now
    purchases_before = None
    if not isinstance(calibration_end, datetime):  # a date: its whole day is calibration
        calibration_end = datetime.combine(calibration_end, datetime.min.time(), tzinfo=UTC)
        purchases_before = min(calibration_end + timedelta(days=1), now)
    if calibration_end > now:
        raise ScoringError(
            _("The calibration end %(date)s is in the future.")
            % {"date": calibration_end.isoformat()}
        )
    first, _last = purchase_bounds()
    if first is None:
        raise ScoringError(_("There are no purchases yet: the CLV model needs purchase history."))
    if calibration_end <= first:
        raise ScoringError(
            _(
                "The calibration end %(date)s is before the first purchase (%(first)s): "
                "there is no history to fit."
            )
            % {"date": calibration_end.isoformat(), "first": first.isoformat()}
        )
    population = scoring_population()
    timings: dict[str, float] = {}
    phase = time.perf_counter()
    summary = rfm_summary(
        eligible=population,
        calibration_end=calibration_end,
        holdout_end=now,
        purchases_before=purchases_before,
    )
    timings["rfm_sql"] = time.perf_counter() - phase
    minimum = settings.SCORING_CLV_MIN_CUSTOMERS
    if len(summary) < minimum:
        raise ScoringError(
            _(
                "Too little history: %(n)d customers bought before %(date)s, at least %(min)d "
                "are needed for a trustworthy CLV model."
            )
            % {"n": len(summary), "date": calibration_end.date().isoformat(), "min": minimum}
        )
    repeat = int((summary.x > 0).sum())
    if repeat == 0:
        raise ScoringError(
            _("No customer has bought on two different days: the CLV model needs repeat buyers.")
        )
    phase = time.perf_counter()
    try:
        purchases = btyd.bgnbd_fit(summary.x, summary.t_x / unit_days, summary.T / unit_days)
        spend = btyd.gamma_gamma_fit(summary.x, summary.m)
    except btyd.FitError as exc:
        raise ScoringError(
            _("The CLV model could not be fitted: %(reason)s Scores were not changed.")
            % {"reason": exc}
        ) from exc
    timings["fits"] = time.perf_counter() - phase
    phase = time.perf_counter()
    bgnbd, gamma_gamma = purchases.params, spend.params
    log_likelihood = purchases.log_likelihood + spend.log_likelihood
    monthly_discount = settings.SCORING_CLV_MONTHLY_DISCOUNT
    holdout = _holdout_check(
        bgnbd, summary, unit_days, calibration_end=purchases_before or calibration_end, now=now
    )
    if (purchases_before or calibration_end) < now:
        timings["scoring"] = time.perf_counter() - phase
        phase = time.perf_counter()
        current = rfm_summary(eligible=population, calibration_end=now)
        timings["rfm_sql"] += time.perf_counter() - phase
        phase = time.perf_counter()
    else:
        current = summary
    predictions = clv_predict(
        bgnbd=bgnbd,
        gamma_gamma=gamma_gamma,
        summary=current,
        unit_days=unit_days,
        horizon_days=horizon_days,
        monthly_discount=monthly_discount,
    )
    parameters = {
        "bgnbd": bgnbd.as_dict(),
        "gamma_gamma": gamma_gamma.as_dict(),
        "log_likelihood": log_likelihood,
        "bgnbd_log_likelihood": purchases.log_likelihood,
        "gamma_gamma_log_likelihood": spend.log_likelihood,
        "bgnbd_log_se": dict(zip(("r", "alpha", "a", "b"), purchases.log_se, strict=True)),
        "gamma_gamma_log_se": dict(zip(("p", "q", "gamma"), spend.log_se, strict=True)),
        "customers": len(summary),
        "repeat_buyers": repeat,
        "time_unit": time_unit,
        "monthly_discount": monthly_discount,
    }
    report = {
        "holdout": holdout,
        "clv_distribution": _distribution(predictions.clv),
        "p_alive_distribution": _distribution(predictions.p_alive, bins=10, log=False),
    }
    timings["scoring"] = timings.get("scoring", 0.0) + time.perf_counter() - phase
    phase = time.perf_counter()
    with transaction.atomic():
        model = ScoringModel.objects.create(
            kind=ModelKind.CLV,
            version=_next_version(ModelKind.CLV),
            created_at=now,
            reference_date=calibration_end,
            horizon_days=horizon_days,
            training_rows=len(summary),
            scored_contacts=len(current),
            parameters=_json_safe(parameters),
            report=_json_safe(report),
        )
        scores_write(
            model=model,
            contact_ids=current.contact_id,
            columns={
                "p_alive": predictions.p_alive,
                "expected_purchases": predictions.expected_purchases,
                "clv": predictions.clv,
                "p_alive_top": top_share(predictions.p_alive),
                "clv_top": top_share(predictions.clv),
            },
            now=now,
        )
        model.duration_seconds = time.perf_counter() - started
        model.save(update_fields=["duration_seconds"])
    timings["writing"] = time.perf_counter() - phase
    return ClvFit(
        model=model,
        bgnbd=bgnbd,
        gamma_gamma=gamma_gamma,
        log_likelihood=log_likelihood,
        customers=len(summary),
        timings=timings,
    )


def _holdout_check(
    params: btyd.BgNbdParams,
    summary: RfmSummary,
    unit_days: float,
    *,
    calibration_end: datetime,
    now: datetime,
) -> dict | None:
    """Predicted vs actual purchases after the calibration end, by calibration frequency
    (0, 1, …, 6, 7+), as in FHL 2005a figure 4. None when there is no holdout period."""
    holdout_days = (now - calibration_end).total_seconds() / 86_400.0
    if holdout_days < 1:
        return None
    predicted = btyd.bgnbd_expected_purchases(
        params, holdout_days / unit_days, summary.x, summary.t_x / unit_days, summary.T / unit_days
    )
    group = np.minimum(summary.x, 7).astype(int)
    counts = np.bincount(group, minlength=8)
    with np.errstate(invalid="ignore"):
        actual = np.bincount(group, weights=summary.holdout_x, minlength=8) / counts
        expected = np.bincount(group, weights=predicted, minlength=8) / counts
    return {
        "holdout_days": holdout_days,
        "groups": ["0", "1", "2", "3", "4", "5", "6", "7+"],
        "customers": counts.tolist(),
        "actual": actual.tolist(),
        "predicted": expected.tolist(),
        "actual_total": float(summary.holdout_x.sum()),
        "predicted_total": float(predicted.sum()),
    }


def _distribution(values: np.ndarray, *, bins: int = 20, log: bool = True) -> dict:
    """Histogram of ``values`` (log-spaced bins above zero when ``log``) plus quantiles."""
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return {"edges": [], "counts": [], "quantiles": {}}
    positive = values[values > 0]
    if log and len(positive):
        low = max(float(positive.min()), 1e-2)
        edges = np.concatenate([[0.0], np.geomspace(low, float(values.max()) + 1e-9, bins)])
    else:
        edges = np.linspace(float(values.min()), float(values.max()) + 1e-9, bins + 1)
    counts, edges = np.histogram(values, bins=edges)
    quantiles = {str(q): float(np.quantile(values, q)) for q in (0.5, 0.8, 0.9, 0.99)}
    return {
        "edges": edges.tolist(),
        "counts": counts.tolist(),
        "quantiles": quantiles,
        "mean": float(values.mean()),
    }


def _json_safe(value):
    """Replace NaN/inf (not valid JSON) by None, recursively; numpy scalars by floats."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


# --- propensity ---------------------------------------------------------------------------

TARGET_KIND = {"churn": ModelKind.CHURN, "purchase": ModelKind.PURCHASE}
TARGET_COLUMN = {"churn": "churn", "purchase": "purchase_30d"}


def propensity_train(
    *,
    target: str,
    now: datetime,
    as_of: datetime | None = None,
    horizon_days: int | None = None,
) -> ScoringModel:
    """Train the ``target`` model (``churn`` or ``purchase``) on a time split, store it with its
    held-out AUC, Brier score, calibration and permutation importances, and score every
    eligible contact on the current features.

    Training: features as of ``as_of - horizon``, labels from the next ``horizon`` days.
    Held-out: features as of ``as_of`` (default ``now - horizon``), labels ``(as_of, as_of +
    horizon]``. Raises ScoringError (nothing written) when the held-out period ends after
    ``now``, a period has too few rows or a single class.
    """
    from segments.scoring import propensity

    started = time.perf_counter()
    if target not in TARGET_KIND:
        raise ScoringError(
            _("Unknown target “%(target)s”; use churn or purchase.") % {"target": target}
        )
    default_horizon = (
        settings.SCORING_CHURN_HORIZON_DAYS
        if target == "churn"
        else settings.SCORING_PURCHASE_HORIZON_DAYS
    )
    horizon_days = int(horizon_days or default_horizon)
    if horizon_days <= 0:
        raise ScoringError(_("The horizon must be a positive number of days."))
    horizon = timedelta(days=horizon_days)
    as_of = as_of or now - horizon
    if as_of + horizon > now:
        raise ScoringError(
            _(
                "The held-out period (%(start)s + %(days)d days) ends after today: choose an "
                "earlier --as-of date so its outcome is known."
            )
            % {"start": as_of.date().isoformat(), "days": horizon_days}
        )
    population = scoring_population()
    train_matrix, y_train = propensity.labelled(
        propensity.features_as_of(population=population, as_of=as_of - horizon),
        target=target,
        as_of=as_of - horizon,
        horizon=horizon,
    )
    test_matrix, y_test = propensity.labelled(
        propensity.features_as_of(population=population, as_of=as_of),
        target=target,
        as_of=as_of,
        horizon=horizon,
    )
    minimum = settings.SCORING_MIN_TRAINING_ROWS
    for label, y in ((_("training"), y_train), (_("held-out"), y_test)):
        if len(y) < minimum:
            raise ScoringError(
                _(
                    "Too little history: the %(period)s period has %(n)d contacts, at least "
                    "%(min)d are needed."
                )
                % {"period": label, "n": len(y), "min": minimum}
            )
        if y.min() == y.max():
            raise ScoringError(
                _(
                    "Every contact of the %(period)s period has the same outcome: there is "
                    "nothing to learn or measure."
                )
                % {"period": label}
            )
    trained = propensity.train_and_evaluate(
        X_train=train_matrix.X,
        y_train=y_train,
        X_test=test_matrix.X,
        y_test=y_test,
        max_rows=settings.SCORING_MAX_TRAINING_ROWS,
    )
    current = propensity.population_for(
        target, propensity.live_features(population=population, as_of=now)
    )
    probabilities = (
        trained.estimator.predict_proba(current.X)[:, 1] if len(current) else np.zeros(0)
    )
    probabilities = np.clip(probabilities, 0.0, 1.0)
    column = TARGET_COLUMN[target]
    kind = TARGET_KIND[target]
    with transaction.atomic():
        model = ScoringModel.objects.create(
            kind=kind,
            version=_next_version(kind),
            created_at=now,
            reference_date=as_of,
            horizon_days=horizon_days,
            training_rows=trained.train_rows,
            scored_contacts=len(current),
            auc=trained.auc,
            brier=trained.brier,
            parameters=_json_safe(
                {
                    "estimator": trained.name,
                    "validation": trained.validation,
                    "features": list(propensity.FEATURE_NAMES),
                    "train_as_of": (as_of - horizon).isoformat(),
                    "test_as_of": as_of.isoformat(),
                    "test_rows": trained.test_rows,
                    "train_positive_rate": trained.train_positive_rate,
                    "test_positive_rate": trained.test_positive_rate,
                }
            ),
            report=_json_safe(
                {
                    "calibration": trained.calibration,
                    "importances": trained.importances,
                    "score_distribution": _distribution(probabilities, bins=10, log=False),
                }
            ),
        )
        scores_write(
            model=model,
            contact_ids=current.contact_id,
            columns={column: probabilities, f"{column}_top": top_share(probabilities)},
            now=now,
        )
        model.duration_seconds = time.perf_counter() - started
        model.save(update_fields=["duration_seconds"])
    return model


__all__ = [
    "ClvFit",
    "ScoringError",
    "clv_fit",
    "clv_predict",
    "propensity_train",
    "scores_write",
    "scoring_population",
    "top_share",
]


def cohort_tables_refresh(*, now: datetime) -> list[str]:
    """Recompute the cohorts page's default tables (``COHORT_PAGE_MONTHS`` months, by sign-up
    and by first purchase) into the shared cache, so no visitor waits for the aggregates; the
    kinds refreshed, in order. Nothing when the cache is per process (the embedded mode's
    default): the web process would never see a worker's entries, and visits compute their
    own table as before. Re-running only recomputes the same entries."""
    from config.environment import PER_PROCESS_CACHES
    from segments.scoring.selectors import COHORT_KINDS, COHORT_PAGE_MONTHS, cohort_table_as_of

    if settings.SCORING_COHORTS_CACHE_SECONDS <= 0:
        return []
    if settings.CACHES["default"]["BACKEND"] in PER_PROCESS_CACHES:
        return []
    for by in COHORT_KINDS:
        cohort_table_as_of(by=by, months=COHORT_PAGE_MONTHS, now=now, fresh=True)
    return list(COHORT_KINDS)
