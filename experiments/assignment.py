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


# --- the same hash in PostgreSQL ------------------------------------------------------------
# PostgreSQL has no unsigned 64-bit type and its bigint arithmetic raises on overflow, so the
# SplitMix64 steps above run on 32-bit limbs held in bigints: every product is of a 32-bit limb
# by a 16-bit half of a constant (< 2^48), so nothing overflows, and the result is the low 64
# bits exactly as numpy's wrapping uint64 arithmetic gives them. Each step is its own subquery
# level (``OFFSET 0`` keeps the planner from pulling it up and re-evaluating a column's
# expression wherever it is used), so a row costs a few dozen integer operations.

_M32 = 0xFFFFFFFF


def _limbs(value: int) -> tuple[int, int]:
    return (value >> 32) & _M32, value & _M32


def _mul_add(x_hi: str, x_lo: str, factor: int, addend: int, out: str) -> tuple[dict, dict]:
    """Two levels computing ``(x × factor + addend) mod 2^64`` as limbs ``{out}_hi, {out}_lo``
    from the limb columns ``x_hi, x_lo``."""
    f_hi, f_lo = _limbs(int(factor))
    a_hi, a_lo = _limbs(int(addend))
    f_lo1, f_lo0 = f_lo >> 16, f_lo & 0xFFFF
    f_hi1, f_hi0 = f_hi >> 16, f_hi & 0xFFFF
    first = {
        # low limb × low half of the factor's low limb, plus the addend's low limb (< 2^49)
        f"{out}_a": f"{x_lo} * {f_lo0} + {a_lo}",
        # low limb × high half of the factor's low limb (< 2^48), shifted by 16 below
        f"{out}_b": f"{x_lo} * {f_lo1}",
        # the cross products that land in the high limb, mod 2^32
        f"{out}_c": (
            f"({x_hi} * {f_lo0} + ((({x_hi} * {f_lo1}) & 65535) << 16)"
            f" + {x_lo} * {f_hi0} + ((({x_lo} * {f_hi1}) & 65535) << 16) + {a_hi}) & {_M32}"
        ),
    }
    low_sum = f"({out}_a + (({out}_b & 65535) << 16))"
    second = {
        f"{out}_hi": f"(({low_sum} >> 32) + ({out}_b >> 16) + {out}_c) & {_M32}",
        f"{out}_lo": f"{low_sum} & {_M32}",
    }
    return first, second


def _xor_shift(hi: str, lo: str, shift: int, out: str) -> dict:
    """Limbs of ``z ^ (z >> shift)`` (logical shift, 0 < shift < 32)."""
    return {
        f"{out}_hi": f"{hi} # ({hi} >> {shift})",
        f"{out}_lo": f"{lo} # (({lo} >> {shift}) | (({hi} << {32 - shift}) & {_M32}))",
    }


def buckets_sql(
    source: str, *, id_column: str, salts: dict[str, str], keep: Sequence[str] = ()
) -> str:
    """A PostgreSQL ``SELECT`` over the relation ``source`` (a table name or a parenthesised
    query with an alias) giving its ``keep`` columns and, for each ``name → salt`` of ``salts``,
    a column ``name`` holding ``buckets_for(salt, id_column)``: the same integers numpy gives.

    Only integer literals derived from the salts are written into the text (no user string);
    it is meant for a parameterised ``cursor.execute`` (``%`` is written ``%%``)."""
    levels: list[dict[str, str]] = [{} for _ in range(11)]
    for name, salt in salts.items():
        key = int(salt_key(salt))
        h = f"h_{name}"
        levels[0][f"{h}_xh"] = f"({id_column} >> 32) & {_M32}"
        levels[0][f"{h}_xl"] = f"{id_column} & {_M32}"
        # z = key + id × golden
        first, second = _mul_add(f"{h}_xh", f"{h}_xl", int(_GOLDEN), key, f"{h}_1")
        levels[1].update(first)
        levels[2].update(second)
        levels[3].update(_xor_shift(f"{h}_1_hi", f"{h}_1_lo", 30, f"{h}_2"))
        first, second = _mul_add(f"{h}_2_hi", f"{h}_2_lo", int(_MIX1), 0, f"{h}_3")
        levels[4].update(first)
        levels[5].update(second)
        levels[6].update(_xor_shift(f"{h}_3_hi", f"{h}_3_lo", 27, f"{h}_4"))
        first, second = _mul_add(f"{h}_4_hi", f"{h}_4_lo", int(_MIX2), 0, f"{h}_5")
        levels[7].update(first)
        levels[8].update(second)
        levels[9].update(_xor_shift(f"{h}_5_hi", f"{h}_5_lo", 31, f"{h}_6"))
        # (hi × 2^32 + lo) mod BUCKETS, with 2^32 mod BUCKETS folded in (no overflow)
        levels[10][name] = (
            f"((({h}_6_hi %% {BUCKETS}) * {(1 << 32) % BUCKETS} + {h}_6_lo) %% {BUCKETS})::int"
        )
    carried = list(dict.fromkeys([*keep, id_column]))
    relation = source
    for depth, level in enumerate(levels[:-1]):
        columns = ", ".join([*carried, *(f"{expr} AS {name}" for name, expr in level.items())])
        relation = f"(SELECT {columns} FROM {relation} OFFSET 0) AS bucket_level_{depth}"  # noqa: S608
    columns = ", ".join([*keep, *(f"{expr} AS {name}" for name, expr in levels[-1].items())])
    return f"SELECT {columns} FROM {relation}"  # noqa: S608 — identifiers, integers
