"""Statistics for A/B/n experiments: pure functions, no Django.

Every public function validates its inputs (``ValueError`` with a message naming the argument)
and returns a frozen dataclass or plain numbers. Undefined quantities (an arm without recipients,
zero variance, a rate of 0 used as a denominator) come back as ``nan`` instead of raising; a
``nan`` p-value is never significant. Methods and references: ``docs/experiments_methods.md``.

Counts are passed as ``(n, x)`` pairs: ``n`` recipients (or exposures) and ``x`` of them who
converted. Differences and lifts are always *treatment minus control*.

The closed-form statistics are written out here (they are a few lines each and are vectorised,
which the simulations in ``tests/experiments/test_statistics_simulation.py`` rely on) and are
checked against statsmodels and scipy in ``tests/experiments/test_statistics.py``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import integrate, special
from scipy import stats as sps
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize

__all__ = [
    "DEFAULT_MSPRT_TAU2",
    "SRM_ALERT_P",
    "MeanComparison",
    "MeanSummary",
    "OmnibusResult",
    "ProportionComparison",
    "SequentialComparison",
    "SequentialHistory",
    "Verdict",
    "VerdictCode",
    "additional_sample_needed",
    "compare_means",
    "compare_proportions",
    "compare_proportions_omnibus",
    "holm",
    "msprt_p_values",
    "sample_size_per_variant",
    "sequential_proportions",
    "sequential_proportions_history",
    "srm_p_value",
    "two_proportion_z_test",
    "verdict",
]

#: p-value of the sample-ratio-mismatch test below which results must not be trusted. Strict on
#: purpose (a false alarm in 1 of 1,000 healthy experiments), as Fabijan et al. (2019) advise.
SRM_ALERT_P = 0.001

#: Default variance of the normal mixing distribution of the mSPRT, on the scale of the
#: difference of conversion rates: tau = 0.01, i.e. effects of about one percentage point.
#: Suits rates between 1 % and 20 %; pick ``(expected absolute difference) ** 2`` otherwise,
#: *before* looking at the data.
DEFAULT_MSPRT_TAU2 = 1e-4

CountPair = tuple[int, int]
Interval = tuple[float, float]

_NAN = float("nan")
_NAN_INTERVAL: Interval = (_NAN, _NAN)


# --------------------------------------------------------------------------------------------
# Input validation
# --------------------------------------------------------------------------------------------


def _check_alpha(alpha: float, name: str = "alpha") -> float:
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be a number strictly between 0 and 1, got {alpha!r}"
        ) from None
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be strictly between 0 and 1, got {alpha!r}")
    return value


def _check_count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValueError(f"{what} must be a non-negative integer, got {value!r}")
    if not math.isfinite(value) or float(value) != int(value):
        raise ValueError(f"{what} must be a non-negative integer, got {value!r}")
    if value < 0:
        raise ValueError(f"{what} must be a non-negative integer, got {value!r}")
    return int(value)


def _check_pair(pair: Any, arm: str) -> CountPair:
    """Validate an ``(n, x)`` pair: n recipients, x conversions, 0 <= x <= n."""
    try:
        n_raw, x_raw = pair
    except (TypeError, ValueError):
        raise ValueError(
            f"{arm} must be a pair (n, x) of recipients and conversions, got {pair!r}"
        ) from None
    n = _check_count(n_raw, f"{arm} n (recipients)")
    x = _check_count(x_raw, f"{arm} x (conversions)")
    if x > n:
        raise ValueError(f"{arm} has more conversions than recipients: x={x} > n={n}")
    return n, x


def _check_count_arrays(*pairs: tuple[Any, Any]) -> list[np.ndarray]:
    """Validate array versions of ``(n, x)`` pairs; return float arrays n1, x1, n2, x2, ..."""
    out: list[np.ndarray] = []
    for n_raw, x_raw in pairs:
        n = np.asarray(n_raw, dtype=float)
        x = np.asarray(x_raw, dtype=float)
        for arr, what in ((n, "n (recipients)"), (x, "x (conversions)")):
            if not np.all(np.isfinite(arr)) or np.any(arr < 0) or np.any(arr != np.round(arr)):
                raise ValueError(f"{what} must be non-negative integers")
        if np.any(x > n):
            raise ValueError("conversions x cannot exceed recipients n")
        out.extend((n, x))
    return out


def _scalar(value: Any) -> float:
    return float(np.asarray(value, dtype=float))


# --------------------------------------------------------------------------------------------
# Fixed-horizon comparison of two proportions
# --------------------------------------------------------------------------------------------


def two_proportion_z_test(
    control_n: Any, control_x: Any, treatment_n: Any, treatment_x: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided two-proportion z-test with pooled variance, vectorised over numpy arrays.

    Returns ``(z, p_value)`` arrays (broadcast shape), ``z = (p_t - p_c) / se_pooled``. Same
    numbers as statsmodels ``proportions_ztest([x_t, x_c], [n_t, n_c])``; ``nan`` where an arm
    is empty or the pooled rate is 0 or 1 (no variance, no test).
    """
    n_c, x_c, n_t, x_t = _check_count_arrays((control_n, control_x), (treatment_n, treatment_x))
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = (x_c + x_t) / (n_c + n_t)
        se = np.sqrt(pooled * (1.0 - pooled) * (1.0 / n_c + 1.0 / n_t))
        z = (x_t / n_t - x_c / n_c) / se
        z = np.where((n_c > 0) & (n_t > 0) & (se > 0), z, np.nan)
    p_value = 2.0 * sps.norm.sf(np.abs(z))
    return z, p_value


@dataclass(frozen=True, slots=True)
class ProportionComparison:
    """Treatment versus control on a conversion rate (see :func:`compare_proportions`)."""

    control_rate: float
    treatment_rate: float
    abs_diff: float
    abs_ci: Interval
    rel_lift: float
    rel_ci: Interval
    z_statistic: float
    p_value: float
    significant: bool
    prob_beat_control: float
    expected_loss: float
    alpha: float


def _beta_pdf(p: float, a: float, b: float, log_norm: float) -> float:
    return math.exp(special.xlogy(a - 1.0, p) + special.xlog1py(b - 1.0, -p) - log_norm)


def _integrate_against_beta(func: Any, a: float, b: float, extra_points: Sequence[float]) -> float:
    """``E[func(P)]`` for ``P ~ Beta(a, b)``, by adaptive quadrature (``scipy.integrate.quad``).

    The integral runs between the 1e-13 and 1 - 1e-13 quantiles of P (the mass left out is
    below 2e-13); ``extra_points`` (e.g. where the other posterior changes fastest) are handed to
    the quadrature as break points.
    """
    lower = float(special.betaincinv(a, b, 1e-13))
    upper = float(special.betainccinv(a, b, 1e-13))
    log_norm = float(special.betaln(a, b))
    breaks = sorted({a_point for a_point in extra_points if lower < a_point < upper})
    value, _ = integrate.quad(
        lambda p: _beta_pdf(p, a, b, log_norm) * func(p),
        lower,
        upper,
        points=breaks or None,
        epsabs=1e-13,
        epsrel=1e-10,
        limit=500,
    )
    return float(value)


def _beta_posteriors(control: CountPair, treatment: CountPair) -> tuple[float, ...]:
    (n_c, x_c), (n_t, x_t) = control, treatment
    return 1.0 + x_c, 1.0 + n_c - x_c, 1.0 + x_t, 1.0 + n_t - x_t


def _beta_variance(a: float, b: float) -> float:
    return a * b / ((a + b) ** 2 * (a + b + 1.0))


def _prob_beat_control(control: CountPair, treatment: CountPair) -> float:
    """P(p_t > p_c) under independent Beta(1 + x, 1 + n - x) posteriors (uniform priors).

    One-dimensional integral of one posterior's density times the other's CDF; the density
    integrated against is the narrower one, so the CDF factor is smooth over the range.
    """
    a_c, b_c, a_t, b_t = _beta_posteriors(control, treatment)
    mean_c, mean_t = a_c / (a_c + b_c), a_t / (a_t + b_t)
    if _beta_variance(a_t, b_t) <= _beta_variance(a_c, b_c):
        # P(p_t > p_c) = E_t[F_c(p_t)]
        prob = _integrate_against_beta(
            lambda p: special.betainc(a_c, b_c, p), a_t, b_t, (mean_c, mean_t)
        )
    else:
        # P(p_t > p_c) = 1 - P(p_c >= p_t) = 1 - E_c[F_t(p_c)]
        prob = 1.0 - _integrate_against_beta(
            lambda p: special.betainc(a_t, b_t, p), a_c, b_c, (mean_c, mean_t)
        )
    return min(max(prob, 0.0), 1.0)  # quadrature error is ~1e-12; keep it a probability


def _expected_loss(control: CountPair, treatment: CountPair) -> float:
    """E[max(p_c - p_t, 0)]: the conversion rate given up, on average, by choosing treatment.

    Uses the closed forms, for X ~ Beta(a, b) with mean m = a / (a + b):
    E[(X - t)+] = m * (1 - I_t(a + 1, b)) - t * (1 - I_t(a, b)) and
    E[(c - X)+] = c * I_c(a, b) - m * I_c(a + 1, b), then integrates over the narrower posterior.
    """
    a_c, b_c, a_t, b_t = _beta_posteriors(control, treatment)
    mean_c, mean_t = a_c / (a_c + b_c), a_t / (a_t + b_t)
    if _beta_variance(a_t, b_t) <= _beta_variance(a_c, b_c):

        def control_excess_over(t: float) -> float:
            return mean_c * special.betaincc(a_c + 1.0, b_c, t) - t * special.betaincc(a_c, b_c, t)

        loss = _integrate_against_beta(control_excess_over, a_t, b_t, (mean_c, mean_t))
    else:

        def excess_over_treatment(c: float) -> float:
            return c * special.betainc(a_t, b_t, c) - mean_t * special.betainc(a_t + 1.0, b_t, c)

        loss = _integrate_against_beta(excess_over_treatment, a_c, b_c, (mean_c, mean_t))
    return max(loss, 0.0)


def compare_proportions(
    control: CountPair, treatment: CountPair, alpha: float = 0.05
) -> ProportionComparison:
    """Compare a treatment's conversion rate with the control's, at a fixed horizon.

    ``control`` and ``treatment`` are ``(n, x)``: recipients and conversions.

    - ``p_value``: two-sided two-proportion z-test, pooled variance (``proportions_ztest``);
      ``significant`` is ``p_value < alpha``.
    - ``abs_diff`` = p_t - p_c with the unpooled Wald interval ``abs_ci``
      (``confint_proportions_2indep(method="wald", compare="diff")``).
    - ``rel_lift`` = p_t / p_c - 1 with ``rel_ci`` from the delta method on the *log* scale:
      exp(log(p_t / p_c) +/- z * sqrt(1/x_t - 1/n_t + 1/x_c - 1/n_c)) - 1
      (``confint_proportions_2indep(method="log", compare="ratio")`` minus 1).
    - ``prob_beat_control`` = P(p_t > p_c) and ``expected_loss`` = E[max(p_c - p_t, 0)] under
      independent Beta(1 + x, 1 + n - x) posteriors, by numerical integration.

    Edge cases, no exception: an empty arm (n = 0) makes every comparative number ``nan``;
    no conversions anywhere (or all converted) gives ``p_value`` ``nan`` and a Wald interval
    of width 0 collapsed to ``nan``; ``x_c = 0`` or ``x_t = 0`` makes ``rel_ci`` ``nan``,
    ``x_c = 0`` makes ``rel_lift`` ``nan``; all converted in both arms makes ``rel_ci`` ``nan``.
    """
    control = _check_pair(control, "control")
    treatment = _check_pair(treatment, "treatment")
    alpha = _check_alpha(alpha)
    (n_c, x_c), (n_t, x_t) = control, treatment

    rate_c = x_c / n_c if n_c else _NAN
    rate_t = x_t / n_t if n_t else _NAN
    if not (n_c and n_t):
        return ProportionComparison(
            control_rate=rate_c,
            treatment_rate=rate_t,
            abs_diff=_NAN,
            abs_ci=_NAN_INTERVAL,
            rel_lift=_NAN,
            rel_ci=_NAN_INTERVAL,
            z_statistic=_NAN,
            p_value=_NAN,
            significant=False,
            prob_beat_control=_NAN,
            expected_loss=_NAN,
            alpha=alpha,
        )

    z, p_value = (_scalar(v) for v in two_proportion_z_test(n_c, x_c, n_t, x_t))
    z_crit = float(sps.norm.isf(alpha / 2.0))

    diff = rate_t - rate_c
    se_diff = math.sqrt(rate_t * (1.0 - rate_t) / n_t + rate_c * (1.0 - rate_c) / n_c)
    abs_ci = (diff - z_crit * se_diff, diff + z_crit * se_diff) if se_diff > 0 else _NAN_INTERVAL

    rel_lift = rate_t / rate_c - 1.0 if x_c else _NAN
    se_log_ratio = math.sqrt(1.0 / x_t - 1.0 / n_t + 1.0 / x_c - 1.0 / n_c) if x_c and x_t else 0.0
    if se_log_ratio > 0:
        log_ratio = math.log(rate_t / rate_c)
        rel_ci = (
            math.exp(log_ratio - z_crit * se_log_ratio) - 1.0,
            math.exp(log_ratio + z_crit * se_log_ratio) - 1.0,
        )
    else:
        rel_ci = _NAN_INTERVAL

    return ProportionComparison(
        control_rate=rate_c,
        treatment_rate=rate_t,
        abs_diff=diff,
        abs_ci=abs_ci,
        rel_lift=rel_lift,
        rel_ci=rel_ci,
        z_statistic=z,
        p_value=p_value,
        significant=bool(p_value < alpha),
        prob_beat_control=_prob_beat_control(control, treatment),
        expected_loss=_expected_loss(control, treatment),
        alpha=alpha,
    )


@dataclass(frozen=True, slots=True)
class OmnibusResult:
    """Chi-square test of independence of variant and conversion (A/B/n, all arms at once)."""

    statistic: float
    dof: int
    p_value: float


def compare_proportions_omnibus(arms: Sequence[CountPair]) -> OmnibusResult:
    """Is any arm's conversion rate different? Pearson chi-square test on the k x 2 table.

    ``arms`` is a sequence of ``(n, x)`` pairs, one per variant. Same numbers as
    ``scipy.stats.chi2_contingency([[x, n - x], ...], correction=False)``. Empty arms are left
    out; with fewer than two non-empty arms, or no conversions (or only conversions)
    anywhere, the test is undefined: ``statistic`` and ``p_value`` are ``nan``.
    """
    checked = [_check_pair(arm, f"arm {i}") for i, arm in enumerate(arms)]
    if len(checked) < 2:
        raise ValueError(f"the omnibus test needs at least two arms, got {len(checked)}")
    kept = [(n, x) for n, x in checked if n > 0]
    dof = max(len(kept) - 1, 0)
    table = np.array([[x, n - x] for n, x in kept], dtype=float).reshape(-1, 2)
    column_totals = table.sum(axis=0)
    if len(kept) < 2 or np.any(column_totals == 0):
        return OmnibusResult(statistic=_NAN, dof=dof, p_value=_NAN)
    expected = np.outer(table.sum(axis=1), column_totals) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    return OmnibusResult(statistic=statistic, dof=dof, p_value=float(sps.chi2.sf(statistic, dof)))


# --------------------------------------------------------------------------------------------
# Means (revenue per recipient, basket size, ...)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MeanSummary:
    """Sufficient statistics of one arm: count, mean and *sample* variance (ddof = 1).

    What SQL gives with ``COUNT(v), AVG(v), VAR_SAMP(v)``. ``mean`` may be ``nan`` when
    ``n == 0`` and ``variance`` may be ``nan`` when ``n < 2``.
    """

    n: int
    mean: float
    variance: float

    def __post_init__(self) -> None:
        n = _check_count(self.n, "MeanSummary.n")
        mean, variance = float(self.mean), float(self.variance)
        if n > 0 and not math.isfinite(mean):
            raise ValueError(f"MeanSummary.mean must be finite when n > 0, got {self.mean!r}")
        if n > 1 and not (math.isfinite(variance) and variance >= 0):
            raise ValueError(
                f"MeanSummary.variance must be finite and >= 0 when n > 1, got {self.variance!r}"
            )
        if math.isfinite(variance) and variance < 0:
            raise ValueError(f"MeanSummary.variance must be >= 0, got {self.variance!r}")
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "variance", variance)

    @classmethod
    def from_values(cls, values: Any) -> MeanSummary:
        """Summary of a one-dimensional array of finite values."""
        arr = np.asarray(values, dtype=float)
        if arr.ndim != 1:
            raise ValueError(f"values must be one-dimensional, got shape {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError("values must be finite (no nan or inf)")
        n = arr.size
        mean = float(arr.mean()) if n else _NAN
        variance = float(arr.var(ddof=1)) if n > 1 else _NAN
        return cls(n=n, mean=mean, variance=variance)


@dataclass(frozen=True, slots=True)
class MeanComparison:
    """Treatment versus control on the mean of a metric (see :func:`compare_means`)."""

    control_mean: float
    treatment_mean: float
    abs_diff: float
    abs_ci: Interval
    rel_lift: float
    rel_ci: Interval
    t_statistic: float
    dof: float
    p_value: float
    significant: bool
    alpha: float


def _as_summary(data: Any, arm: str) -> MeanSummary:
    if isinstance(data, MeanSummary):
        return data
    try:
        return MeanSummary.from_values(data)
    except ValueError as exc:
        raise ValueError(f"{arm}: {exc}") from None


def compare_means(control: Any, treatment: Any, alpha: float = 0.05) -> MeanComparison:
    """Welch's unequal-variance t-test of treatment mean minus control mean.

    ``control`` and ``treatment`` are arrays of per-recipient values or :class:`MeanSummary`.
    Same numbers as ``scipy.stats.ttest_ind(treatment, control, equal_var=False)`` and
    statsmodels ``CompareMeans(treatment, control).tconfint_diff(usevar="unequal")``
    (Welch-Satterthwaite degrees of freedom ``dof``).

    ``rel_lift`` = m_t / m_c - 1 with ``rel_ci`` from the delta method on the *log* scale, as
    for proportions: exp(log(m_t / m_c) +/- z * sqrt(v_t / (n_t m_t^2) + v_c / (n_c m_c^2))) - 1,
    normal quantile, ``v`` the sample variances. Relative numbers need positive means (revenue,
    basket size): ``rel_lift`` is ``nan`` unless m_c > 0, ``rel_ci`` unless m_c > 0 and m_t > 0.

    Fewer than two values in an arm, or zero variance in both, gives ``nan`` statistics.
    """
    c = _as_summary(control, "control")
    t = _as_summary(treatment, "treatment")
    alpha = _check_alpha(alpha)

    diff = t.mean - c.mean if (c.n and t.n) else _NAN
    rel_lift = t.mean / c.mean - 1.0 if (c.n and t.n and c.mean > 0) else _NAN
    t_stat = dof = p_value = _NAN
    abs_ci = rel_ci = _NAN_INTERVAL
    if c.n >= 2 and t.n >= 2:
        var_c, var_t = c.variance / c.n, t.variance / t.n
        se = math.sqrt(var_c + var_t)
        if se > 0:
            dof = (var_c + var_t) ** 2 / (var_c**2 / (c.n - 1) + var_t**2 / (t.n - 1))
            t_stat = diff / se
            p_value = float(2.0 * sps.t.sf(abs(t_stat), dof))
            t_crit = float(sps.t.isf(alpha / 2.0, dof))
            abs_ci = (diff - t_crit * se, diff + t_crit * se)
        if c.mean > 0 and t.mean > 0:
            se_log_ratio = math.sqrt(var_t / t.mean**2 + var_c / c.mean**2)
            if se_log_ratio > 0:
                log_ratio = math.log(t.mean / c.mean)
                z_crit = float(sps.norm.isf(alpha / 2.0))
                rel_ci = (
                    math.exp(log_ratio - z_crit * se_log_ratio) - 1.0,
                    math.exp(log_ratio + z_crit * se_log_ratio) - 1.0,
                )

    return MeanComparison(
        control_mean=c.mean if c.n else _NAN,
        treatment_mean=t.mean if t.n else _NAN,
        abs_diff=diff,
        abs_ci=abs_ci,
        rel_lift=rel_lift,
        rel_ci=rel_ci,
        t_statistic=t_stat,
        dof=dof,
        p_value=p_value,
        significant=bool(p_value < alpha),
        alpha=alpha,
    )


# --------------------------------------------------------------------------------------------
# Sample ratio mismatch, multiple comparisons
# --------------------------------------------------------------------------------------------


def srm_p_value(counts: Sequence[int], weights: Sequence[float]) -> float:
    """Sample-ratio-mismatch test: chi-square goodness of fit of assigned counts to weights.

    ``weights`` are the configured traffic shares in any unit (normalised here). Same number as
    ``scipy.stats.chisquare(counts, f_exp=sum(counts) * w / sum(w))``. Compare with
    :data:`SRM_ALERT_P`: below it, the assignment is broken and results must not be read.
    ``nan`` when nothing was assigned yet.
    """
    if len(counts) != len(weights):
        raise ValueError(
            f"counts and weights must have the same length, got {len(counts)} and {len(weights)}"
        )
    if len(counts) < 2:
        raise ValueError("the SRM test needs at least two variants")
    observed = np.array([_check_count(c, "assigned count") for c in counts], dtype=float)
    w = np.asarray(weights, dtype=float)
    if not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise ValueError(f"weights must be finite and > 0, got {list(weights)!r}")
    total = observed.sum()
    if total == 0:
        return _NAN
    expected = total * w / w.sum()
    statistic = float(np.sum((observed - expected) ** 2 / expected))
    return float(sps.chi2.sf(statistic, len(observed) - 1))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm (1979) step-down adjusted p-values, in the order given.

    Same numbers as ``statsmodels.stats.multitest.multipletests(p, method="holm")[1]``. ``nan``
    entries (comparisons that could not be made) pass through as ``nan`` and do not count in
    the family size. Reject hypothesis i at family-wise level alpha when adjusted[i] < alpha.
    """
    p = np.asarray(p_values, dtype=float).reshape(-1)
    defined = ~np.isnan(p)
    if np.any((p[defined] < 0) | (p[defined] > 1)):
        raise ValueError(f"p-values must lie in [0, 1] (or be nan), got {list(p_values)!r}")
    adjusted = np.full(p.shape, np.nan)
    index = np.flatnonzero(defined)
    m = index.size
    if m:
        order = np.argsort(p[index], kind="stable")
        stepped = (m - np.arange(m)) * p[index][order]
        adjusted[index[order]] = np.minimum(np.maximum.accumulate(stepped), 1.0)
    return [float(v) for v in adjusted]


# --------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------


def sample_size_per_variant(
    baseline_rate: float,
    relative_mde: float,
    alpha: float = 0.05,
    power: float = 0.8,
    *,
    comparisons: int = 1,
) -> int:
    """Recipients per variant to detect ``relative_mde`` on ``baseline_rate`` with ``power``.

    Two-sided test at level ``alpha / comparisons`` (Bonferroni: the first step of Holm, so the
    size also holds for A/B/n with ``comparisons`` treatment arms), effect size Cohen's h of
    ``baseline_rate * (1 + relative_mde)`` versus ``baseline_rate``
    (statsmodels ``proportion_effectsize``), solved by ``NormalIndPower().solve_power`` with
    equal arms, rounded up.
    """
    baseline = float(baseline_rate)
    if not 0.0 < baseline < 1.0:
        raise ValueError(f"baseline_rate must be strictly between 0 and 1, got {baseline_rate!r}")
    mde = float(relative_mde)
    if not math.isfinite(mde) or mde == 0.0:
        raise ValueError(f"relative_mde must be a non-zero number, got {relative_mde!r}")
    target = baseline * (1.0 + mde)
    if not 0.0 < target < 1.0:
        raise ValueError(
            f"baseline_rate * (1 + relative_mde) = {target!r} must be strictly between 0 and 1"
        )
    alpha = _check_alpha(alpha)
    power = _check_alpha(power, "power")
    if isinstance(comparisons, bool) or not isinstance(comparisons, int) or comparisons < 1:
        raise ValueError(f"comparisons must be a positive integer, got {comparisons!r}")
    effect = abs(float(proportion_effectsize(target, baseline)))
    n = NormalIndPower().solve_power(
        effect_size=effect,
        alpha=alpha / comparisons,
        power=power,
        ratio=1.0,
        alternative="two-sided",
    )
    return int(math.ceil(float(np.asarray(n)) - 1e-9))


def additional_sample_needed(
    control: CountPair,
    treatment: CountPair,
    relative_mde: float,
    alpha: float = 0.05,
    power: float = 0.8,
    *,
    comparisons: int = 1,
) -> int | None:
    """More recipients per variant needed to reach the planned sample for ``relative_mde``.

    The plan uses the *observed* control rate as the baseline (:func:`sample_size_per_variant`)
    and counts from the smaller of the two arms. ``0`` when the sample is already large enough
    (then "not significant" means "no effect as large as the MDE was found"). ``None`` when no
    plan can be made: empty control, observed control rate 0 or 1, or an MDE that moves the rate
    outside (0, 1).
    """
    n_c, x_c = _check_pair(control, "control")
    n_t, _ = _check_pair(treatment, "treatment")
    _check_alpha(alpha)
    _check_alpha(power, "power")
    if n_c == 0 or x_c in (0, n_c):
        return None
    baseline = x_c / n_c
    if not 0.0 < baseline * (1.0 + float(relative_mde)) < 1.0:
        return None
    required = sample_size_per_variant(
        baseline, relative_mde, alpha, power, comparisons=comparisons
    )
    return max(0, required - min(n_c, n_t))


# --------------------------------------------------------------------------------------------
# Sequential testing: mixture SPRT (always-valid p-values and confidence sequences)
# --------------------------------------------------------------------------------------------


def _diff_and_variance(
    n_c: np.ndarray, x_c: np.ndarray, n_t: np.ndarray, x_t: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(divide="ignore", invalid="ignore"):
        rate_c, rate_t = x_c / n_c, x_t / n_t
        diff = rate_t - rate_c
        variance = rate_t * (1.0 - rate_t) / n_t + rate_c * (1.0 - rate_c) / n_c
    informative = (n_c > 0) & (n_t > 0) & (variance > 0)
    return np.where(informative, diff, np.nan), np.where(informative, variance, np.nan)


def _check_tau2(tau2: float) -> float:
    value = float(tau2)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"tau2 must be a finite number > 0, got {tau2!r}")
    return value


def _msprt_log_lr(diff: np.ndarray, variance: np.ndarray, tau2: float) -> np.ndarray:
    """log of the normal-mixture likelihood ratio for H0: difference = 0."""
    return 0.5 * np.log(variance / (variance + tau2)) + tau2 * diff**2 / (
        2.0 * variance * (variance + tau2)
    )


def _msprt_radius(variance: np.ndarray, tau2: float, alpha: float) -> np.ndarray:
    """Half-width of {theta : Lambda(theta) < 1 / alpha}, the confidence-sequence interval."""
    return np.sqrt(
        variance
        * (variance + tau2)
        / tau2
        * (2.0 * math.log(1.0 / alpha) + np.log((variance + tau2) / variance))
    )


def msprt_p_values(
    control_n: Any,
    control_x: Any,
    treatment_n: Any,
    treatment_x: Any,
    *,
    tau2: float = DEFAULT_MSPRT_TAU2,
) -> np.ndarray:
    """Per-look mSPRT p-values ``min(1, 1 / Lambda)``, vectorised over numpy arrays.

    Each entry is valid on its own at any data-dependent stopping time; the always-valid
    p-value of a running experiment is the running minimum over its looks
    (``np.minimum.accumulate`` along the look axis, as :func:`sequential_proportions_history`
    does). Looks without information (an empty arm, no variance) give 1.
    """
    n_c, x_c, n_t, x_t = _check_count_arrays((control_n, control_x), (treatment_n, treatment_x))
    tau2 = _check_tau2(tau2)
    diff, variance = _diff_and_variance(n_c, x_c, n_t, x_t)
    with np.errstate(invalid="ignore", over="ignore"):
        p = np.exp(-_msprt_log_lr(diff, variance, tau2))
    return np.where(np.isnan(p), 1.0, np.minimum(p, 1.0))


@dataclass(frozen=True, slots=True)
class SequentialComparison:
    """mSPRT result at one look (see :func:`sequential_proportions`)."""

    abs_diff: float
    ci: Interval
    p_value: float
    likelihood_ratio: float
    significant: bool
    alpha: float
    tau2: float


def sequential_proportions(
    control: CountPair,
    treatment: CountPair,
    alpha: float = 0.05,
    tau2: float = DEFAULT_MSPRT_TAU2,
) -> SequentialComparison:
    """Always-valid test of p_t - p_c = 0 at one look: mixture SPRT (Johari et al. 2017).

    With d = p_t - p_c estimated by D, var(D) = s2 = p_t(1 - p_t)/n_t + p_c(1 - p_c)/n_c (normal
    approximation) and a N(0, tau2) mixing distribution on the difference:

        Lambda = sqrt(s2 / (s2 + tau2)) * exp(tau2 * D^2 / (2 s2 (s2 + tau2)))

    ``p_value = min(1, 1 / Lambda)`` may be read at every look and the experiment stopped as
    soon as it is below ``alpha`` without inflating the false-positive rate (Ville's
    inequality). ``ci`` is the set of differences theta with Lambda(theta) < 1 / alpha,
    D +/- sqrt(s2 (s2 + tau2) / tau2 * (2 log(1/alpha) + log((s2 + tau2) / s2))), clipped to
    [-1, 1]. When the history of looks is stored, prefer :func:`sequential_proportions_history`
    (running minimum and running intersection: monotone and tighter). A look without
    information (empty arm, no variance) gives p = 1 and ``ci`` ``nan``.
    """
    (n_c, x_c), (n_t, x_t) = _check_pair(control, "control"), _check_pair(treatment, "treatment")
    alpha = _check_alpha(alpha)
    tau2 = _check_tau2(tau2)
    history = sequential_proportions_history([((n_c, x_c), (n_t, x_t))], alpha=alpha, tau2=tau2)
    return SequentialComparison(
        abs_diff=history.abs_diff,
        ci=history.ci,
        p_value=history.p_value,
        likelihood_ratio=history.likelihood_ratio,
        significant=history.significant,
        alpha=alpha,
        tau2=tau2,
    )


@dataclass(frozen=True, slots=True)
class SequentialHistory:
    """mSPRT over cumulative looks (see :func:`sequential_proportions_history`).

    ``p_value`` and ``ci`` are the always-valid values after the last look; ``p_values`` and
    ``cis`` hold them after each look (running minimum, running intersection).
    """

    abs_diff: float
    ci: Interval
    p_value: float
    likelihood_ratio: float
    significant: bool
    first_significant_look: int | None
    p_values: tuple[float, ...]
    cis: tuple[Interval, ...]
    alpha: float
    tau2: float


def sequential_proportions_history(
    looks: Sequence[tuple[CountPair, CountPair]],
    alpha: float = 0.05,
    tau2: float = DEFAULT_MSPRT_TAU2,
) -> SequentialHistory:
    """Always-valid p-value and confidence sequence over a history of looks.

    ``looks`` is a sequence of ``(control, treatment)`` cumulative ``(n, x)`` pairs in time
    order (counts never decrease). The p-value after look k is min over looks j <= k of
    min(1, 1 / Lambda_j); the interval is the intersection of the per-look intervals of
    :func:`sequential_proportions` (looks without information are skipped). ``abs_diff`` and
    ``likelihood_ratio`` are those of the last look. If the intersection becomes empty (which
    has probability at most ``alpha`` when the model holds) the interval is ``nan``.
    ``first_significant_look`` is the 0-based index of the first look with p < alpha.
    """
    alpha = _check_alpha(alpha)
    tau2 = _check_tau2(tau2)
    if len(looks) == 0:
        raise ValueError("looks must contain at least one (control, treatment) look")
    pairs: list[tuple[int, int, int, int]] = []
    for i, look in enumerate(looks):
        try:
            control, treatment = look
        except (TypeError, ValueError):
            raise ValueError(f"look {i} must be a (control, treatment) pair of (n, x)") from None
        n_c, x_c = _check_pair(control, f"look {i} control")
        n_t, x_t = _check_pair(treatment, f"look {i} treatment")
        if pairs and any(
            now < before for now, before in zip((n_c, x_c, n_t, x_t), pairs[-1], strict=True)
        ):
            raise ValueError(
                f"looks must be cumulative: look {i} has fewer counts than look {i - 1}"
            )
        pairs.append((n_c, x_c, n_t, x_t))

    n_c, x_c, n_t, x_t = (np.array(col, dtype=float) for col in zip(*pairs, strict=True))
    diff, variance = _diff_and_variance(n_c, x_c, n_t, x_t)
    with np.errstate(invalid="ignore", over="ignore"):
        log_lr = _msprt_log_lr(diff, variance, tau2)
        per_look_p = np.where(np.isnan(log_lr), 1.0, np.minimum(np.exp(-log_lr), 1.0))
        radius = _msprt_radius(variance, tau2, alpha)
    running_p = np.minimum.accumulate(per_look_p)
    lower = np.fmax.accumulate(np.clip(diff - radius, -1.0, 1.0))
    upper = np.fmin.accumulate(np.clip(diff + radius, -1.0, 1.0))
    cis = tuple(
        (float(lo), float(hi)) if lo <= hi else _NAN_INTERVAL
        for lo, hi in zip(lower, upper, strict=True)
    )
    significant_looks = np.flatnonzero(running_p < alpha)
    last_log_lr = float(log_lr[-1])
    return SequentialHistory(
        abs_diff=float(diff[-1]),
        ci=cis[-1],
        p_value=float(running_p[-1]),
        likelihood_ratio=math.exp(min(last_log_lr, 700.0)) if math.isfinite(last_log_lr) else _NAN,
        significant=bool(running_p[-1] < alpha),
        first_significant_look=int(significant_looks[0]) if significant_looks.size else None,
        p_values=tuple(float(p) for p in running_p),
        cis=cis,
        alpha=alpha,
        tau2=tau2,
    )


# --------------------------------------------------------------------------------------------
# Decision
# --------------------------------------------------------------------------------------------


class VerdictCode(enum.StrEnum):
    """What the results page says about one treatment arm (the web layer words it)."""

    WINNER = "winner"
    LOSER = "loser"
    INCONCLUSIVE = "inconclusive"
    SAMPLE_RATIO_MISMATCH = "sample_ratio_mismatch"


@dataclass(frozen=True, slots=True)
class Verdict:
    code: VerdictCode
    effect: float
    adjusted_p_value: float
    alpha: float
    srm_p_value: float | None
    additional_sample_needed: int | None


def verdict(
    *,
    effect: float,
    adjusted_p_value: float,
    alpha: float = 0.05,
    srm_p_value: float | None = None,
    additional_sample_needed: int | None = None,
    higher_is_better: bool = True,
) -> Verdict:
    """Decide winner / loser / inconclusive for one treatment arm versus control.

    ``effect`` is the observed difference (treatment - control, e.g. ``abs_diff``);
    ``adjusted_p_value`` the Holm-adjusted p-value of that comparison (fixed-horizon, or
    always-valid when the experiment is monitored sequentially). Rules, in order:

    1. ``srm_p_value < SRM_ALERT_P`` -> ``SAMPLE_RATIO_MISMATCH`` (assignment is broken; no
       winner or loser is declared whatever the p-value).
    2. ``adjusted_p_value < alpha`` and the effect goes the good way -> ``WINNER``; the bad way
       -> ``LOSER`` (``higher_is_better=False`` for metrics such as unsubscribes).
    3. Otherwise (including ``nan`` p-values and a zero effect) -> ``INCONCLUSIVE``, carrying
       ``additional_sample_needed`` (from :func:`additional_sample_needed`) for the
       "about N more recipients per variant" message.
    """
    alpha = _check_alpha(alpha)
    p = float(adjusted_p_value)
    if not (math.isnan(p) or 0.0 <= p <= 1.0):
        raise ValueError(
            f"adjusted_p_value must lie in [0, 1] (or be nan), got {adjusted_p_value!r}"
        )
    if srm_p_value is not None:
        srm = float(srm_p_value)
        if not (math.isnan(srm) or 0.0 <= srm <= 1.0):
            raise ValueError(f"srm_p_value must lie in [0, 1] (or be nan), got {srm_p_value!r}")
    if additional_sample_needed is not None and (
        isinstance(additional_sample_needed, bool)
        or not isinstance(additional_sample_needed, int)
        or additional_sample_needed < 0
    ):
        raise ValueError(
            "additional_sample_needed must be None or a non-negative integer, "
            f"got {additional_sample_needed!r}"
        )
    effect = float(effect)

    if srm_p_value is not None and float(srm_p_value) < SRM_ALERT_P:
        code = VerdictCode.SAMPLE_RATIO_MISMATCH
    elif p < alpha and math.isfinite(effect) and effect != 0.0:
        good = effect > 0 if higher_is_better else effect < 0
        code = VerdictCode.WINNER if good else VerdictCode.LOSER
    else:
        code = VerdictCode.INCONCLUSIVE
    return Verdict(
        code=code,
        effect=effect,
        adjusted_p_value=p,
        alpha=alpha,
        srm_p_value=None if srm_p_value is None else float(srm_p_value),
        additional_sample_needed=(
            additional_sample_needed if code is VerdictCode.INCONCLUSIVE else None
        ),
    )
