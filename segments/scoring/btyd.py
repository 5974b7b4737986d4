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


def bgnbd_log_likelihood_terms(
    log_params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-customer log-likelihood and its gradient w.r.t. ``log(r, alpha, a, b)`` (n × 4)."""
    r, alpha, a, b = np.exp(log_params)
    has = x > 0
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + T)
    # b + x - 1 is only used where x > 0 (it would be b - 1, possibly negative, at x = 0).
    bx1 = np.where(has, b + x - 1.0, 1.0)
    a4 = np.where(has, np.log(a) - np.log(bx1) - (r + x) * np.log(alpha + t_x), -np.inf)
    tail = np.logaddexp(a3, a4)
    ll = a1 + a2 + tail
    w3 = np.exp(a3 - tail)
    w4 = np.where(has, np.exp(a4 - tail), 0.0)
    d_r = digamma(r + x) - digamma(r) + np.log(alpha) - w3 * np.log(alpha + T)
    d_r -= w4 * np.log(alpha + t_x)
    d_alpha = r / alpha - w3 * (r + x) / (alpha + T) - w4 * (r + x) / (alpha + t_x)
    d_a = digamma(a + b) - digamma(a + b + x) + w4 / a
    d_b = digamma(a + b) + digamma(b + x) - digamma(b) - digamma(a + b + x) - w4 / bx1
    grad = np.stack([d_r * r, d_alpha * alpha, d_a * a, d_b * b], axis=1)
    return ll, grad


def bgnbd_log_likelihood(
    params: BgNbdParams, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> float:
    """Total BG/NBD log-likelihood of the customers at ``params`` (FHL 2005a, eq. 6)."""
    log_params = np.log([params.r, params.alpha, params.a, params.b])
    *columns, weights = _compress(x, t_x, T)
    ll, _grad = bgnbd_log_likelihood_terms(log_params, *columns)
    return float(np.dot(weights, ll))


def _compress(*columns: np.ndarray) -> tuple[np.ndarray, ...]:
    """Unique rows of the columns with their multiplicity (the likelihood is a sum over rows)."""
    stacked = np.column_stack([np.asarray(c, dtype=np.float64) for c in columns])
    unique, counts = np.unique(stacked, axis=0, return_counts=True)
    return (*(unique[:, i] for i in range(unique.shape[1])), counts.astype(np.float64))


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


def _maximise(
    terms,
    columns: tuple[np.ndarray, ...],
    start: np.ndarray,
    what: str,
    ridges: tuple[tuple[int, int], ...] = (),
) -> tuple[np.ndarray, float, int, tuple[float, ...]]:
    *cols, weights = _compress(*columns)
    n = weights.sum()

    def objective(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        with np.errstate(all="ignore"):
            ll, grad = terms(log_params, *cols)
        value = -np.dot(weights, ll) / n
        gradient = -(weights @ grad) / n
        if not np.isfinite(value) or not np.all(np.isfinite(gradient)):
            return 1e10, np.zeros_like(log_params)
        return float(value), gradient

    bounds = [(-LOG_BOUND, LOG_BOUND)] * len(start)
    result = optimize.minimize(
        objective,
        start,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": 1000, "ftol": 1e-13, "gtol": 1e-8},
    )
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
    return result.x, float(-result.fun * n), int(result.nit), log_se


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
    log_params, ll, nit, log_se = _maximise(
        bgnbd_log_likelihood_terms, (x, t_x, T), start, "BG/NBD", ridges=((0, 1), (2, 3))
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


def bgnbd_expected_purchases(
    params: BgNbdParams, t: float | np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> np.ndarray:
    """E[purchases in the next ``t`` time units | x, t_x, T] (FHL 2005a, eq. 10)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    t = np.asarray(t, dtype=np.float64)
    has = x > 0
    hyp = hyp2f1(r + x, b + x, a + b + x - 1.0, t / (alpha + T + t))
    first = (a + b + x - 1.0) / (a - 1.0)
    second = 1.0 - np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + T + t))) * hyp
    bx1 = np.where(has, b + x - 1.0, 1.0)
    denominator = 1.0 + np.where(
        has, a / bx1 * np.exp((r + x) * (np.log(alpha + T) - np.log(alpha + t_x))), 0.0
    )
    return first * second / denominator


def bgnbd_population_expected_purchases(params: BgNbdParams, t: np.ndarray) -> np.ndarray:
    """E[X(t)]: expected repeat purchases of a new customer in ``t`` (FHL 2005a, eq. 7)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    t = np.asarray(t, dtype=np.float64)
    hyp = hyp2f1(r, b, a + b - 1.0, t / (alpha + t))
    return (a + b - 1.0) / (a - 1.0) * (1.0 - (alpha / (alpha + t)) ** r * hyp)


# --- Gamma-Gamma --------------------------------------------------------------------------


def gamma_gamma_log_likelihood_terms(
    log_params: np.ndarray, x: np.ndarray, m: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-customer Gamma-Gamma log-likelihood of mean spend ``m`` over ``x`` purchases and its
    gradient w.r.t. ``log(p, q, gamma)``."""
    p, q, g = np.exp(log_params)
    px = p * x
    ll = (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(g)
        + px * np.log(x)
        + (px - 1.0) * np.log(m)
        - (px + q) * np.log(g + m * x)
    )
    log_gmx = np.log(g + m * x)
    d_p = x * (digamma(px + q) - digamma(px) + np.log(x) + np.log(m) - log_gmx)
    d_q = digamma(px + q) - digamma(q) + np.log(g) - log_gmx
    d_g = q / g - (px + q) / (g + m * x)
    return ll, np.stack([d_p * p, d_q * q, d_g * g], axis=1)


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
    log_params, ll, nit, log_se = _maximise(
        gamma_gamma_log_likelihood_terms, (x, m), start, "Gamma-Gamma", ridges=((1, 2),)
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
    total = np.zeros(len(x), dtype=np.float64)
    previous = np.zeros(len(x), dtype=np.float64)
    for i in range(1, months + 1):
        cumulative = bgnbd_expected_purchases(params, i * month_length, x, t_x, T)
        total += (cumulative - previous) / (1.0 + monthly_discount) ** i
        previous = cumulative
    return total * spend


__all__ = [
    "BgNbdParams",
    "FitError",
    "FitResult",
    "GammaGammaParams",
    "bgnbd_expected_purchases",
    "bgnbd_fit",
    "bgnbd_log_likelihood",
    "bgnbd_population_expected_purchases",
    "bgnbd_probability_alive",
    "discounted_clv",
    "gamma_gamma_expected_spend",
    "gamma_gamma_fit",
    "gamma_gamma_log_likelihood",
]
