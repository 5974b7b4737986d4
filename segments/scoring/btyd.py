"""Buy-till-you-die models: BG/NBD (purchases) and Gamma-Gamma (spend per purchase).

Pure numpy/scipy (Django only for translated error messages). Everything is vectorised over customers (one array element per
customer); fits maximise the published log-likelihoods with analytic gradients on log-parameters.

References
- Fader, Hardie & Lee (2005a), "Counting Your Customers the Easy Way: An Alternative to the
  Pareto/NBD Model", Marketing Science 24(2) — BG/NBD likelihood (eq. 6), P(alive) (eq. 11),
  conditional expectation (eq. 10).
- Fader, Hardie & Lee (2005b), "RFM and CLV: Using Iso-Value Curves for Customer Base Analysis",
  J. Marketing Research 42(4), and Fader & Hardie (2013) "The Gamma-Gamma Model of Monetary
  Value" — Gamma-Gamma likelihood and conditional expected spend.

Inputs in "summary RFM" form, time in one unit (days or weeks):
``x`` repeat purchases (distinct purchase periods after the first), ``t_x`` time of the last
purchase since the first, ``T`` time from the first purchase to the calibration end, ``m``
mean spend of the repeat purchases (only used where ``x > 0``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from django.utils.translation import gettext_lazy as _
from scipy import optimize
from scipy.special import digamma, gammaln, hyp2f1
from threadpoolctl import threadpool_limits  # installed with scikit-learn

LOG_BOUND = 15.0  # parameters live in [e^-15, e^15]; a fit ending on a bound did not converge


class FitError(ValueError):
    """A fit that cannot give trustworthy parameters; the message says why (for a marketer)."""


@dataclass(frozen=True)
class BgNbdParams:
    r: float
    alpha: float
    a: float
    b: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class GammaGammaParams:
    p: float
    q: float
    gamma: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class FitResult:
    params: BgNbdParams | GammaGammaParams
    log_likelihood: float
    iterations: int
    # Standard errors of the log-parameters (inverse observed information), same order.
    log_se: tuple[float, ...]


# --- BG/NBD -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Levels:
    """A column as its distinct values and, per row, the index of the row's value: functions of
    the column are evaluated once per distinct value and gathered (x has a few dozen distinct
    values, T and t_x at most one per day, whatever the number of customers)."""

    values: np.ndarray
    index: np.ndarray

    @classmethod
    def of(cls, column: np.ndarray) -> _Levels:
        values, index = np.unique(np.asarray(column, dtype=np.float64), return_inverse=True)
        return cls(values, index.reshape(-1))

    def rows(self) -> np.ndarray:
        return self.values[self.index]


class _Rising:
    """``log Γ(c + x) − log Γ(c)`` and ``ψ(c + x) − ψ(c)`` for the distinct counts ``x``.

    Counts of purchases are small non-negative integers: then these are the finite sums
    ``Σ_{k<x} log(c + k)`` and ``Σ_{k<x} 1 / (c + k)``, which stay exact when ``c`` is huge
    (the homogeneous-dropout limit of BG/NBD sends a and b to infinity, where a difference of
    two log-gammas of ~10⁷ loses half its digits and stalls the line search). Other values
    fall back to the special functions."""

    MAX_SUM_TERMS = 100_000

    def __init__(self, xv: np.ndarray) -> None:
        self.xv = xv
        self.integral = bool(
            len(xv)
            and np.all(xv >= 0)
            and np.all(xv == np.round(xv))
            and xv.max() <= self.MAX_SUM_TERMS
        )
        if self.integral:
            self.k = np.arange(int(xv.max()), dtype=np.float64)
            self.at = xv.astype(np.int64)

    def _cumulative(self, terms: np.ndarray) -> np.ndarray:
        return np.r_[0.0, np.cumsum(terms)][self.at]

    def log_gamma(self, c: float) -> np.ndarray:
        if self.integral:
            return self._cumulative(np.log(c + self.k))
        return gammaln(c + self.xv) - gammaln(c)

    def log_gamma_ratio(self, c: float, d: float) -> np.ndarray:
        """``log[Γ(c + x) Γ(d) / (Γ(c) Γ(d + x))]``."""
        if self.integral:
            return self._cumulative(np.log((c + self.k) / (d + self.k)))
        return gammaln(c + self.xv) - gammaln(c) - gammaln(d + self.xv) + gammaln(d)

    def digamma(self, c: float) -> np.ndarray:
        if self.integral:
            return self._cumulative(1.0 / (c + self.k))
        return digamma(c + self.xv) - digamma(c)


@dataclass(frozen=True)
class _BgNbdData:
    x: _Levels
    t_x: _Levels
    T: _Levels
    x_rows: np.ndarray

    @classmethod
    def of(cls, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> _BgNbdData:
        levels = _Levels.of(x)
        return cls(levels, _Levels.of(t_x), _Levels.of(T), levels.rows())


def _bgnbd_terms(
    log_params: np.ndarray, data: _BgNbdData
) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """:func:`bgnbd_log_likelihood_terms` on prepared columns: per-row log-likelihood and the
    gradient as one array per log-parameter."""
    r, alpha, a, b = np.exp(log_params)
    xv = data.x.values
    has_v = xv > 0
    # b + x - 1 is only used where x > 0 (it would be b - 1, possibly negative, at x = 0).
    bx1_v = np.where(has_v, b + xv - 1.0, 1.0)
    # Terms that depend on x only: once per distinct x.
    rising = _Rising(xv)
    a12_v = rising.log_gamma(r) + r * np.log(alpha) + rising.log_gamma_ratio(b, a + b)
    log_a_bx1_v = np.where(has_v, np.log(a) - np.log(bx1_v), -np.inf)
    d_r_v = rising.digamma(r) + np.log(alpha)
    d_a_v = -rising.digamma(a + b)
    d_b_v = rising.digamma(b) - rising.digamma(a + b)
    # Terms that depend on T or t_x only: once per distinct value.
    log_T_v, inv_T_v = np.log(alpha + data.T.values), 1.0 / (alpha + data.T.values)
    log_t_v, inv_t_v = np.log(alpha + data.t_x.values), 1.0 / (alpha + data.t_x.values)
    xi, Ti, ti = data.x.index, data.T.index, data.t_x.index
    rx = r + data.x_rows
    log_T, log_t = log_T_v[Ti], log_t_v[ti]
    a3 = -rx * log_T
    a4 = log_a_bx1_v[xi] - rx * log_t  # -inf where x == 0
    # tail = logaddexp(a3, a4), with the two weights a3 and a4 carry in it.
    top = np.maximum(a3, a4)
    e3, e4 = np.exp(a3 - top), np.exp(a4 - top)  # e4 = 0 where x == 0
    total = e3 + e4
    ll = a12_v[xi] + top + np.log(total)
    w3, w4 = e3 / total, e4 / total
    d_r = d_r_v[xi] - w3 * log_T - w4 * log_t
    d_alpha = r / alpha - rx * (w3 * inv_T_v[Ti] + w4 * inv_t_v[ti])
    d_a = d_a_v[xi] + w4 / a
    d_b = d_b_v[xi] - w4 / bx1_v[xi]
    return ll, (d_r * r, d_alpha * alpha, d_a * a, d_b * b)


def bgnbd_log_likelihood_terms(
    log_params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-customer log-likelihood and its gradient w.r.t. ``log(r, alpha, a, b)`` (n × 4)."""
    ll, grad = _bgnbd_terms(log_params, _BgNbdData.of(x, t_x, T))
    return ll, np.stack(grad, axis=1)


def bgnbd_log_likelihood(
    params: BgNbdParams, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> float:
    """Total BG/NBD log-likelihood of the customers at ``params`` (FHL 2005a, eq. 6)."""
    log_params = np.log([params.r, params.alpha, params.a, params.b])
    groups = compress(x, t_x, T)
    ll, _grad = _bgnbd_terms(log_params, _BgNbdData.of(*groups.columns))
    return float(np.dot(groups.weights, ll))


@dataclass(frozen=True)
class Groups:
    """Customers grouped by identical values of some columns: ``columns`` are the distinct
    rows (sorted), ``weights`` how many customers share each, ``inverse[i]`` the group of
    customer ``i``. Exact for anything that is a function of those columns only (a likelihood
    is a weighted sum over groups; a prediction is gathered back with ``inverse``)."""

    columns: tuple[np.ndarray, ...]
    weights: np.ndarray
    inverse: np.ndarray


def compress(*columns: np.ndarray) -> Groups:
    """Group the rows of ``columns`` (equal lengths) by identical values (one lexsort)."""
    stacked = np.column_stack([np.asarray(c, dtype=np.float64) for c in columns])
    n = len(stacked)
    if n == 0:
        empty = np.zeros(0)
        return Groups(tuple(empty for _ in columns), empty, np.zeros(0, dtype=np.int64))
    order = np.lexsort(stacked.T[::-1])
    ordered = stacked[order]
    new_group = np.r_[True, np.any(ordered[1:] != ordered[:-1], axis=1)]
    starts = np.flatnonzero(new_group)
    weights = np.diff(np.r_[starts, n]).astype(np.float64)
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = np.cumsum(new_group) - 1
    unique = ordered[starts]
    return Groups(tuple(unique[:, i] for i in range(unique.shape[1])), weights, inverse)


def _flat_ridge(objective, at: np.ndarray, at_bound: np.ndarray, ridges, n: float) -> bool:
    """True when every parameter on a bound belongs to a shape/scale pair that ran off
    *together* along a ridge where the likelihood no longer changes (the mixing distribution
    collapsed to a point: a homogeneous dropout probability or purchase rate). That limit is a
    valid, well-defined model; anything else on a bound is a failed fit."""
    for i in np.flatnonzero(at_bound):
        pair = next((p for p in ridges if i in p), None)
        if pair is None or not all(at[j] > LOG_BOUND - 4 for j in pair):
            return False
        back = at.copy()
        back[list(pair)] -= 1.0
        if (objective(back)[0] - objective(at)[0]) * n > 0.5:
            return False
    return True


RESTARTS = 3  # L-BFGS-B restarts (fresh curvature memory) after a failed line search


def _maximise(
    terms,
    data,
    weights: np.ndarray,
    start: np.ndarray,
    what: str,
    ridges: tuple[tuple[int, int], ...] = (),
) -> tuple[np.ndarray, float, int, tuple[float, ...]]:
    """Maximise ``sum(weights * terms(log_params, data)[0])`` by L-BFGS-B on the log-parameters.

    A line search that fails (``ABNORMAL``), which happens when the optimum runs off along a
    flat ridge, is restarted from where it stopped with a fresh curvature memory; the usual
    convergence checks then apply to the final point."""
    n = weights.sum()

    def objective(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        with np.errstate(all="ignore"):
            ll, grad = terms(log_params, data)
        value = -np.dot(weights, ll) / n
        gradient = -np.array([np.dot(weights, column) for column in grad]) / n
        if not np.isfinite(value) or not np.all(np.isfinite(gradient)):
            return 1e10, np.zeros_like(log_params)
        return float(value), gradient

    # The sums are over vectors of a few hundred thousand: BLAS threads only add wake-up
    # costs (seconds on a busy 2-core machine), so the fit runs single-threaded.
    with threadpool_limits(limits=1, user_api="blas"):
        return _minimise(objective, start, what, ridges, n)


def _minimise(objective, start: np.ndarray, what: str, ridges, n: float):
    """Minimise the mean negative log-likelihood; (log-parameters, log-likelihood, iterations,
    log-parameter standard errors) or FitError."""
    bounds = [(-LOG_BOUND, LOG_BOUND)] * len(start)
    iterations = 0
    at = start
    for _attempt in range(1 + RESTARTS):
        result = optimize.minimize(
            objective,
            at,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": 1000, "ftol": 1e-13, "gtol": 1e-8},
        )
        iterations += int(result.nit)
        if result.success or not np.all(np.isfinite(result.x)) or result.nit == 0:
            break
        at = result.x
    # A line search that stalls on a flat likelihood with a vanishing gradient has converged.
    stalled_flat = np.max(np.abs(objective(result.x)[1])) < 1e-6
    if not (result.success or stalled_flat) or not np.all(np.isfinite(result.x)):
        raise FitError(
            _("the %(model)s fit did not converge (%(reason)s).")
            % {"model": what, "reason": result.message}
        )
    at_bound = np.abs(result.x) > LOG_BOUND - 1e-3
    if np.any(at_bound) and not _flat_ridge(objective, result.x, at_bound, ridges, n):
        raise FitError(
            _(
                "the %(model)s fit did not converge: a parameter ran to the edge of its range "
                "(the purchase history does not identify the model)."
            )
            % {"model": what}
        )
    log_se = _log_standard_errors(objective, result.x, n)
    return result.x, float(-result.fun * n), iterations, log_se


def _log_standard_errors(objective, at: np.ndarray, n: float) -> tuple[float, ...]:
    """Standard errors of the log-parameters from a finite-difference Hessian of the mean NLL."""
    k = len(at)
    hessian = np.empty((k, k))
    step = 1e-5
    for i in range(k):
        shift = np.zeros(k)
        shift[i] = step
        hessian[i] = (objective(at + shift)[1] - objective(at - shift)[1]) / (2 * step)
    hessian = (hessian + hessian.T) / 2 * n
    try:
        covariance = np.linalg.inv(hessian)
    except np.linalg.LinAlgError:
        return tuple(float("nan") for _ in range(k))
    diag = np.diag(covariance)
    return tuple(float(np.sqrt(v)) if v > 0 else float("nan") for v in diag)


def bgnbd_fit(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> FitResult:
    """Maximum-likelihood BG/NBD parameters; FitError when the data cannot support a fit."""
    x, t_x, T = (np.asarray(v, dtype=np.float64) for v in (x, t_x, T))
    if len(x) == 0:
        raise FitError(_("there are no customers to fit."))
    if not np.any(x > 0):
        raise FitError(
            _("no customer has bought twice: the repeat-purchase model needs repeat buyers.")
        )
    if np.any(T <= 0) or np.any(t_x < 0) or np.any(t_x > T + 1e-9):
        raise FitError(_("inconsistent purchase history (need 0 ≤ recency ≤ T and T > 0)."))
    # Start: r/alpha ≈ repeat rate, a small, b a few times a (a churn probability of ~20 %).
    rate = max(float(x.mean() / T.mean()), 1e-6)
    start = np.log([1.0, 1.0 / rate, 1.0, 4.0])
    groups = compress(x, t_x, T)
    log_params, ll, nit, log_se = _maximise(
        _bgnbd_terms,
        _BgNbdData.of(*groups.columns),
        groups.weights,
        start,
        "BG/NBD",
        ridges=((0, 1), (2, 3)),
    )
    r, alpha, a, b = np.exp(log_params)
    return FitResult(BgNbdParams(r=r, alpha=alpha, a=a, b=b), ll, nit, log_se)


def bgnbd_probability_alive(
    params: BgNbdParams, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """P(alive | x, t_x, T) (FHL 2005a, eq. 11); 1 for customers without repeat purchase."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    has = x > 0
    bx1 = np.where(has, b + x - 1.0, 1.0)
    log_ratio = np.log(a) - np.log(bx1) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
    return np.where(has, 1.0 / (1.0 + np.exp(log_ratio)), 1.0)


def _expected_purchases_if_alive(
    params: BgNbdParams, t: np.ndarray, x: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """The numerator of FHL 2005a eq. 10 (expected purchases in the next ``t`` of a customer
    known to be alive): a function of (x, T, t) only, element-wise."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    hyp = hyp2f1(r + x, b + x, a + b + x - 1.0, t / (alpha + T + t))
    first = (a + b + x - 1.0) / (a - 1.0)
    return first * (1.0 - np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + t))) * hyp)


def bgnbd_expected_purchases(
    params: BgNbdParams, t: float | np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """E[purchases in the next ``t`` time units | x, t_x, T] (FHL 2005a, eq. 10).

    The Gauss hypergeometric part depends on (x, T, t) only: it is evaluated once per distinct
    triple (a few thousand for a million customers) and gathered; P(alive) is element-wise."""
    x, t_x, T, t = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (x, t_x, T, t)))
    shape = x.shape
    x, t_x, T, t = (np.ravel(v) for v in (x, t_x, T, t))
    groups = compress(x, T, t)
    if_alive = _expected_purchases_if_alive(params, groups.columns[2], *groups.columns[:2])
    expected = if_alive[groups.inverse] * bgnbd_probability_alive(params, x, t_x, T)
    return expected.reshape(shape)


def bgnbd_population_expected_purchases(params: BgNbdParams, t: np.ndarray) -> np.ndarray:
    """E[X(t)]: expected repeat purchases of a new customer in ``t`` (FHL 2005a, eq. 7)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    t = np.asarray(t, dtype=np.float64)
    hyp = hyp2f1(r, b, a + b - 1.0, t / (alpha + t))
    return (a + b - 1.0) / (a - 1.0) * (1.0 - (alpha / (alpha + t)) ** r * hyp)


# --- Gamma-Gamma --------------------------------------------------------------------------


@dataclass(frozen=True)
class _GammaGammaData:
    x: _Levels
    x_rows: np.ndarray
    log_m: np.ndarray
    mx: np.ndarray

    @classmethod
    def of(cls, x: np.ndarray, m: np.ndarray) -> _GammaGammaData:
        levels = _Levels.of(x)
        x_rows = levels.rows()
        m = np.asarray(m, dtype=np.float64)
        return cls(levels, x_rows, np.log(m), m * x_rows)


def _gamma_gamma_terms(
    log_params: np.ndarray, data: _GammaGammaData
) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """:func:`gamma_gamma_log_likelihood_terms` on prepared columns: per-row log-likelihood
    and the gradient as one array per log-parameter."""
    p, q, g = np.exp(log_params)
    xv = data.x.values
    px_v = p * xv
    # Terms that depend on x only: once per distinct x.
    psi_v = digamma(px_v + q)
    c_v = gammaln(px_v + q) - gammaln(px_v) - gammaln(q) + q * np.log(g) + px_v * np.log(xv)
    d_p_v = xv * (psi_v - digamma(px_v) + np.log(xv))
    d_q_v = psi_v - digamma(q) + np.log(g)
    xi = data.x.index
    px = p * data.x_rows
    log_gmx = np.log(g + data.mx)
    ll = c_v[xi] + (px - 1.0) * data.log_m - (px + q) * log_gmx
    d_p = d_p_v[xi] + data.x_rows * (data.log_m - log_gmx)
    d_q = d_q_v[xi] - log_gmx
    d_g = q / g - (px + q) / (g + data.mx)
    return ll, (d_p * p, d_q * q, d_g * g)


def gamma_gamma_log_likelihood_terms(
    log_params: np.ndarray, x: np.ndarray, m: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-customer Gamma-Gamma log-likelihood of mean spend ``m`` over ``x`` purchases and its
    gradient w.r.t. ``log(p, q, gamma)``."""
    ll, grad = _gamma_gamma_terms(log_params, _GammaGammaData.of(x, m))
    return ll, np.stack(grad, axis=1)


def gamma_gamma_log_likelihood(params: GammaGammaParams, x: np.ndarray, m: np.ndarray) -> float:
    log_params = np.log([params.p, params.q, params.gamma])
    ll, _grad = gamma_gamma_log_likelihood_terms(
        log_params, np.asarray(x, np.float64), np.asarray(m, np.float64)
    )
    return float(ll.sum())


def gamma_gamma_fit(x: np.ndarray, m: np.ndarray) -> FitResult:
    """Maximum-likelihood Gamma-Gamma parameters on repeat buyers (``x > 0``, ``m > 0``)."""
    x = np.asarray(x, dtype=np.float64)
    m = np.asarray(m, dtype=np.float64)
    keep = (x > 0) & np.isfinite(m) & (m > 0)
    x, m = x[keep], m[keep]
    if len(x) < 2:
        raise FitError(_("too few repeat buyers with a purchase amount to fit spend per purchase."))
    if np.ptp(m) == 0:
        raise FitError(_("every repeat buyer spends exactly the same: spend cannot be modelled."))
    mean = float(m.mean())
    start = np.log([2.0, 3.0, mean])
    groups = compress(x, m)
    log_params, ll, nit, log_se = _maximise(
        _gamma_gamma_terms,
        _GammaGammaData.of(*groups.columns),
        groups.weights,
        start,
        "Gamma-Gamma",
        ridges=((1, 2),),
    )
    p, q, g = np.exp(log_params)
    if q <= 1.0:
        raise FitError(
            _(
                "the spend model has no finite mean (q ≤ 1): spend per purchase is too "
                "dispersed to predict a value."
            )
        )
    return FitResult(GammaGammaParams(p=p, q=q, gamma=g), ll, nit, log_se)


def gamma_gamma_expected_spend(
    params: GammaGammaParams, x: np.ndarray, m: np.ndarray
) -> np.ndarray:
    """E[spend per purchase | x, m]: a weighted mean of the population mean and the customer's
    own mean (Fader & Hardie 2013, eq. 5); the population mean where ``x == 0``."""
    p, q, g = params.p, params.q, params.gamma
    x = np.asarray(x, dtype=np.float64)
    m = np.where(np.isfinite(m) & (x > 0), m, 0.0)
    return (g + m * x) * p / (p * x + q - 1.0)


def discounted_clv(
    params: BgNbdParams,
    spend: np.ndarray,
    x: np.ndarray,
    t_x: np.ndarray,
    T: np.ndarray,
    *,
    months: int,
    month_length: float,
    monthly_discount: float,
) -> np.ndarray:
    """Expected spend over ``months`` months, each month's expected purchases discounted at
    ``monthly_discount`` per month (FHL 2005b's discrete approximation, as in lifetimes)."""
    x, t_x, T = (np.asarray(v, dtype=np.float64) for v in (x, t_x, T))
    # Each month's expected purchases are P(alive) × a function of (x, T) only: the monthly
    # sum runs once per distinct (x, T) and is gathered back.
    groups = compress(x, T)
    gx, gT = groups.columns
    total = np.zeros(len(gx), dtype=np.float64)
    previous = np.zeros(len(gx), dtype=np.float64)
    for i in range(1, months + 1):
        cumulative = _expected_purchases_if_alive(params, i * month_length, gx, gT)
        total += (cumulative - previous) / (1.0 + monthly_discount) ** i
        previous = cumulative
    return total[groups.inverse] * bgnbd_probability_alive(params, x, t_x, T) * spend


__all__ = [
    "BgNbdParams",
    "FitError",
    "FitResult",
    "GammaGammaParams",
    "Groups",
    "bgnbd_expected_purchases",
    "bgnbd_fit",
    "bgnbd_log_likelihood",
    "bgnbd_population_expected_purchases",
    "bgnbd_probability_alive",
    "compress",
    "discounted_clv",
    "gamma_gamma_expected_spend",
    "gamma_gamma_fit",
    "gamma_gamma_log_likelihood",
]
