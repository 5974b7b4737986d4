"""Fixed-input checks of experiments.statistics against statsmodels, scipy and exact formulas."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_effectsize,
    proportions_ztest,
)
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW
from statsmodels.stats.weightstats import ttest_ind as sm_ttest_ind

from experiments.statistics import (
    DEFAULT_MSPRT_TAU2,
    SRM_ALERT_P,
    MeanSummary,
    VerdictCode,
    additional_sample_needed,
    compare_means,
    compare_proportions,
    compare_proportions_omnibus,
    holm,
    msprt_p_values,
    sample_size_per_variant,
    sequential_proportions,
    sequential_proportions_history,
    srm_p_value,
    two_proportion_z_test,
    verdict,
)

TOL = 1e-6


def close(expected):
    """Agreement to 1e-6 relative (1e-12 absolute for values near 0)."""
    return pytest.approx(expected, rel=TOL, abs=1e-12)


# (control (n, x), treatment (n, x)) — fixed inputs, all with conversions in both arms.
PROPORTION_CASES = [
    ((1000, 100), (1000, 120)),
    ((5000, 250), (4800, 290)),
    ((20000, 3100), (19876, 2987)),
    ((37, 3), (41, 9)),
    ((123456, 1234), (123001, 1350)),
    ((800, 640), (790, 600)),
]


# --------------------------------------------------------------------------------------------
# compare_proportions: frequentist numbers
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0.05, 0.1])
@pytest.mark.parametrize(("control", "treatment"), PROPORTION_CASES)
def test_proportion_p_value_matches_statsmodels_pooled_z_test(control, treatment, alpha):
    (n_c, x_c), (n_t, x_t) = control, treatment
    z_ref, p_ref = proportions_ztest([x_t, x_c], [n_t, n_c], alternative="two-sided")

    result = compare_proportions(control, treatment, alpha=alpha)

    assert result.z_statistic == close(z_ref)
    assert result.p_value == close(p_ref)
    assert result.significant is bool(p_ref < alpha)
    assert result.control_rate == close(x_c / n_c)
    assert result.treatment_rate == close(x_t / n_t)


@pytest.mark.parametrize("alpha", [0.05, 0.01])
@pytest.mark.parametrize(("control", "treatment"), PROPORTION_CASES)
def test_absolute_difference_interval_matches_statsmodels_wald(control, treatment, alpha):
    (n_c, x_c), (n_t, x_t) = control, treatment
    low, high = confint_proportions_2indep(
        x_t, n_t, x_c, n_c, method="wald", compare="diff", alpha=alpha
    )

    result = compare_proportions(control, treatment, alpha=alpha)

    assert result.abs_diff == close(x_t / n_t - x_c / n_c)
    assert result.abs_ci[0] == close(low)
    assert result.abs_ci[1] == close(high)


@pytest.mark.parametrize("alpha", [0.05, 0.2])
@pytest.mark.parametrize(("control", "treatment"), PROPORTION_CASES)
def test_relative_lift_interval_is_log_scale_delta_method(control, treatment, alpha):
    (n_c, x_c), (n_t, x_t) = control, treatment
    p_c, p_t = x_c / n_c, x_t / n_t
    # Delta method for log(p_t / p_c): var = (1 - p_t) / (n_t p_t) + (1 - p_c) / (n_c p_c).
    se = math.sqrt((1 - p_t) / (n_t * p_t) + (1 - p_c) / (n_c * p_c))
    z = sps.norm.ppf(1 - alpha / 2)
    hand = (math.exp(math.log(p_t / p_c) - z * se) - 1, math.exp(math.log(p_t / p_c) + z * se) - 1)
    low, high = confint_proportions_2indep(
        x_t, n_t, x_c, n_c, method="log", compare="ratio", alpha=alpha
    )

    result = compare_proportions(control, treatment, alpha=alpha)

    assert result.rel_lift == close(p_t / p_c - 1)
    assert result.rel_ci == (close(hand[0]), close(hand[1]))
    assert result.rel_ci == (close(low - 1), close(high - 1))


def test_vectorised_z_test_gives_the_same_p_values_as_compare_proportions():
    n_c, x_c, n_t, x_t = (
        np.array(col) for col in zip(*[(*c, *t) for c, t in PROPORTION_CASES], strict=True)
    )

    z, p = two_proportion_z_test(n_c, x_c, n_t, x_t)

    for i, (control, treatment) in enumerate(PROPORTION_CASES):
        result = compare_proportions(control, treatment)
        assert z[i] == close(result.z_statistic)
        assert p[i] == close(result.p_value)


# --------------------------------------------------------------------------------------------
# compare_proportions: Bayesian numbers
# --------------------------------------------------------------------------------------------


def exact_prob_greater(a_b, b_b, a_a, b_a):
    """P(B > A), B ~ Beta(a_b, b_b), A ~ Beta(a_a, b_a), a_b integer (Evan Miller's sum)."""
    i = np.arange(int(a_b))
    terms = (
        special.betaln(a_a + i, b_a + b_b)
        - np.log(b_b + i)
        - special.betaln(1 + i, b_b)
        - special.betaln(a_a, b_a)
    )
    return float(np.exp(terms).sum())


def exact_expected_loss(control, treatment):
    """E[max(p_c - p_t, 0)] = m_c P(Beta(a_c+1, b_c) > p_t) - m_t P(p_c > Beta(a_t+1, b_t))."""
    (n_c, x_c), (n_t, x_t) = control, treatment
    a_c, b_c, a_t, b_t = 1 + x_c, 1 + n_c - x_c, 1 + x_t, 1 + n_t - x_t
    m_c, m_t = a_c / (a_c + b_c), a_t / (a_t + b_t)
    return m_c * exact_prob_greater(a_c + 1, b_c, a_t, b_t) - m_t * exact_prob_greater(
        a_c, b_c, a_t + 1, b_t
    )


BAYES_CASES = [
    ((1000, 100), (1000, 120)),
    ((37, 3), (41, 9)),
    ((5000, 250), (4800, 290)),
    ((200_000, 20_000), (600, 70)),  # control posterior much narrower than treatment's
    ((600, 70), (200_000, 20_000)),  # treatment posterior much narrower than control's
    ((100, 0), (100, 5)),
    ((10, 0), (10, 0)),
    ((50, 50), (60, 58)),
]


@pytest.mark.parametrize(("control", "treatment"), BAYES_CASES)
def test_probability_to_beat_control_matches_exact_beta_sum(control, treatment):
    (n_c, x_c), (n_t, x_t) = control, treatment
    exact = exact_prob_greater(1 + x_t, 1 + n_t - x_t, 1 + x_c, 1 + n_c - x_c)

    result = compare_proportions(control, treatment)

    assert result.prob_beat_control == pytest.approx(exact, abs=1e-9)


@pytest.mark.parametrize(("control", "treatment"), BAYES_CASES)
def test_expected_loss_matches_exact_beta_formula(control, treatment):
    result = compare_proportions(control, treatment)

    assert result.expected_loss == pytest.approx(exact_expected_loss(control, treatment), abs=1e-9)


@pytest.mark.parametrize(("control", "treatment"), BAYES_CASES[:5])
def test_bayesian_numbers_match_large_seeded_monte_carlo(control, treatment):
    (n_c, x_c), (n_t, x_t) = control, treatment
    rng = np.random.default_rng(20240601)
    draws = 2_000_000
    p_c = rng.beta(1 + x_c, 1 + n_c - x_c, draws)
    p_t = rng.beta(1 + x_t, 1 + n_t - x_t, draws)

    result = compare_proportions(control, treatment)

    assert result.prob_beat_control == pytest.approx(np.mean(p_t > p_c), abs=1e-3)
    assert result.expected_loss == pytest.approx(np.mean(np.maximum(p_c - p_t, 0)), abs=1e-3)
    # Monte Carlo standard error of the loss is far below 1e-3; hold it to 2 % as well.
    assert result.expected_loss == pytest.approx(np.mean(np.maximum(p_c - p_t, 0)), rel=0.02)


@pytest.mark.parametrize(("control", "treatment"), BAYES_CASES)
def test_swapping_arms_complements_probability_and_losses_differ_by_mean_gap(control, treatment):
    forward = compare_proportions(control, treatment)
    backward = compare_proportions(treatment, control)
    (n_c, x_c), (n_t, x_t) = control, treatment
    mean_gap = (1 + x_c) / (2 + n_c) - (1 + x_t) / (2 + n_t)

    assert forward.prob_beat_control + backward.prob_beat_control == pytest.approx(1, abs=1e-9)
    assert forward.expected_loss - backward.expected_loss == pytest.approx(mean_gap, abs=1e-9)


# --------------------------------------------------------------------------------------------
# compare_proportions: edge cases and validation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("control", "treatment"), [((0, 0), (100, 10)), ((100, 10), (0, 0))])
def test_empty_arm_gives_nan_numbers_and_is_not_significant(control, treatment):
    result = compare_proportions(control, treatment)

    assert math.isnan(result.p_value)
    assert result.significant is False
    assert all(math.isnan(v) for v in (*result.abs_ci, *result.rel_ci, result.abs_diff))
    assert math.isnan(result.prob_beat_control)
    assert math.isnan(result.expected_loss)


@pytest.mark.parametrize("both", [(500, 0), (500, 500)])
def test_no_variance_when_nobody_or_everybody_converts_gives_nan_p_value(both):
    result = compare_proportions(both, both)

    assert math.isnan(result.p_value)
    assert result.significant is False
    assert result.abs_diff == 0
    assert all(math.isnan(v) for v in result.abs_ci)
    assert all(math.isnan(v) for v in result.rel_ci)
    assert result.prob_beat_control == pytest.approx(0.5, abs=1e-9)


def test_zero_control_conversions_leaves_relative_lift_undefined_but_test_runs():
    (n_c, x_c), (n_t, x_t) = (400, 0), (400, 9)
    _, p_ref = proportions_ztest([x_t, x_c], [n_t, n_c])

    result = compare_proportions((n_c, x_c), (n_t, x_t))

    assert result.p_value == close(p_ref)
    assert result.significant is True
    assert math.isnan(result.rel_lift)
    assert all(math.isnan(v) for v in result.rel_ci)


@pytest.mark.parametrize(
    ("control", "treatment", "alpha", "message"),
    [
        ((-1, 0), (10, 1), 0.05, "non-negative integer"),
        ((10, -2), (10, 1), 0.05, "non-negative integer"),
        ((10, 11), (10, 1), 0.05, "more conversions than recipients"),
        ((10, 1), (10, 12), 0.05, "more conversions than recipients"),
        ((10.5, 1), (10, 1), 0.05, "non-negative integer"),
        ((10, 1, 3), (10, 1), 0.05, "pair"),
        ((10, 1), (10, 1), 0.0, "alpha"),
        ((10, 1), (10, 1), 1.0, "alpha"),
        ((10, 1), (10, 1), 1.5, "alpha"),
        ((10, 1), (10, 1), -0.05, "alpha"),
    ],
)
def test_invalid_proportion_inputs_raise_value_error_naming_the_problem(
    control, treatment, alpha, message
):
    with pytest.raises(ValueError, match=message):
        compare_proportions(control, treatment, alpha=alpha)


@settings(max_examples=150, deadline=None)
@given(
    n_c=st.integers(0, 5000),
    n_t=st.integers(0, 5000),
    f_c=st.floats(0, 1),
    f_t=st.floats(0, 1),
)
def test_any_valid_counts_give_numbers_in_range_without_exceptions(n_c, n_t, f_c, f_t):
    control, treatment = (n_c, round(n_c * f_c)), (n_t, round(n_t * f_t))

    result = compare_proportions(control, treatment)

    assert math.isnan(result.p_value) or 0 <= result.p_value <= 1
    assert result.significant is (not math.isnan(result.p_value) and result.p_value < 0.05)
    if n_c and n_t:
        assert -1e-12 <= result.prob_beat_control <= 1 + 1e-12
        assert result.expected_loss >= 0
    if not math.isnan(result.abs_ci[0]):
        assert result.abs_ci[0] <= result.abs_diff <= result.abs_ci[1]


# --------------------------------------------------------------------------------------------
# Omnibus chi-square for A/B/n
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arms",
    [
        [(1000, 100), (1000, 120)],
        [(1000, 100), (1000, 120), (1000, 90)],
        [(5000, 250), (4800, 290), (5100, 260), (4950, 301)],
        [(37, 3), (41, 9), (45, 2)],
    ],
)
def test_omnibus_matches_scipy_chi2_contingency_without_continuity_correction(arms):
    table = [[x, n - x] for n, x in arms]
    statistic, p_value, dof, _ = sps.chi2_contingency(table, correction=False)

    result = compare_proportions_omnibus(arms)

    assert result.statistic == close(statistic)
    assert result.p_value == close(p_value)
    assert result.dof == dof


def test_omnibus_leaves_out_empty_arms_and_is_nan_without_conversions():
    with_empty = compare_proportions_omnibus([(1000, 100), (0, 0), (1000, 130)])
    statistic, p_value, dof, _ = sps.chi2_contingency([[100, 900], [130, 870]], correction=False)
    assert (with_empty.statistic, with_empty.p_value, with_empty.dof) == (
        close(statistic),
        close(p_value),
        dof,
    )

    nothing = compare_proportions_omnibus([(1000, 0), (1000, 0), (900, 0)])
    assert math.isnan(nothing.p_value)
    with pytest.raises(ValueError, match="at least two arms"):
        compare_proportions_omnibus([(1000, 10)])


# --------------------------------------------------------------------------------------------
# compare_means
# --------------------------------------------------------------------------------------------

CONTROL_VALUES = [12.0, 0.0, 0.0, 35.5, 8.25, 0.0, 19.9, 4.0, 0.0, 61.0, 3.5, 0.0, 22.0, 9.75]
TREATMENT_VALUES = [0.0, 41.0, 15.5, 0.0, 27.0, 33.25, 0.0, 8.0, 72.5, 0.0, 18.0, 26.0, 11.0]


def mean_cases():
    rng = np.random.default_rng(7)
    yield CONTROL_VALUES, TREATMENT_VALUES
    yield rng.lognormal(2.0, 1.0, 400), rng.lognormal(2.1, 1.3, 350)
    yield rng.normal(-3.0, 2.0, 60), rng.normal(-2.0, 0.5, 90)
    yield rng.exponential(5.0, 2500), rng.exponential(5.2, 2600)


@pytest.mark.parametrize("alpha", [0.05, 0.1])
@pytest.mark.parametrize("case", list(mean_cases()))
def test_welch_test_and_interval_match_scipy_and_statsmodels(case, alpha):
    control, treatment = (np.asarray(v) for v in case)
    t_ref, p_ref = sps.ttest_ind(treatment, control, equal_var=False)
    _, _, dof_ref = sm_ttest_ind(treatment, control, usevar="unequal")
    low, high = CompareMeans(DescrStatsW(treatment), DescrStatsW(control)).tconfint_diff(
        alpha=alpha, usevar="unequal"
    )

    result = compare_means(control, treatment, alpha=alpha)

    assert result.t_statistic == close(t_ref)
    assert result.p_value == close(p_ref)
    assert result.dof == close(dof_ref)
    assert result.abs_diff == close(treatment.mean() - control.mean())
    assert result.abs_ci == (close(low), close(high))
    assert result.significant is bool(p_ref < alpha)


@pytest.mark.parametrize("alpha", [0.05, 0.1])
@pytest.mark.parametrize("case", [c for c in mean_cases() if np.mean(c[0]) > 0])
def test_relative_lift_of_means_uses_log_scale_delta_method(case, alpha):
    control, treatment = (np.asarray(v) for v in case)
    m_c, m_t = control.mean(), treatment.mean()
    v_c, v_t = control.var(ddof=1) / control.size, treatment.var(ddof=1) / treatment.size
    # Delta method for log(m_t / m_c): var = v_t / m_t^2 + v_c / m_c^2 (independent arms).
    se = math.sqrt(v_t / m_t**2 + v_c / m_c**2)
    z = sps.norm.ppf(1 - alpha / 2)

    result = compare_means(control, treatment, alpha=alpha)

    assert result.rel_lift == close(m_t / m_c - 1)
    assert result.rel_ci == (
        close(m_t / m_c * math.exp(-z * se) - 1),
        close(m_t / m_c * math.exp(z * se) - 1),
    )


def test_relative_numbers_of_means_need_positive_means():
    negative = compare_means([-3.0, -1.0, -2.5, -4.0], [-1.0, -2.0, -0.5])
    zero_treatment = compare_means([1.0, 3.0, 0.0], [0.0, 0.0, 0.0])

    assert math.isnan(negative.rel_lift) and all(math.isnan(v) for v in negative.rel_ci)
    assert negative.p_value == close(
        sps.ttest_ind([-1.0, -2.0, -0.5], [-3.0, -1.0, -2.5, -4.0], equal_var=False)[1]
    )
    assert zero_treatment.rel_lift == -1.0
    assert all(math.isnan(v) for v in zero_treatment.rel_ci)


@pytest.mark.parametrize("case", list(mean_cases()))
def test_sql_summaries_give_the_same_result_as_raw_values(case):
    control, treatment = (np.asarray(v) for v in case)
    summaries = [
        MeanSummary(n=v.size, mean=v.mean(), variance=v.var(ddof=1)) for v in (control, treatment)
    ]

    from_values = compare_means(control, treatment)
    from_summaries = compare_means(*summaries)

    for field in ("t_statistic", "p_value", "dof", "abs_diff", "rel_lift"):
        expected = getattr(from_values, field)
        assert getattr(from_summaries, field) == pytest.approx(expected, rel=TOL, nan_ok=True)
    assert from_summaries.abs_ci == (close(from_values.abs_ci[0]), close(from_values.abs_ci[1]))


def test_means_with_too_few_values_give_nan_not_exceptions():
    one_value = compare_means([3.0], [1.0, 2.0, 4.0])
    assert math.isnan(one_value.p_value) and one_value.significant is False

    empty = compare_means(MeanSummary(n=0, mean=float("nan"), variance=float("nan")), [1.0, 2.0])
    assert math.isnan(empty.abs_diff) and math.isnan(empty.p_value)

    constant = compare_means([2.0, 2.0, 2.0], [2.0, 2.0])
    assert math.isnan(constant.p_value) and constant.abs_diff == 0


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: MeanSummary(n=-1, mean=1.0, variance=1.0), "non-negative integer"),
        (lambda: MeanSummary(n=10, mean=1.0, variance=-0.5), "variance"),
        (lambda: MeanSummary(n=10, mean=float("nan"), variance=1.0), "mean"),
        (lambda: compare_means([1.0, float("nan")], [1.0, 2.0]), "finite"),
        (lambda: compare_means([[1.0, 2.0]], [1.0, 2.0]), "one-dimensional"),
        (lambda: compare_means([1.0, 2.0], [1.0, 2.0], alpha=2), "alpha"),
    ],
)
def test_invalid_mean_inputs_raise_value_error(build, message):
    with pytest.raises(ValueError, match=message):
        build()


# --------------------------------------------------------------------------------------------
# SRM and Holm
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counts", "weights"),
    [
        ([50_310, 49_690], [1, 1]),
        ([52_000, 48_000], [0.5, 0.5]),
        ([10_120, 4_950, 5_010], [2, 1, 1]),
        ([3_300, 3_350, 3_280, 3_410], [25, 25, 25, 25]),
        ([901, 99], [90, 10]),
    ],
)
def test_srm_p_value_matches_scipy_chisquare_against_normalised_weights(counts, weights):
    w = np.asarray(weights, dtype=float)
    _, p_ref = sps.chisquare(counts, f_exp=sum(counts) * w / w.sum())

    assert srm_p_value(counts, weights) == close(p_ref)


def test_srm_alert_threshold_and_validation():
    assert SRM_ALERT_P == 0.001
    assert math.isnan(srm_p_value([0, 0], [1, 1]))
    with pytest.raises(ValueError, match="same length"):
        srm_p_value([10, 10], [1, 1, 1])
    with pytest.raises(ValueError, match="weights"):
        srm_p_value([10, 10], [1, 0])
    with pytest.raises(ValueError, match="non-negative integer"):
        srm_p_value([10, -1], [1, 1])


@pytest.mark.parametrize(
    "p_values",
    [
        [0.01, 0.04, 0.03, 0.5],
        [0.001, 0.2, 0.049, 0.049, 0.8, 0.012],
        [0.3],
        [0.9, 0.95, 0.99],
        [1e-9, 0.02, 0.0125],
    ],
)
def test_holm_matches_statsmodels_and_keeps_order(p_values):
    _, reference, _, _ = multipletests(p_values, method="holm")

    assert holm(p_values) == [close(v) for v in reference]


def test_holm_passes_nan_through_and_leaves_it_out_of_the_family():
    p_values = [0.01, float("nan"), 0.04, 0.03]
    _, reference, _, _ = multipletests([0.01, 0.04, 0.03], method="holm")

    adjusted = holm(p_values)

    assert math.isnan(adjusted[1])
    assert [adjusted[0], adjusted[2], adjusted[3]] == [close(v) for v in reference]
    assert holm([]) == []
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([0.2, 1.2])


# --------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("baseline", "mde", "alpha", "power"),
    [(0.1, 0.2, 0.05, 0.8), (0.03, -0.15, 0.05, 0.9), (0.5, 0.05, 0.01, 0.8), (0.2, 0.1, 0.1, 0.7)],
)
def test_sample_size_is_smallest_n_reaching_the_power_of_cohens_h_normal_test(
    baseline, mde, alpha, power
):
    h = abs(proportion_effectsize(baseline * (1 + mde), baseline))
    solver = NormalIndPower()

    n = sample_size_per_variant(baseline, mde, alpha=alpha, power=power)

    assert n == math.ceil(solver.solve_power(effect_size=h, alpha=alpha, power=power, ratio=1))
    assert solver.power(effect_size=h, nobs1=n, alpha=alpha, ratio=1) >= power - 1e-9
    assert solver.power(effect_size=h, nobs1=n - 1, alpha=alpha, ratio=1) < power
    # Closed form, ignoring the far tail: n = 2 ((z_{1-alpha/2} + z_power) / h)^2.
    closed_form = 2 * ((sps.norm.ppf(1 - alpha / 2) + sps.norm.ppf(power)) / h) ** 2
    assert abs(n - closed_form) <= 1.5


def test_sample_size_for_several_comparisons_uses_bonferroni_alpha():
    assert sample_size_per_variant(0.1, 0.2, comparisons=3) == sample_size_per_variant(
        0.1, 0.2, alpha=0.05 / 3
    )
    assert sample_size_per_variant(0.1, 0.2, comparisons=3) > sample_size_per_variant(0.1, 0.2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"baseline_rate": 0.0, "relative_mde": 0.1}, "baseline_rate"),
        ({"baseline_rate": 1.2, "relative_mde": 0.1}, "baseline_rate"),
        ({"baseline_rate": 0.1, "relative_mde": 0.0}, "relative_mde"),
        ({"baseline_rate": 0.6, "relative_mde": 1.0}, "between 0 and 1"),
        ({"baseline_rate": 0.1, "relative_mde": -1.0}, "between 0 and 1"),
        ({"baseline_rate": 0.1, "relative_mde": 0.1, "alpha": 0}, "alpha"),
        ({"baseline_rate": 0.1, "relative_mde": 0.1, "power": 1}, "power"),
        ({"baseline_rate": 0.1, "relative_mde": 0.1, "comparisons": 0}, "comparisons"),
    ],
)
def test_sample_size_rejects_impossible_plans(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sample_size_per_variant(**kwargs)


def test_additional_sample_counts_from_the_smaller_arm_at_the_observed_control_rate():
    required = sample_size_per_variant(0.1, 0.2)

    assert additional_sample_needed((1000, 100), (950, 120), 0.2) == required - 950
    assert additional_sample_needed((10_000, 1000), (10_000, 1100), 0.2) == 0
    assert additional_sample_needed((1000, 100), (1000, 120), 0.2, comparisons=2) == (
        sample_size_per_variant(0.1, 0.2, comparisons=2) - 1000
    )


@pytest.mark.parametrize(
    ("control", "mde"), [((0, 0), 0.1), ((500, 0), 0.1), ((500, 500), -0.1), ((500, 400), 0.5)]
)
def test_additional_sample_is_none_when_no_plan_can_be_made(control, mde):
    assert additional_sample_needed(control, (500, 10), mde) is None


# --------------------------------------------------------------------------------------------
# Sequential mSPRT
# --------------------------------------------------------------------------------------------


def johari_balanced_lambda(n, x_c, x_t, tau2, theta0=0.0):
    """Johari et al. (2017) two-sample Bernoulli mSPRT with n per arm, written as in the paper:
    Lambda_n = sqrt(V / (V + n tau2)) exp(n^2 tau2 (Ybar - Xbar - theta0)^2 / (2 V (V + n tau2))),
    V = p_c (1 - p_c) + p_t (1 - p_t)."""
    p_c, p_t = x_c / n, x_t / n
    v = p_c * (1 - p_c) + p_t * (1 - p_t)
    return math.sqrt(v / (v + n * tau2)) * math.exp(
        n**2 * tau2 * (p_t - p_c - theta0) ** 2 / (2 * v * (v + n * tau2))
    )


@pytest.mark.parametrize("tau2", [DEFAULT_MSPRT_TAU2, 1e-3, 4e-6])
@pytest.mark.parametrize(
    ("n", "x_c", "x_t"), [(1000, 100, 120), (20000, 1000, 1130), (500, 60, 41)]
)
def test_msprt_p_value_is_inverse_of_johari_mixture_likelihood_ratio(n, x_c, x_t, tau2):
    lam = johari_balanced_lambda(n, x_c, x_t, tau2)

    result = sequential_proportions((n, x_c), (n, x_t), tau2=tau2)

    assert result.likelihood_ratio == close(lam)
    assert result.p_value == close(min(1.0, 1.0 / lam))
    assert result.significant is (min(1.0, 1.0 / lam) < 0.05)
    assert msprt_p_values(n, x_c, n, x_t, tau2=tau2) == close(result.p_value)


@pytest.mark.parametrize("alpha", [0.05, 0.1])
@pytest.mark.parametrize(("n", "x_c", "x_t"), [(1000, 100, 120), (20000, 1000, 1130)])
def test_confidence_sequence_ends_where_mixture_ratio_reaches_one_over_alpha(n, x_c, x_t, alpha):
    result = sequential_proportions((n, x_c), (n, x_t), alpha=alpha)
    low, high = result.ci

    for endpoint in (low, high):
        assert johari_balanced_lambda(n, x_c, x_t, DEFAULT_MSPRT_TAU2, endpoint) == close(1 / alpha)
    assert johari_balanced_lambda(n, x_c, x_t, DEFAULT_MSPRT_TAU2, (low + high) / 2) < 1 / alpha
    fixed = compare_proportions((n, x_c), (n, x_t), alpha=alpha)
    assert low < fixed.abs_ci[0] and fixed.abs_ci[1] < high  # the price of peeking
    assert (0.0 < low or high < 0.0) is result.significant


def test_history_keeps_the_running_minimum_p_value_and_intersected_interval():
    looks = [
        ((2000, 200), (2000, 300)),
        ((4000, 410), (4000, 450)),
        ((6000, 620), (6000, 640)),
        ((8000, 820), (8000, 840)),
    ]
    per_look = [sequential_proportions(c, t) for c, t in looks]

    history = sequential_proportions_history(looks)

    assert history.p_values == tuple(
        close(v) for v in np.minimum.accumulate([r.p_value for r in per_look])
    )
    assert history.p_value == close(min(r.p_value for r in per_look))
    assert history.ci[0] == close(max(r.ci[0] for r in per_look))
    assert history.ci[1] == close(min(r.ci[1] for r in per_look))
    assert history.abs_diff == close(per_look[-1].abs_diff)
    assert history.first_significant_look == 0  # 10 % vs 15 % after 2,000 per arm
    assert history.significant is True
    assert per_look[-1].significant is False  # a single late look alone would not reject


def test_sequential_edge_cases_and_validation():
    empty = sequential_proportions((0, 0), (100, 3))
    assert empty.p_value == 1.0 and empty.significant is False and math.isnan(empty.ci[0])
    no_variance = sequential_proportions((100, 0), (100, 0))
    assert no_variance.p_value == 1.0

    with pytest.raises(ValueError, match="cumulative"):
        sequential_proportions_history([((100, 10), (100, 12)), ((90, 10), (120, 14))])
    with pytest.raises(ValueError, match="at least one"):
        sequential_proportions_history([])
    with pytest.raises(ValueError, match="tau2"):
        sequential_proportions((100, 10), (100, 12), tau2=0)
    with pytest.raises(ValueError, match="more conversions"):
        sequential_proportions((100, 101), (100, 12))


# --------------------------------------------------------------------------------------------
# Verdict
# --------------------------------------------------------------------------------------------


def test_verdict_declares_winner_and_loser_only_when_significant():
    assert verdict(effect=0.02, adjusted_p_value=0.01).code is VerdictCode.WINNER
    assert verdict(effect=-0.02, adjusted_p_value=0.01).code is VerdictCode.LOSER
    assert verdict(effect=0.02, adjusted_p_value=0.05).code is VerdictCode.INCONCLUSIVE
    assert verdict(effect=0.02, adjusted_p_value=float("nan")).code is VerdictCode.INCONCLUSIVE
    lower_is_better = verdict(effect=-0.01, adjusted_p_value=0.001, higher_is_better=False)
    assert lower_is_better.code is VerdictCode.WINNER


def test_verdict_refuses_any_decision_under_sample_ratio_mismatch():
    result = verdict(effect=0.05, adjusted_p_value=1e-8, srm_p_value=SRM_ALERT_P / 2)

    assert result.code is VerdictCode.SAMPLE_RATIO_MISMATCH
    assert result.adjusted_p_value == 1e-8


def test_inconclusive_verdict_carries_the_additional_sample_and_decisions_do_not():
    inconclusive = verdict(effect=0.01, adjusted_p_value=0.3, additional_sample_needed=2400)
    decided = verdict(effect=0.01, adjusted_p_value=0.003, additional_sample_needed=2400)

    assert (inconclusive.code, inconclusive.additional_sample_needed) == ("inconclusive", 2400)
    assert (decided.code, decided.additional_sample_needed) == ("winner", None)
    with pytest.raises(ValueError, match="adjusted_p_value"):
        verdict(effect=0.01, adjusted_p_value=1.5)


@settings(max_examples=200, deadline=None)
@given(
    effect=st.floats(-1, 1),
    p=st.floats(0.05, 1),
    srm=st.one_of(st.none(), st.floats(0, 1)),
)
def test_verdict_never_declares_a_winner_without_significance(effect, p, srm):
    assert verdict(effect=effect, adjusted_p_value=p, srm_p_value=srm).code in {
        VerdictCode.INCONCLUSIVE,
        VerdictCode.SAMPLE_RATIO_MISMATCH,
    }
