"""Deterministic bucketing of contacts: hash(salt, contact id) → bucket in [0, 10000).

Pure numpy, vectorised over arrays of contact IDs (no Python loop over contacts), identical on
every machine and process: the salt is reduced to 64 bits with BLAKE2b, mixed with the contact
ID and passed through the SplitMix64 finaliser (Steele et al. 2014), whose output bits are
statistically independent of the input's. Two experiments have different salts, so their buckets
are independent; the test-sample draw of auto-winner experiments uses a derived salt, so being in
the sample is independent of the variant.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

BUCKETS = 10_000

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def salt_key(salt: str) -> np.uint64:
    """64-bit key of a salt (first 8 bytes of BLAKE2b)."""
    return np.uint64(int.from_bytes(hashlib.blake2b(salt.encode(), digest_size=8).digest(), "big"))


def buckets_for(salt: str, contact_ids: Sequence[int] | np.ndarray) -> np.ndarray:
    """Bucket in ``[0, BUCKETS)`` of each contact ID, as an int64 array in the same order."""
    ids = np.asarray(contact_ids, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        z = salt_key(salt) + ids * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _MIX1
        z = (z ^ (z >> np.uint64(27))) * _MIX2
        z = z ^ (z >> np.uint64(31))
    return (z % np.uint64(BUCKETS)).astype(np.int64)


def bucket_boundaries(weights: Sequence[int | float]) -> np.ndarray:
    """Upper bucket bound (exclusive) of each variant: cumulative weights scaled to BUCKETS."""
    w = np.asarray(weights, dtype=float)
    if w.size == 0 or np.any(w <= 0) or not np.all(np.isfinite(w)):
        raise ValueError(f"weights must be positive numbers, got {list(weights)!r}")
    bounds = np.rint(np.cumsum(w) / w.sum() * BUCKETS).astype(np.int64)
    bounds[-1] = BUCKETS
    return bounds


def variant_index_for(buckets: np.ndarray, weights: Sequence[int | float]) -> np.ndarray:
    """Index (into ``weights``) of the variant each bucket falls in."""
    return np.searchsorted(bucket_boundaries(weights), buckets, side="right")


def in_test_sample(salt: str, contact_ids: Sequence[int] | np.ndarray, share: float) -> np.ndarray:
    """Boolean mask: contacts that take part in the test when only ``share`` of them do."""
    if share >= 1.0:
        return np.ones(len(contact_ids), dtype=bool)
    return buckets_for(f"{salt}:sample", contact_ids) < int(round(share * BUCKETS))
