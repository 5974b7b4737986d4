"""Simulated experiments: error rates, power and coverage of experiments.statistics.

Every test draws from its own seeded numpy Generator, so results are deterministic; the bounds
are set a few Monte Carlo standard errors around the rate the method promises (the measured
values are noted next to each assertion), so a broken method fails them. Experiments are simulated all at once with numpy arrays (experiments x
looks); the public functions are then applied to each simulated experiment, or, where a test
needs tens of thousands of p-values, their vectorised kernels (checked equal to the public
functions in test_statistics.py and below).
"""

import math

import numpy as np
import pytest

from experiments.statistics import (
    SRM_ALERT_P,
    MeanSummary,
    VerdictCode,
    compare_means,
    compare_proportions,
    compare_proportions_omnibus,
    holm,
    msprt_p_values,
    sample_size_per_variant,
    sequential_proportions_history,
    srm_p_value,
    two_proportion_z_test,
    verdict,
)

ALPHA = 0.05


def daily_cumulative_conversions(rng, *, experiments, looks, per_day, rates):
    """Cumulative conversions, shape (arms, experiments, looks), and cumulative recipients."""
    rates = np.asarray(rates, dtype=float)[:, None, None]
    daily = rng.binomial(per_day, rates, size=(rates.shape[0], experiments, looks))
    return daily.cumsum(axis=2), per_day * np.arange(1, looks + 1)


def history_of(experiment, x, n):
    """Looks of one simulated two-arm experiment, as sequential_proportions_history takes them."""
    return [
        ((int(n[j]), int(x[0, experiment, j])), (int(n[j]), int(x[1, experiment, j])))
        for j in range(n.size)
    ]


def test_aa_false_positive_rate_of_fixed_horizon_z_test_is_nominal():
    rng = np.random.default_rng(101)
    experiments, n = 1000, 5000
    conversions = rng.binomial(n, 0.10, size=(2, experiments))

    results = [compare_proportions((n, int(c)), (n, int(t)), alpha=ALPHA) for c, t in conversions.T]
    false_positive_rate = np.mean([r.significant for r in results])

    assert 0.035 <= false_positive_rate <= 0.065  # 5 % +/- 1.5 %; measured 0.060


def test_naive_peeking_inflates_false_positives_but_sequential_does_not():
    rng = np.random.default_rng(202)
    experiments, looks = 1000, 14  # two weeks, one look a day
    x, n = daily_cumulative_conversions(
        rng, experiments=experiments, looks=looks, per_day=700, rates=[0.05, 0.05]
    )

    _, z_p = two_proportion_z_test(n, x[0], n, x[1])
    naive_rate = np.mean((z_p < ALPHA).any(axis=1))
    final_look_rate = np.mean(z_p[:, -1] < ALPHA)
    histories = [sequential_proportions_history(history_of(i, x, n)) for i in range(experiments)]
    sequential_rate = np.mean([h.significant for h in histories])

    assert 0.035 <= final_look_rate <= 0.065  # one look: the z-test is fine (measured 0.046)
    assert naive_rate > 0.12  # stopping at the first significant look: measured 0.214
    assert sequential_rate <= ALPHA  # always-valid: measured 0.009
    vectorised = np.minimum.accumulate(msprt_p_values(n, x[0], n, x[1]), axis=1)
    assert np.allclose([h.p_values for h in histories], vectorised, rtol=1e-12, atol=0)


@pytest.mark.parametrize(
    ("per_day", "rate", "looks"),
    [(50, 0.02, 14), (200, 0.01, 30), (5000, 0.2, 14), (700, 0.05, 60)],
)
def test_sequential_false_positive_rate_stays_below_alpha_for_sparse_and_long_monitoring(
    per_day, rate, looks
):
    rng = np.random.default_rng(303)
    x, n = daily_cumulative_conversions(
        rng, experiments=2000, looks=looks, per_day=per_day, rates=[rate, rate]
    )

    always_valid = np.minimum.accumulate(msprt_p_values(n, x[0], n, x[1]), axis=1)

    assert np.mean(always_valid[:, -1] < ALPHA) <= ALPHA  # measured 0.002 to 0.022


def test_sequential_test_detects_a_real_lift_and_often_stops_early():
    rng = np.random.default_rng(404)
    experiments, looks = 1000, 14
    planned = sample_size_per_variant(0.10, 0.20)  # fixed-horizon size for 10 % -> 12 %
    per_day = math.ceil(1.5 * planned / looks)
    x, n = daily_cumulative_conversions(
        rng, experiments=experiments, looks=looks, per_day=per_day, rates=[0.10, 0.12]
    )

    histories = [sequential_proportions_history(history_of(i, x, n)) for i in range(experiments)]
    power = np.mean([h.significant for h in histories])
    stopped_by_day_10 = np.mean(
        [h.first_significant_look is not None and h.first_significant_look < 10 for h in histories]
    )

    assert power > 0.55  # measured 0.675 with 1.5x the fixed-horizon sample
    assert stopped_by_day_10 > 0.35  # measured 0.414
    assert all(h.abs_diff > 0 for h in histories if h.significant)


def test_confidence_sequence_covers_the_true_difference_at_every_look():
    rng = np.random.default_rng(505)
    experiments, looks = 1000, 14
    x, n = daily_cumulative_conversions(
        rng, experiments=experiments, looks=looks, per_day=1000, rates=[0.10, 0.11]
    )

    histories = [sequential_proportions_history(history_of(i, x, n)) for i in range(experiments)]
    always_covered = np.mean(
        [all(lo <= 0.01 <= hi for lo, hi in h.cis) for h in histories]  # nan never covers
    )

    assert always_covered >= 1 - ALPHA  # measured 0.994


@pytest.mark.parametrize(
    ("baseline", "relative_mde", "power"), [(0.10, 0.20, 0.80), (0.03, -0.15, 0.90)]
)
def test_power_at_planned_sample_size_matches_target(baseline, relative_mde, power):
    rng = np.random.default_rng(606)
    experiments = 4000
    n = sample_size_per_variant(baseline, relative_mde, alpha=ALPHA, power=power)
    control = rng.binomial(n, baseline, experiments)
    treatment = rng.binomial(n, baseline * (1 + relative_mde), experiments)

    _, p = two_proportion_z_test(n, control, n, treatment)
    achieved = np.mean(p < ALPHA)

    assert achieved == pytest.approx(power, abs=0.03)  # measured 0.794 and 0.903
    first = compare_proportions((n, int(control[0])), (n, int(treatment[0])))
    assert first.p_value == pytest.approx(p[0], rel=1e-12)


def test_fixed_horizon_intervals_cover_the_true_lift_at_the_nominal_rate():
    rng = np.random.default_rng(707)
    experiments, n, p_c, p_t = 2000, 3000, 0.10, 0.12
    conversions = rng.binomial(n, [[p_c], [p_t]], size=(2, experiments))

    results = [compare_proportions((n, int(c)), (n, int(t))) for c, t in conversions.T]
    abs_coverage = np.mean([r.abs_ci[0] <= p_t - p_c <= r.abs_ci[1] for r in results])
    rel_coverage = np.mean([r.rel_ci[0] <= p_t / p_c - 1 <= r.rel_ci[1] for r in results])

    assert abs_coverage == pytest.approx(0.95, abs=0.015)  # measured 0.948
    assert rel_coverage == pytest.approx(0.95, abs=0.015)  # measured 0.949


def test_welch_intervals_cover_the_true_revenue_lift_on_skewed_data():
    rng = np.random.default_rng(808)
    experiments, n, buy_rate, mu, sigma, lift = 2000, 1000, 0.2, 3.0, 1.0, 0.10
    true_control_mean = buy_rate * math.exp(mu + sigma**2 / 2)
    bought = rng.random((2, experiments, n)) < buy_rate
    basket = rng.lognormal(mu, sigma, (2, experiments, n))
    basket[1] *= 1 + lift
    revenue = bought * basket  # per recipient: mostly zeros, a long right tail
    means, variances = revenue.mean(axis=2), revenue.var(axis=2, ddof=1)

    results = [
        compare_means(
            MeanSummary(n=n, mean=means[0, i], variance=variances[0, i]),
            MeanSummary(n=n, mean=means[1, i], variance=variances[1, i]),
        )
        for i in range(experiments)
    ]
    true_diff = lift * true_control_mean
    abs_coverage = np.mean([r.abs_ci[0] <= true_diff <= r.abs_ci[1] for r in results])
    rel_coverage = np.mean([r.rel_ci[0] <= lift <= r.rel_ci[1] for r in results])

    assert abs_coverage == pytest.approx(0.95, abs=0.02)  # measured 0.946
    assert rel_coverage == pytest.approx(0.95, abs=0.02)  # measured 0.941


def test_holm_keeps_familywise_false_winners_at_alpha_in_aaaa_experiments():
    rng = np.random.default_rng(909)
    experiments, n = 5000, 2000
    conversions = rng.binomial(n, 0.10, size=(4, experiments))  # control + 3 identical variants

    _, p = two_proportion_z_test(n, conversions[0], n, conversions[1:])  # shape (3, experiments)
    adjusted = np.array([holm(p[:, i]) for i in range(experiments)])
    uncorrected_fwer = np.mean((p < ALPHA).any(axis=0))
    holm_fwer = np.mean((adjusted < ALPHA).any(axis=1))
    winners = np.mean(
        [
            any(
                verdict(effect=float(c - conversions[0, i]) / n, adjusted_p_value=a).code
                is VerdictCode.WINNER
                for c, a in zip(conversions[1:, i], adjusted[i], strict=True)
            )
            for i in range(experiments)
        ]
    )

    assert uncorrected_fwer > 0.09  # measured 0.127
    assert holm_fwer <= ALPHA + 0.005  # measured 0.043
    assert winners <= ALPHA / 2 + 0.005  # one direction of the above: measured 0.023


def test_omnibus_chi_square_false_positive_rate_is_nominal_for_aaaa():
    rng = np.random.default_rng(1010)
    experiments, n = 2000, 2000
    conversions = rng.binomial(n, 0.08, size=(experiments, 4))

    p = [compare_proportions_omnibus([(n, int(x)) for x in row]).p_value for row in conversions]

    assert np.mean(np.asarray(p) < ALPHA) == pytest.approx(ALPHA, abs=0.015)  # measured 0.045


def test_srm_flags_a_52_48_imbalance_on_100k_but_not_a_balanced_assignment():
    rng = np.random.default_rng(1111)
    total, experiments = 100_000, 1000
    balanced = rng.binomial(total, 0.50, experiments)
    skewed = rng.binomial(total, 0.52, experiments)

    balanced_alerts = np.mean([srm_p_value([a, total - a], [1, 1]) < SRM_ALERT_P for a in balanced])
    skewed_alerts = np.mean([srm_p_value([a, total - a], [1, 1]) < SRM_ALERT_P for a in skewed])

    assert srm_p_value([52_000, 48_000], [50, 50]) < SRM_ALERT_P
    assert srm_p_value([50_000, 50_000], [50, 50]) == pytest.approx(1.0)
    assert skewed_alerts == 1.0
    assert balanced_alerts <= 0.005  # expected 0.001, measured 0
