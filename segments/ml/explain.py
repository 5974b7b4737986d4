"""Explanations marketers can trust: z-score profiles in plain words and a decision-tree surrogate.

- ``cluster_profiles``: per cluster, the mean of each feature and its z-score against the whole
  base (on the transformed scale the clusters were found on).
- ``profile_words``: the few features that set a cluster apart, as words ("buys often, small
  baskets, opens emails"), in the active language.
- ``surrogate_fit``: a shallow ``DecisionTreeClassifier`` on the raw features that imitates the
  cluster assignment; its *fidelity* is the share of contacts where tree and cluster agree.
  Every leaf is a path of threshold conditions that ``leaf_rule`` turns into a rule tree of
  ``ml_feature`` conditions (an editable rule segment).
"""

from __future__ import annotations

import numpy as np
from django.utils.translation import gettext
from sklearn.tree import DecisionTreeClassifier

from segments.ml.catalogue import FEATURES_BY_NAME

PROFILE_MIN_Z = 0.5
PROFILE_MAX_WORDS = 4
SURROGATE_DEPTH = 4
SURROGATE_FIT_ROWS = 50_000


def base_statistics(x_log: np.ndarray, x_raw: np.ndarray, names: list[str]) -> dict:
    """Mean and standard deviation of each feature over the base (transformed and raw scale)."""
    out = {}
    for j, name in enumerate(names):
        out[name] = {
            "mean": float(np.nanmean(x_log[:, j])),
            "std": float(np.nanstd(x_log[:, j])) or 1.0,
            "raw_mean": float(np.nanmean(x_raw[:, j])),
            "missing_share": float(np.isnan(x_raw[:, j]).mean()),
        }
    return out


def cluster_profiles(
    x_log: np.ndarray, x_raw: np.ndarray, labels: np.ndarray, names: list[str], base: dict
) -> dict[int, dict]:
    """``{stable_id: {"size", "centroid", "feature_means", "zscores"}}`` (missing values ignored)."""
    profiles = {}
    for stable in np.unique(labels):
        rows = labels == stable
        with np.errstate(invalid="ignore"):
            centroid = np.nanmean(x_log[rows], axis=0)
            raw = np.nanmean(x_raw[rows], axis=0)
        profiles[int(stable)] = {
            "size": int(rows.sum()),
            "centroid": {n: _finite(centroid[j]) for j, n in enumerate(names)},
            "feature_means": {n: _finite(raw[j]) for j, n in enumerate(names)},
            "zscores": {
                n: _finite((centroid[j] - base[n]["mean"]) / base[n]["std"])
                for j, n in enumerate(names)
            },
        }
    return profiles


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def profile_words(zscores: dict[str, float | None]) -> str:
    """Plain-language profile of one cluster, e.g. "buys often, small baskets, opens emails"."""
    ranked = sorted(
        ((name, z) for name, z in zscores.items() if z is not None and name in FEATURES_BY_NAME),
        key=lambda item: -abs(item[1]),
    )
    words = [
        str(FEATURES_BY_NAME[name].high if z > 0 else FEATURES_BY_NAME[name].low)
        for name, z in ranked[:PROFILE_MAX_WORDS]
        if abs(z) >= PROFILE_MIN_Z
    ]
    return ", ".join(words) if words else gettext("close to the average contact")


def surrogate_fit(
    x_raw: np.ndarray, stable_ids: np.ndarray, names: list[str], *, seed: int
) -> dict:
    """Fit the shallow tree on (a sample of) the base and describe it.

    Returns ``{"depth", "fidelity", "leaves": [{"cluster", "support", "purity", "conditions"}]}``
    where a condition is ``{"feature", "op": "lte"|"gt", "value", "include_missing"}``.
    Fidelity is measured on every row of ``x_raw``.
    """
    n = len(x_raw)
    rows = (
        np.arange(n)
        if n <= SURROGATE_FIT_ROWS
        else np.sort(np.random.default_rng(seed).choice(n, SURROGATE_FIT_ROWS, replace=False))
    )
    tree = DecisionTreeClassifier(
        max_depth=SURROGATE_DEPTH,
        min_samples_leaf=max(10, len(rows) // 200),
        random_state=seed,
    ).fit(x_raw[rows], stable_ids[rows])
    predicted = np.empty(n, dtype=stable_ids.dtype)
    for start in range(0, n, 200_000):
        predicted[start : start + 200_000] = tree.predict(x_raw[start : start + 200_000])
    fidelity = float((predicted == stable_ids).mean()) if n else 0.0
    leaf_of_row = tree.apply(x_raw[rows])
    leaves = []
    structure = tree.tree_
    for leaf, conditions in _leaf_paths(structure, names):
        members = leaf_of_row == leaf
        counts = structure.value[leaf][0]
        cluster = int(tree.classes_[int(np.argmax(counts))])
        support = int(members.sum())
        purity = float((stable_ids[rows][members] == cluster).mean()) if support else 0.0
        leaves.append(
            {
                "leaf": int(leaf),
                "cluster": cluster,
                "support": support,
                "purity": purity,
                "conditions": conditions,
            }
        )
    leaves.sort(key=lambda leaf: (leaf["cluster"], -leaf["support"]))
    return {"depth": int(tree.get_depth()), "fidelity": fidelity, "leaves": leaves}


def _leaf_paths(structure, names: list[str]):
    """Yield ``(leaf_id, conditions)`` for each leaf, conditions simplified per feature/side."""
    missing_left = getattr(structure, "missing_go_to_left", None)

    def walk(node: int, path: list[dict]):
        left, right = structure.children_left[node], structure.children_right[node]
        if left == right:  # leaf
            yield node, _simplify(path)
            return
        feature = names[structure.feature[node]]
        threshold = round(float(structure.threshold[node]), 3)
        to_left = bool(missing_left[node]) if missing_left is not None else False
        yield from walk(left, [*path, _condition(feature, "lte", threshold, to_left)])
        yield from walk(right, [*path, _condition(feature, "gt", threshold, not to_left)])

    yield from walk(0, [])


def _condition(feature: str, op: str, value: float, include_missing: bool) -> dict:
    return {"feature": feature, "op": op, "value": value, "include_missing": include_missing}


def _simplify(path: list[dict]) -> list[dict]:
    """Keep the tightest bound per (feature, side); missing values pass only if they passed all."""
    kept: dict[tuple[str, str], dict] = {}
    for cond in path:
        key = (cond["feature"], cond["op"])
        previous = kept.get(key)
        if previous is None:
            kept[key] = dict(cond)
            continue
        tighter = min if cond["op"] == "lte" else max
        previous["value"] = tighter(previous["value"], cond["value"])
        previous["include_missing"] = previous["include_missing"] and cond["include_missing"]
    missing_ok: dict[str, bool] = {}
    for cond in kept.values():
        missing_ok[cond["feature"]] = (
            missing_ok.get(cond["feature"], True) and cond["include_missing"]
        )
    for cond in kept.values():
        cond["include_missing"] = missing_ok[cond["feature"]]
    return list(kept.values())


def leaf_rule(conditions: list[dict]) -> dict:
    """The rule tree (segments' JSON) selecting the contacts of one surrogate leaf."""
    return {
        "all": [
            {
                "type": "ml_feature",
                "feature": c["feature"],
                "op": c["op"],
                "value": c["value"],
                "include_missing": c["include_missing"],
            }
            for c in conditions
        ]
    }


def describe_conditions(conditions: list[dict]) -> str:
    """Readable path, e.g. "average basket > 95.2 and share of mobile events ≤ 0.41"."""
    parts = []
    for c in conditions:
        label = str(FEATURES_BY_NAME[c["feature"]].label)
        sign = "≤" if c["op"] == "lte" else ">"
        text = f"{label} {sign} {c['value']:g}"
        if c["include_missing"]:
            text += " " + gettext("(or unknown)")
        parts.append(text)
    return gettext(" and ").join(parts) if parts else gettext("every contact")
