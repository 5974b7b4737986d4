"""Training-sample representativeness and drift (PSI, KS, cluster share shift).

- Representativeness: per feature, two-sample Kolmogorov-Smirnov of the training sample vs.
  the base and a chi-square goodness-of-fit of the sample's counts over the base's deciles.
- Drift reference (stored with each version): per feature, decile edges and proportions of the
  training base and a fixed random sample of its values; cluster shares at training.
- Drift: Population Stability Index over the reference deciles (> 0.2 is the usual "significant
  shift") and KS against the reference sample, per feature; plus the shift of each cluster's
  share of contacts, in share points.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

REFERENCE_SAMPLE = 1_000
PSI_FLOOR = 1e-4


def _decile_edges(values: np.ndarray) -> list[float]:
    edges = np.unique(np.quantile(values, np.linspace(0.1, 0.9, 9)))
    return [float(e) for e in edges]


def _bin_counts(values: np.ndarray, edges: list[float]) -> np.ndarray:
    return np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)


def representativeness(
    x_base: np.ndarray, sample_rows: np.ndarray, names: list[str], *, alpha: float = 0.01
) -> dict:
    """``{"features": {name: {"ks", "ks_p", "chi2", "chi2_p"}}, "representative": bool}``.

    When the sample is the whole base the check is trivially passed (statistics 0, p 1).
    """
    out: dict[str, dict] = {}
    whole = len(sample_rows) == len(x_base)
    ok = True
    for j, name in enumerate(names):
        base = x_base[:, j][~np.isnan(x_base[:, j])]
        sample = x_base[sample_rows, j]
        sample = sample[~np.isnan(sample)]
        if whole or len(base) == 0 or len(sample) == 0:
            out[name] = {"ks": 0.0, "ks_p": 1.0, "chi2": 0.0, "chi2_p": 1.0}
            continue
        ks = stats.ks_2samp(sample, base)
        edges = _decile_edges(base)
        expected = _bin_counts(base, edges) / len(base) * len(sample)
        observed = _bin_counts(sample, edges)
        keep = expected > 0
        chi2 = stats.chisquare(
            observed[keep], expected[keep] * observed[keep].sum() / expected[keep].sum()
        )
        entry = {
            "ks": float(ks.statistic),
            "ks_p": float(ks.pvalue),
            "chi2": float(chi2.statistic),
            "chi2_p": float(chi2.pvalue),
        }
        ok = ok and entry["ks_p"] >= alpha and entry["chi2_p"] >= alpha
        out[name] = entry
    return {"features": out, "representative": ok, "alpha": alpha}


def drift_reference(x_base: np.ndarray, names: list[str], *, seed: int) -> dict:
    """What later drift checks compare against (JSON-serialisable)."""
    rng = np.random.default_rng(seed)
    out = {}
    for j, name in enumerate(names):
        values = x_base[:, j][~np.isnan(x_base[:, j])]
        if len(values) == 0:
            continue
        edges = _decile_edges(values)
        props = _bin_counts(values, edges) / len(values)
        sample = rng.choice(values, size=min(REFERENCE_SAMPLE, len(values)), replace=False)
        out[name] = {
            "edges": edges,
            "proportions": [float(p) for p in props],
            "missing_share": float(np.isnan(x_base[:, j]).mean()),
            "sample": [float(v) for v in np.sort(sample)],
        }
    return out


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population Stability Index of two proportion vectors over the same bins."""
    e = np.clip(np.asarray(expected, dtype=float), PSI_FLOOR, None)
    a = np.clip(np.asarray(actual, dtype=float), PSI_FLOOR, None)
    return float(((a - e) * np.log(a / e)).sum())


def feature_drift(x_now: np.ndarray, names: list[str], reference: dict) -> dict[str, dict]:
    """``{name: {"psi", "ks", "ks_p"}}`` for each feature that has a reference."""
    out = {}
    for j, name in enumerate(names):
        ref = reference.get(name)
        if ref is None:
            continue
        values = x_now[:, j][~np.isnan(x_now[:, j])]
        if len(values) == 0:
            out[name] = {"psi": 99.0, "ks": 1.0, "ks_p": 0.0}
            continue
        actual = _bin_counts(values, ref["edges"]) / len(values)
        ks = stats.ks_2samp(values, np.asarray(ref["sample"]))
        out[name] = {
            "psi": psi(ref["proportions"], actual),
            "ks": float(ks.statistic),
            "ks_p": float(ks.pvalue),
        }
    return out


def share_shift(training_shares: dict[str, float], stable_ids_now: np.ndarray) -> dict[str, dict]:
    """Per cluster: share at training, share now, difference (share points, signed)."""
    n = max(len(stable_ids_now), 1)
    ids, counts = np.unique(stable_ids_now, return_counts=True)
    now = {str(int(i)): float(c) / n for i, c in zip(ids, counts, strict=True)}
    keys = sorted(set(training_shares) | set(now), key=int)
    return {
        k: {
            "training": training_shares.get(k, 0.0),
            "now": now.get(k, 0.0),
            "shift": now.get(k, 0.0) - training_shares.get(k, 0.0),
        }
        for k in keys
    }
