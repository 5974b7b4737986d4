"""Simulated customers drawn from known BG/NBD and Gamma-Gamma parameters (vectorised)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Simulated:
    x: np.ndarray  # repeat purchases in (0, T]
    t_x: np.ndarray  # time of the last repeat purchase (0 without)
    T: np.ndarray  # observation length since the first purchase
    purchase_times: list[np.ndarray]  # per step: times of the k-th repeat purchase (NaN = none)
    m: np.ndarray  # mean spend of the repeat purchases (NaN without)
    spends: np.ndarray  # spend of every purchase step (customers × steps), NaN beyond x
    first_spend: np.ndarray


def simulate(
    *,
    n: int,
    seed: int,
    r: float,
    alpha: float,
    a: float,
    b: float,
    T_low: float,
    T_high: float,
    p: float = 6.0,
    q: float = 4.0,
    gamma: float = 15.0,
    max_steps: int = 400,
) -> Simulated:
    """BG/NBD: purchase rate λ ~ Gamma(r, α) (rate α), dropout p ~ Beta(a, b) after each repeat
    purchase; Gamma-Gamma: ν ~ Gamma(q, γ), each purchase's spend ~ Gamma(p, ν)."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(r, 1.0 / alpha, n)
    drop = rng.beta(a, b, n)
    T = rng.uniform(T_low, T_high, n)
    nu = rng.gamma(q, 1.0 / gamma, n)
    x = np.zeros(n)
    t_x = np.zeros(n)
    t = np.zeros(n)
    alive = np.ones(n, dtype=bool)
    times: list[np.ndarray] = []
    spends = []
    for _step in range(max_steps):
        if not alive.any():
            break
        gap = rng.exponential(1.0 / np.maximum(lam, 1e-12))
        nxt = t + gap
        bought = alive & (nxt <= T)
        x[bought] += 1
        t_x[bought] = nxt[bought]
        t = np.where(bought, nxt, t)
        times.append(np.where(bought, nxt, np.nan))
        spends.append(np.where(bought, rng.gamma(p, 1.0 / nu), np.nan))
        alive = bought & (rng.random(n) >= drop)
    spend_matrix = np.column_stack(spends) if spends else np.zeros((n, 0))
    total = np.nansum(spend_matrix, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        m = total / x
    return Simulated(
        x=x,
        t_x=t_x,
        T=T,
        purchase_times=times,
        m=np.where(x > 0, m, np.nan),
        spends=spend_matrix,
        first_spend=rng.gamma(p, 1.0 / nu),
    )
