"""The clustering pipeline: transform → scale → impute → reduce → cluster, deterministic by seed.

``pipeline_fit`` fits on a training sample and returns a ``ClusterPipeline`` (pickled with joblib
into the version's artefact) whose ``predict`` assigns any number of contacts, chunk by chunk.

Order of the steps: skewed features are ``log1p``-transformed, then standardised (the scaler
ignores missing values), then missing values are imputed (k-NN or iterative) in the scaled
space, so that distances between neighbours weigh every feature alike; optional PCA (95 % of
the variance) or an autoencoder bottleneck; finally one of the algorithms below. Every
algorithm ends with an *assigner* that labels new points: k-means' own ``predict``, nearest
centroid for hierarchical clustering fitted on a sample, nearest core point within ``eps`` for
DBSCAN (else noise, label -1).

To add an algorithm: write a ``_fit_<name>(z, k, config) -> Fitted`` below and register it
in ``ALGORITHMS``; the rest (metrics, stable identities, explanations) is algorithm-agnostic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np
from django.conf import settings
from django.utils.translation import gettext as _
from sklearn import config_context
from sklearn.cluster import DBSCAN, AgglomerativeClustering, KMeans, MiniBatchKMeans
from sklearn.decomposition import PCA
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score
from sklearn.neighbors import NearestNeighbors
from sklearn.neural_network import MLPRegressor
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from segments.ml.catalogue import FEATURES_BY_NAME

PREDICT_CHUNK = 200_000
KNN_REFERENCE_ROWS = 3_000  # rows the k-NN imputer searches neighbours in
ITERATIVE_FIT_ROWS = 20_000
AGGLOMERATIVE_MAX_ROWS = 10_000  # Ward linkage is O(n²) in memory
DBSCAN_MAX_ROWS = 20_000
AUTO_K_FIT_ROWS = 20_000
SILHOUETTE_ROWS = 3_000
AUTOENCODER_FIT_ROWS = 20_000


@contextmanager
def compute_threads() -> Iterator[None]:
    """Cap BLAS/OpenMP threads at ``ML_THREADS`` for the block (busy-waiting OpenMP threads on a
    shared, oversubscribed machine are many times slower than one thread)."""
    with threadpool_limits(limits=settings.ML_THREADS), config_context(working_memory=128):
        yield


class TrainingError(ValueError):
    """Input the pipeline cannot train on; the message is shown to the user as is."""


@dataclass(frozen=True)
class TrainingConfig:
    features: list[str]
    algorithm: str = "kmeans"
    k: int | None = None
    k_range: tuple[int, int] = (2, 10)
    imputer: str = "knn"
    reduction: str = "none"
    sample_size: int = 200_000
    seed: int = 42
    dbscan_eps: float = 1.5
    dbscan_min_samples: int = 10
    quick: bool = False  # automatic-k trials: fewer k-means restarts


@dataclass
class Fitted:
    """A fitted clusterer: labels of the fitting rows and something that labels new rows."""

    labels: np.ndarray
    assigner: object  # has .predict(z) -> labels (−1 = noise)
    inertia: float | None = None


class NearestCentroidAssigner:
    """Labels rows by their nearest centroid (hierarchical clustering fitted on a sample)."""

    def __init__(self, centroids: np.ndarray) -> None:
        self.centroids = centroids

    def predict(self, z: np.ndarray) -> np.ndarray:
        d = (
            (z**2).sum(axis=1)[:, None]
            - 2 * z @ self.centroids.T
            + (self.centroids**2).sum(axis=1)[None, :]
        )
        return d.argmin(axis=1)


class CorePointAssigner:
    """DBSCAN's rule for new rows: the label of the nearest core point within ``eps``, else −1."""

    def __init__(self, core_points: np.ndarray, core_labels: np.ndarray, eps: float) -> None:
        self.eps = eps
        self.core_labels = core_labels
        self.index = NearestNeighbors(n_neighbors=1).fit(core_points)

    def predict(self, z: np.ndarray) -> np.ndarray:
        distance, nearest = self.index.kneighbors(z)
        labels = self.core_labels[nearest[:, 0]]
        return np.where(distance[:, 0] <= self.eps, labels, -1)


def _fit_kmeans(z: np.ndarray, k: int, config: TrainingConfig) -> Fitted:
    n_init = 3 if config.quick else 10
    model = KMeans(n_clusters=k, init="k-means++", n_init=n_init, random_state=config.seed).fit(z)
    return Fitted(labels=model.labels_, assigner=model, inertia=float(model.inertia_))


def _fit_minibatch(z: np.ndarray, k: int, config: TrainingConfig) -> Fitted:
    model = MiniBatchKMeans(n_clusters=k, n_init=3, batch_size=4096, random_state=config.seed).fit(
        z
    )
    return Fitted(labels=model.predict(z), assigner=model, inertia=float(model.inertia_))


def _fit_agglomerative(z: np.ndarray, k: int, config: TrainingConfig) -> Fitted:
    rows = _subsample(len(z), AGGLOMERATIVE_MAX_ROWS, config.seed)
    labels = AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(z[rows])
    centroids = np.vstack([z[rows][labels == c].mean(axis=0) for c in range(k)])
    assigner = NearestCentroidAssigner(centroids)
    return Fitted(labels=assigner.predict(z), assigner=assigner)


def _fit_dbscan(z: np.ndarray, k: int, config: TrainingConfig) -> Fitted:
    rows = _subsample(len(z), DBSCAN_MAX_ROWS, config.seed)
    model = DBSCAN(eps=config.dbscan_eps, min_samples=config.dbscan_min_samples).fit(z[rows])
    core = model.core_sample_indices_
    if len(core) == 0 or model.labels_.max() < 0:
        raise TrainingError(
            _(
                "DBSCAN found no cluster with eps=%(eps)s and min samples=%(min)s: "
                "increase eps or lower the minimum samples."
            )
            % {"eps": config.dbscan_eps, "min": config.dbscan_min_samples}
        )
    assigner = CorePointAssigner(z[rows][core], model.labels_[core], config.dbscan_eps)
    return Fitted(labels=assigner.predict(z), assigner=assigner)


ALGORITHMS: dict[str, Callable[[np.ndarray, int, TrainingConfig], Fitted]] = {
    "kmeans": _fit_kmeans,
    "minibatch": _fit_minibatch,
    "agglomerative": _fit_agglomerative,
    "dbscan": _fit_dbscan,
}


def _subsample(n: int, size: int, seed: int) -> np.ndarray:
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


class PatternKNNImputer:
    """k-nearest-neighbour imputation, fast on millions of rows.

    Donors are up to ``KNN_REFERENCE_ROWS`` complete rows of the fitting data. Rows are grouped
    by their pattern of missing columns (a handful of patterns in practice); for each pattern the
    ``n_neighbors`` nearest donors on the observed columns (euclidean, BLAS) give the mean that
    fills the missing ones. Same idea as scikit-learn's ``KNNImputer`` (whose ``nan_euclidean``
    distances are ~50x slower here); columns a row has no observed neighbour for get the mean.
    """

    def __init__(self, *, n_neighbors: int = 5, seed: int = 0) -> None:
        self.n_neighbors = n_neighbors
        self.seed = seed

    def fit(self, z: np.ndarray) -> PatternKNNImputer:
        self.means_ = np.nan_to_num(np.nanmean(z, axis=0)) if len(z) else np.zeros(z.shape[1])
        complete = np.flatnonzero(~np.isnan(z).any(axis=1))
        pick = _subsample(len(complete), KNN_REFERENCE_ROWS, self.seed)
        self.donors_ = z[complete[pick]]
        return self

    def transform(self, z: np.ndarray) -> np.ndarray:
        out = np.array(z, dtype=np.float64, copy=True)
        missing = np.isnan(out)
        rows = np.flatnonzero(missing.any(axis=1))
        if len(rows) == 0:
            return out
        k = min(self.n_neighbors, len(self.donors_))
        # One integer code per pattern of missing columns (np.unique over boolean rows sorts
        # void views, ~10x slower on a million rows).
        codes = missing[rows].astype(np.int64) @ (np.int64(1) << np.arange(out.shape[1]))
        order = np.argsort(codes, kind="stable")
        _codes, starts = np.unique(codes[order], return_index=True)
        bounds = [*starts[1:], len(order)]
        for first, stop in zip(starts, bounds, strict=True):
            members = rows[order[first:stop]]
            pattern = missing[members[0]]
            observed = ~pattern
            if k == 0 or not observed.any():
                out[np.ix_(members, pattern)] = self.means_[pattern]
                continue
            index_ = NearestNeighbors(n_neighbors=k, algorithm="brute").fit(
                self.donors_[:, observed]
            )
            for start in range(0, len(members), PREDICT_CHUNK):
                chunk = members[start : start + PREDICT_CHUNK]
                _dist, nearest = index_.kneighbors(out[np.ix_(chunk, observed)])
                out[np.ix_(chunk, pattern)] = self.donors_[:, pattern][nearest].mean(axis=1)
        return out


class AutoencoderEmbedding:
    """An MLPRegressor trained to reconstruct its input; the bottleneck layer is the embedding."""

    def __init__(self, n_features: int, seed: int) -> None:
        self.bottleneck = max(2, min(8, n_features // 2))
        hidden = max(self.bottleneck * 2, n_features)
        self.mlp = MLPRegressor(
            hidden_layer_sizes=(hidden, self.bottleneck, hidden),
            activation="tanh",
            max_iter=300,
            early_stopping=True,
            random_state=seed,
        )

    def fit(self, z: np.ndarray) -> AutoencoderEmbedding:
        self.mlp.fit(z, z)
        return self

    def transform(self, z: np.ndarray) -> np.ndarray:
        out = z
        for layer in range(2):  # input → hidden → bottleneck
            out = np.tanh(out @ self.mlp.coefs_[layer] + self.mlp.intercepts_[layer])
        return out


@dataclass
class ClusterPipeline:
    """Everything needed to assign contacts later; pickled into the version's artefact."""

    feature_names: list[str]
    log_mask: np.ndarray
    scaler: StandardScaler
    imputer: object
    reducer: object | None
    assigner: object
    n_clusters: int
    label_to_stable: dict[int, int] = field(default_factory=dict)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Raw feature matrix (NaN = missing) → the space the clusters live in."""
        z = np.array(x, dtype=np.float64, copy=True)
        z[:, self.log_mask] = np.log1p(np.clip(z[:, self.log_mask], 0, None))
        z = self.scaler.transform(z)
        z = self.imputer.transform(z)
        if self.reducer is not None:
            z = self.reducer.transform(z)
        return z

    def predict_labels(self, x: np.ndarray) -> np.ndarray:
        """Internal labels (0..k−1, −1 = noise) of ``x``, computed in chunks."""
        out = np.empty(len(x), dtype=np.int64)
        for start in range(0, len(x), PREDICT_CHUNK):
            stop = start + PREDICT_CHUNK
            out[start:stop] = self.assigner.predict(self.transform(x[start:stop]))
        return out

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Stable cluster ids of ``x`` (0 = unassigned noise)."""
        lookup = np.zeros(self.n_clusters + 1, dtype=np.int64)  # index −1 → noise → 0
        for label, stable in self.label_to_stable.items():
            lookup[label] = stable
        return lookup[self.predict_labels(x)]


def log_transform(x: np.ndarray, names: list[str]) -> np.ndarray:
    """``x`` with the catalogue's skewed features ``log1p``-transformed (a copy)."""
    mask = np.array([FEATURES_BY_NAME[n].log for n in names], dtype=bool)
    out = np.array(x, dtype=np.float64, copy=True)
    out[:, mask] = np.log1p(np.clip(out[:, mask], 0, None))
    return out


def check_trainable(x: np.ndarray, names: list[str], *, k: int | None, k_max: int) -> None:
    """Raise TrainingError with a clear message when ``x`` cannot be clustered."""
    wanted = k or k_max
    needed = max(10 * wanted, 30)
    if len(x) < needed:
        raise TrainingError(
            _(
                "Too few contacts: %(n)d eligible contacts for up to %(k)d clusters "
                "(at least %(needed)d needed)."
            )
            % {"n": len(x), "k": wanted, "needed": needed}
        )
    missing = np.isnan(x).all(axis=0)
    if missing.any():
        raise TrainingError(
            _("These features have no value for any contact: %(names)s.")
            % {"names": ", ".join(n for n, m in zip(names, missing, strict=True) if m)}
        )
    spread = np.nanmax(x, axis=0) - np.nanmin(x, axis=0)
    constant = spread <= 1e-12
    if constant.any():
        raise TrainingError(
            _("These features have the same value for every contact: %(names)s.")
            % {"names": ", ".join(n for n, c in zip(names, constant, strict=True) if c)}
        )


def _fit_imputer(z: np.ndarray, config: TrainingConfig):
    if config.imputer == "iterative":
        rows = _subsample(len(z), ITERATIVE_FIT_ROWS, config.seed)
        return IterativeImputer(max_iter=10, random_state=config.seed).fit(z[rows])
    return PatternKNNImputer(seed=config.seed).fit(z)


def _fit_reducer(z: np.ndarray, config: TrainingConfig):
    if config.reduction == "pca":
        return PCA(n_components=0.95, svd_solver="full", random_state=config.seed).fit(z)
    if config.reduction == "autoencoder":
        rows = _subsample(len(z), AUTOENCODER_FIT_ROWS, config.seed)
        return AutoencoderEmbedding(z.shape[1], config.seed).fit(z[rows])
    return None


@dataclass
class FitResult:
    pipeline: ClusterPipeline
    sample_labels: np.ndarray  # internal labels of the training sample rows
    sample_embedded: np.ndarray  # training sample in the clustering space
    metrics: dict
    auto_k: list[dict]


def cluster_quality(z: np.ndarray, labels: np.ndarray, seed: int) -> dict:
    """Silhouette (on a sample), Davies-Bouldin and Calinski-Harabasz; noise rows left out."""
    keep = labels >= 0
    z, labels = z[keep], labels[keep]
    if len(np.unique(labels)) < 2:
        return {"silhouette": None, "davies_bouldin": None, "calinski_harabasz": None}
    return {
        "silhouette": float(
            silhouette_score(z, labels, sample_size=min(SILHOUETTE_ROWS, len(z)), random_state=seed)
        ),
        "davies_bouldin": float(davies_bouldin_score(z, labels)),
        "calinski_harabasz": float(calinski_harabasz_score(z, labels)),
    }


def choose_k(z: np.ndarray, config: TrainingConfig) -> tuple[int, list[dict]]:
    """Try every k of ``config.k_range`` on a sample; the best silhouette wins (ties: smaller k)."""
    rows = _subsample(len(z), AUTO_K_FIT_ROWS, config.seed)
    fit = ALGORITHMS[config.algorithm]
    config = replace(config, quick=True)
    scores = []
    lo, hi = config.k_range
    for k in range(lo, min(hi, len(rows) - 1) + 1):
        fitted = fit(z[rows], k, config)
        scores.append({"k": k, **cluster_quality(z[rows], fitted.labels, config.seed)})
    valid = [s for s in scores if s["silhouette"] is not None]
    if not valid:
        raise TrainingError(_("No number of clusters in the range gave two clusters or more."))
    best = max(valid, key=lambda s: (round(s["silhouette"], 4), -s["k"]))
    return best["k"], scores


def pipeline_fit(x_sample: np.ndarray, config: TrainingConfig) -> FitResult:
    """Fit every step on the training sample ``x_sample`` (raw values, NaN = missing)."""
    names = list(config.features)
    log_mask = np.array([FEATURES_BY_NAME[n].log for n in names], dtype=bool)
    z = log_transform(x_sample, names)
    scaler = StandardScaler().fit(z)
    z = scaler.transform(z)
    imputer = _fit_imputer(z, config)
    z = imputer.transform(z)
    reducer = _fit_reducer(z, config)
    if reducer is not None:
        z = reducer.transform(z)
    auto_k: list[dict] = []
    k = config.k
    if config.algorithm == "dbscan":
        k = 0
    elif k is None:
        k, auto_k = choose_k(z, config)
    fitted = ALGORITHMS[config.algorithm](z, k, config)
    n_clusters = int(fitted.labels.max()) + 1
    metrics = {
        **cluster_quality(z, fitted.labels, config.seed),
        "k": n_clusters,
        "noise_share": float((fitted.labels < 0).mean()),
        "inertia": fitted.inertia,
        "dimensions": int(z.shape[1]),
    }
    if isinstance(reducer, PCA):
        metrics["explained_variance"] = float(reducer.explained_variance_ratio_.sum())
    pipeline = ClusterPipeline(
        feature_names=names,
        log_mask=log_mask,
        scaler=scaler,
        imputer=imputer,
        reducer=reducer,
        assigner=fitted.assigner,
        n_clusters=n_clusters,
    )
    return FitResult(
        pipeline=pipeline,
        sample_labels=fitted.labels,
        sample_embedded=z,
        metrics=metrics,
        auto_k=auto_k,
    )
