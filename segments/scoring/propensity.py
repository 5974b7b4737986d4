"""Propensity models (churn, purchase within N days) on the segments feature table.

Time split: features as of ``as_of - horizon`` with labels from the following ``horizon`` days
train the model; features as of ``as_of`` with labels from ``(as_of, as_of + horizon]`` are
the held-out later period the AUC and Brier score are measured on. Features come from
``segments.services.features_refresh(as_of=…)`` (the one feature implementation), computed
inside a transaction that is rolled back, so the live feature table is never changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from sklearn.calibration import CalibratedClassifierCV, calibration_curve
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from contacts.models import Channel, Event

NUMERIC_FEATURES = (
    "recency_days",
    "frequency_90d",
    "frequency_365d",
    "monetary_total",
    "avg_basket",
    "mean_interpurchase_days",
    "engagement_score",
    "days_since_signup",
)
FEATURE_NAMES = (
    *NUMERIC_FEATURES,
    "days_since_last_activity",
    *(f"preferred_channel_{c}" for c in Channel.values),
)
TARGETS = ("churn", "purchase")


@dataclass
class FeatureMatrix:
    contact_id: np.ndarray
    X: np.ndarray  # rows aligned with contact_id, columns FEATURE_NAMES (NaN = missing)

    def __len__(self) -> int:
        return len(self.contact_id)

    @property
    def is_customer(self) -> np.ndarray:
        """Bought at least once before the reference date (recency is known)."""
        return np.isfinite(self.X[:, 0])

    def subset(self, mask: np.ndarray) -> FeatureMatrix:
        return FeatureMatrix(self.contact_id[mask], self.X[mask])


def live_features(*, population: QuerySet, as_of: datetime) -> FeatureMatrix:
    """The features currently stored (the ones segments use) for contacts of ``population``."""
    from segments.models import ContactFeatures

    rows = ContactFeatures.objects.filter(contact__in=population).values_list(
        "contact_id", *NUMERIC_FEATURES, "last_activity_at", "preferred_channel"
    )
    return _matrix(list(rows.iterator(chunk_size=20_000)), as_of=as_of)


def features_as_of(*, population: QuerySet, as_of: datetime) -> FeatureMatrix:
    """Features as of a past date, computed by the segments refresh in a transaction that is
    rolled back (the live feature table is unchanged afterwards)."""
    from segments.services import features_refresh

    with transaction.atomic():
        features_refresh(as_of=as_of)
        matrix = live_features(population=population, as_of=as_of)
        transaction.set_rollback(True)
    return matrix


def _matrix(rows: list[tuple], *, as_of: datetime) -> FeatureMatrix:
    n = len(rows)
    X = np.full((n, len(FEATURE_NAMES)), np.nan)
    if n == 0:
        return FeatureMatrix(np.zeros(0, dtype=np.int64), X)
    columns = list(zip(*rows, strict=True))
    ids = np.array(columns[0], dtype=np.int64)
    for j in range(len(NUMERIC_FEATURES)):
        X[:, j] = np.array(columns[1 + j], dtype=np.float64)  # None → nan
    last = columns[1 + len(NUMERIC_FEATURES)]
    X[:, len(NUMERIC_FEATURES)] = [
        (as_of - moment).total_seconds() / 86_400.0 if moment else np.nan for moment in last
    ]
    channel = np.array(columns[2 + len(NUMERIC_FEATURES)], dtype=object)
    for k, value in enumerate(Channel.values):
        X[:, len(NUMERIC_FEATURES) + 1 + k] = channel == value
    return FeatureMatrix(ids, X)


def purchasers_between(*, start: datetime, end: datetime) -> np.ndarray:
    """Ids of contacts with a purchase in ``(start, end]`` (one query)."""
    ids = (
        Event.objects.filter(
            type=settings.CIBLE_PURCHASE_EVENT_TYPE, occurred_at__gt=start, occurred_at__lte=end
        )
        .values_list("contact_id", flat=True)
        .distinct()
    )
    return np.fromiter(ids.iterator(chunk_size=50_000), dtype=np.int64)


def labelled(
    matrix: FeatureMatrix, *, target: str, as_of: datetime, horizon: timedelta
) -> tuple[FeatureMatrix, np.ndarray]:
    """The target's population and labels: churn = a customer with no purchase within the
    horizon; purchase = any contact who buys within the horizon."""
    buyers = purchasers_between(start=as_of, end=as_of + horizon)
    if target == "churn":
        matrix = matrix.subset(matrix.is_customer)
        return matrix, (~np.isin(matrix.contact_id, buyers)).astype(int)
    return matrix, np.isin(matrix.contact_id, buyers).astype(int)


def population_for(target: str, matrix: FeatureMatrix) -> FeatureMatrix:
    """The contacts a target scores: customers for churn, everyone for purchase."""
    return matrix.subset(matrix.is_customer) if target == "churn" else matrix


def candidates(n_rows: int) -> dict[str, object]:
    """Calibrated logistic regression and gradient boosting (isotonic on large samples)."""
    method = "isotonic" if n_rows >= 2_000 else "sigmoid"
    logistic = make_pipeline(
        SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
        StandardScaler(),
        LogisticRegression(max_iter=2_000),
    )
    boosting = HistGradientBoostingClassifier(max_iter=150, learning_rate=0.1, random_state=0)
    return {
        "logistic_regression": CalibratedClassifierCV(logistic, method=method, cv=3),
        "gradient_boosting": CalibratedClassifierCV(boosting, method=method, cv=3),
    }


@dataclass
class TrainedModel:
    estimator: object
    name: str
    auc: float
    brier: float
    validation: dict[str, dict[str, float]]
    calibration: dict[str, list[float]]
    importances: list[dict[str, float | str]]
    train_rows: int
    test_rows: int
    train_positive_rate: float
    test_positive_rate: float


# Below this many rows OpenMP threads cost more than they bring (they spin when the two cores
# are busy): gradient boosting on a few thousand rows goes from seconds to tens of seconds.
SINGLE_THREAD_BELOW_ROWS = 50_000


def train_and_evaluate(
    *,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    max_rows: int,
    seed: int = 0,
) -> TrainedModel:
    """Choose between the candidates on a validation split of the training period (Brier),
    refit the winner on the whole training period and measure it on the held-out period."""
    threads = 1 if min(len(y_train), max_rows) < SINGLE_THREAD_BELOW_ROWS else None
    with threadpool_limits(limits=threads):
        return _train_and_evaluate(
            X_train=X_train,
            y_train=y_train,
            X_test=X_test,
            y_test=y_test,
            max_rows=max_rows,
            seed=seed,
        )


def _train_and_evaluate(
    *,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    max_rows: int,
    seed: int,
) -> TrainedModel:
    rng = np.random.default_rng(seed)
    if len(y_train) > max_rows:
        keep = rng.choice(len(y_train), size=max_rows, replace=False)
        X_train, y_train = X_train[keep], y_train[keep]
    X_fit, X_val, y_fit, y_val = train_test_split(
        X_train, y_train, test_size=0.25, random_state=seed, stratify=y_train
    )
    validation: dict[str, dict[str, float]] = {}
    for name, model in candidates(len(y_fit)).items():
        model.fit(X_fit, y_fit)
        p = model.predict_proba(X_val)[:, 1]
        validation[name] = {"auc": roc_auc_score(y_val, p), "brier": brier_score_loss(y_val, p)}
    chosen = min(validation, key=lambda name: validation[name]["brier"])
    model = candidates(len(y_train))[chosen]
    model.fit(X_train, y_train)
    p_test = model.predict_proba(X_test)[:, 1]
    prob_true, prob_pred = calibration_curve(y_test, p_test, n_bins=10, strategy="quantile")
    sample = rng.choice(len(y_test), size=min(len(y_test), 5_000), replace=False)
    importance = permutation_importance(
        model, X_test[sample], y_test[sample], scoring="roc_auc", n_repeats=5, random_state=seed
    )
    order = np.argsort(importance.importances_mean)[::-1][:10]
    return TrainedModel(
        estimator=model,
        name=chosen,
        auc=float(roc_auc_score(y_test, p_test)),
        brier=float(brier_score_loss(y_test, p_test)),
        validation=validation,
        calibration={"predicted": prob_pred.tolist(), "observed": prob_true.tolist()},
        importances=[
            {
                "feature": FEATURE_NAMES[i],
                "mean": float(importance.importances_mean[i]),
                "std": float(importance.importances_std[i]),
            }
            for i in order
        ],
        train_rows=len(y_train),
        test_rows=len(y_test),
        train_positive_rate=float(y_train.mean()),
        test_positive_rate=float(y_test.mean()),
    )
