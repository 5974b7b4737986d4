"""Stable cluster identities across retrains (Hungarian matching on centroid distance).

New clusters are matched one-to-one to the previous version's clusters by
``scipy.optimize.linear_sum_assignment`` on the distance between their centroids, measured in
the new base's standard deviations over the features both versions share. A match farther than
``ML_MATCH_MAX_DISTANCE`` (root-mean-square z) is refused: the new cluster gets a fresh id, so
"cluster 3" never silently changes meaning. Noise (DBSCAN) is always id 0.
"""

from __future__ import annotations

import numpy as np
from django.conf import settings
from scipy.optimize import linear_sum_assignment


def match_stable_ids(
    *,
    new_centroids: dict[int, dict[str, float | None]],
    previous_centroids: dict[int, dict[str, float | None]],
    base: dict[str, dict],
    next_free_id: int,
) -> dict[int, int]:
    """Map each new internal label to a stable id.

    ``new_centroids``: ``{internal label: {feature: mean on the transformed scale}}``;
    ``previous_centroids``: ``{stable id: {...}}`` of the active version (empty on first
    training); ``base``: the new version's base statistics (for the scale);
    ``next_free_id``: the smallest stable id never used by this model (≥ 1).
    """
    labels = sorted(new_centroids)
    mapping: dict[int, int] = {}
    previous_ids = sorted(s for s in previous_centroids if s != 0)
    common = [
        name
        for name in base
        if all(new_centroids[label].get(name) is not None for label in labels)
        and all(previous_centroids[s].get(name) is not None for s in previous_ids)
    ]
    if previous_ids and common:
        scale = np.array([base[n]["std"] for n in common])
        new = np.array([[new_centroids[label][n] for n in common] for label in labels]) / scale
        old = np.array([[previous_centroids[s][n] for n in common] for s in previous_ids]) / scale
        cost = np.sqrt(((new[:, None, :] - old[None, :, :]) ** 2).mean(axis=2))
        rows, cols = linear_sum_assignment(cost)
        limit = float(settings.ML_MATCH_MAX_DISTANCE)
        for r, c in zip(rows, cols, strict=True):
            if cost[r, c] <= limit:
                mapping[labels[r]] = previous_ids[c]
    for label in labels:
        if label not in mapping:
            mapping[label] = next_free_id
            next_free_id += 1
    return mapping
