"""The CLV likelihoods and predictions against published values, an independent
implementation (lifetimes) and simulations from known parameters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import check_grad

from segments.scoring import btyd
from tests.scoring.simulate import simulate

CDNOW = Path(__file__).parent / "data" / "cdnow_customers_summary.csv"


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    """CDNOW sample (2,357 customers, weeks), as distributed with the lifetimes package."""
    return pd.read_csv(CDNOW)


def test_bgnbd_fit_reproduces_the_published_cdnow_estimates(cdnow):
    # Fader, Hardie & Lee (2005a), section 5: r = 0.243, α = 4.414, a = 0.793, b = 2.426,
    # LL = -9582.4.
    fit = btyd.bgnbd_fit(cdnow["x"], cdnow["t_x"], cdnow["T"])
    assert fit.params.r == pytest.approx(0.243, abs=5e-4)
    assert fit.params.alpha == pytest.approx(4.414, abs=5e-3)
    assert fit.params.a == pytest.approx(0.793, abs=5e-4)
    assert fit.params.b == pytest.approx(2.426, abs=5e-3)
    assert fit.log_likelihood == pytest.approx(-9582.4, abs=0.1)


def test_gamma_gamma_fit_reproduces_the_published_cdnow_estimates(cdnow):
    # Fader & Hardie (2013), "The Gamma-Gamma model of monetary value": p = 6.25, q = 3.74,
    # γ = 15.44 on the 946 CDNOW repeat buyers.
    repeat = cdnow[cdnow["x"] > 0]
    assert len(repeat) == 946
    fit = btyd.gamma_gamma_fit(repeat["x"], repeat["zbar"])
    assert fit.params.p == pytest.approx(6.25, abs=0.01)
    assert fit.params.q == pytest.approx(3.74, abs=0.01)
    assert fit.params.gamma == pytest.approx(15.44, abs=0.02)


def test_predictions_match_the_lifetimes_implementation(cdnow):
    # Reference values computed with lifetimes 0.11.3 (BetaGeoFitter / GammaGammaFitter) on the
    # same CDNOW data: conditional expected purchases in 39 weeks, P(alive), expected average
    # profit and 12-month CLV at 1 % monthly discount (4.345 weeks per month).
    bg = btyd.bgnbd_fit(cdnow["x"], cdnow["t_x"], cdnow["T"]).params
    gg = btyd.gamma_gamma_fit(cdnow["x"], cdnow["zbar"]).params
    rows = cdnow.iloc[[0, 1, 5, 10, 50]]
    x, t_x, T, m = (rows[c].to_numpy(dtype=float) for c in ("x", "t_x", "T", "zbar"))
    expected = btyd.bgnbd_expected_purchases(bg, 39.0, x, t_x, T)
    assert expected == pytest.approx([1.22591, 0.203251, 3.337240, 1.870992, 0.195965], rel=1e-4)
    alive = btyd.bgnbd_probability_alive(bg, x, t_x, T)
    assert alive == pytest.approx([0.726609, 0.212227, 0.641801, 0.491427, 1.0], rel=1e-4)
    spend = btyd.gamma_gamma_expected_spend(gg, x, m)
    assert spend == pytest.approx([24.65862, 18.91148, 71.46285, 29.90278, 35.17100], rel=1e-5)
    clv = btyd.discounted_clv(
        bg, spend, x, t_x, T, months=12, month_length=4.345, monthly_discount=0.01
    )
    assert clv == pytest.approx([36.27850, 4.637466, 283.5236, 66.65940, 8.393664], rel=1e-4)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_bgnbd_fit_recovers_simulated_parameters_within_sampling_error(seed):
    true = btyd.BgNbdParams(r=0.5, alpha=20.0, a=0.8, b=3.0)  # days
    sim = simulate(n=20_000, seed=seed, **true.as_dict(), T_low=200, T_high=500)
    fit = btyd.bgnbd_fit(sim.x, sim.t_x, sim.T)
    estimate = np.log(list(fit.params.as_dict().values()))
    truth = np.log(list(true.as_dict().values()))
    se = np.array(fit.log_se)
    assert np.all(np.isfinite(se)) and np.all(se < 0.5)
    # Within 4 standard errors on every parameter (a miss has probability < 1e-3 per seed).
    assert np.all(np.abs(estimate - truth) < 4 * se), (fit.params, se)


@pytest.mark.parametrize("seed", [1, 2])
def test_gamma_gamma_fit_recovers_simulated_parameters_within_sampling_error(seed):
    sim = simulate(
        n=20_000,
        seed=seed,
        r=0.5,
        alpha=20.0,
        a=0.8,
        b=3.0,
        T_low=200,
        T_high=500,
        p=6.0,
        q=4.0,
        gamma=15.0,
    )
    fit = btyd.gamma_gamma_fit(sim.x, sim.m)
    estimate = np.log([fit.params.p, fit.params.q, fit.params.gamma])
    truth = np.log([6.0, 4.0, 15.0])
    assert np.all(np.abs(estimate - truth) < 4 * np.array(fit.log_se)), fit.params


def test_simulated_p_alive_separates_active_from_dropped_customers():
    sim = simulate(n=5_000, seed=7, r=0.5, alpha=20.0, a=0.8, b=3.0, T_low=300, T_high=300)
    fit = btyd.bgnbd_fit(sim.x, sim.t_x, sim.T)
    alive = btyd.bgnbd_probability_alive(fit.params, sim.x, sim.t_x, sim.T)
    # A repeat buyer silent for most of the period is less likely alive than one who just bought.
    recent = (sim.x >= 3) & (sim.T - sim.t_x < 20)
    silent = (sim.x >= 3) & (sim.T - sim.t_x > 200)
    assert alive[recent].mean() > 0.8 > 0.3 > alive[silent].mean()


def test_analytic_gradients_match_finite_differences(cdnow):
    x, t_x, T = (cdnow[c].to_numpy(dtype=float) for c in ("x", "t_x", "T"))
    at = np.log([0.3, 5.0, 0.9, 2.0])
    error = check_grad(
        lambda v: btyd.bgnbd_log_likelihood_terms(v, x, t_x, T)[0].sum(),
        lambda v: btyd.bgnbd_log_likelihood_terms(v, x, t_x, T)[1].sum(axis=0),
        at,
    )
    assert error < 1e-3
    rep = cdnow[cdnow["x"] > 0]
    gx, gm = rep["x"].to_numpy(float), rep["zbar"].to_numpy(float)
    at = np.log([5.0, 3.0, 12.0])
    error = check_grad(
        lambda v: btyd.gamma_gamma_log_likelihood_terms(v, gx, gm)[0].sum(),
        lambda v: btyd.gamma_gamma_log_likelihood_terms(v, gx, gm)[1].sum(axis=0),
        at,
    )
    assert error < 1e-3


def test_no_repeat_buyer_is_refused_with_a_reason():
    with pytest.raises(btyd.FitError, match="repeat buyers"):
        btyd.bgnbd_fit(np.zeros(500), np.zeros(500), np.full(500, 30.0))


def test_identical_spend_is_refused_with_a_reason():
    with pytest.raises(btyd.FitError, match="same"):
        btyd.gamma_gamma_fit(np.ones(50), np.full(50, 20.0))


def test_population_expectation_grows_with_time_and_equals_the_conditional_at_zero_history():
    params = btyd.BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
    population = btyd.bgnbd_population_expected_purchases(params, np.array([10.0, 39.0, 78.0]))
    assert np.all(np.diff(population) > 0)
    # A brand-new customer (x = 0, T → 0) has the population expectation.
    conditional = btyd.bgnbd_expected_purchases(
        params, 39.0, np.array([0.0]), np.array([0.0]), np.array([1e-9])
    )
    assert conditional[0] == pytest.approx(population[1], rel=1e-6)


def test_homogeneous_dropout_is_a_valid_limit_not_a_failed_fit():
    # Everyone drops out with the same probability 0.2 (Beta(a, b) collapsed to a point), as in
    # the demo population: a and b run off together, predictions stay well defined.
    sim = simulate(n=20_000, seed=5, r=0.5, alpha=20.0, a=1e6, b=4e6, T_low=200, T_high=500)
    fit = btyd.bgnbd_fit(sim.x, sim.t_x, sim.T)
    p = fit.params.a / (fit.params.a + fit.params.b)
    assert fit.params.a > 100 and p == pytest.approx(0.2, abs=0.02)
    alive = btyd.bgnbd_probability_alive(fit.params, sim.x, sim.t_x, sim.T)
    assert np.all((alive >= 0) & (alive <= 1))


def test_likelihood_stays_smooth_where_dropout_becomes_homogeneous(cdnow):
    # With a and b in the millions (the homogeneous-dropout ridge the fit walks along on large
    # populations), a difference of two log-gammas of ~10⁷ would lose half its digits and the
    # line search would stall ("ABNORMAL"); the finite sums used for counts stay exact.
    x, t_x, T = (cdnow[c].to_numpy(dtype=float) for c in ("x", "t_x", "T"))
    at = np.log([0.25, 4.4, 3e5, 2e6])

    def total(v):
        return btyd.bgnbd_log_likelihood_terms(v, x, t_x, T)[0].sum()

    exact = sum(
        sum(np.log1p(-3e5 / (3e5 + 2e6 + k)) for k in range(int(n))) for n in x
    )  # Σ log[Γ(b+x)Γ(a+b) / (Γ(b)Γ(a+b+x))], term by term
    r, alpha, a, b = np.exp(at)
    reference = (
        sum(float(np.sum(np.log(r + np.arange(int(n))))) for n in x)
        + len(x) * r * np.log(alpha)
        + exact
        + np.logaddexp(
            -(r + x) * np.log(alpha + T),
            np.where(
                x > 0,
                np.log(a) - np.log(np.where(x > 0, b + x - 1, 1)) - (r + x) * np.log(alpha + t_x),
                -np.inf,
            ),
        ).sum()
    )
    assert total(at) == pytest.approx(reference, rel=1e-12)
    step = 1e-6
    for i in range(4):
        shift = np.zeros(4)
        shift[i] = step
        numeric = (total(at + shift) - total(at - shift)) / (2 * step)
        analytic = btyd.bgnbd_log_likelihood_terms(at, x, t_x, T)[1].sum(axis=0)[i]
        assert numeric == pytest.approx(analytic, rel=1e-4, abs=1e-3)


def test_compress_groups_identical_rows_and_maps_every_row_back():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 4, 5_000).astype(float)
    T = rng.integers(1, 50, 5_000) + 0.25
    groups = btyd.compress(x, T)
    assert groups.weights.sum() == 5_000
    assert len(groups.weights) == len({(a, b) for a, b in zip(x, T, strict=True)})
    assert np.array_equal(groups.columns[0][groups.inverse], x)
    assert np.array_equal(groups.columns[1][groups.inverse], T)


def test_expected_purchases_per_customer_horizon_equals_one_horizon_at_a_time(cdnow):
    x, t_x, T = (cdnow[c].to_numpy(dtype=float)[:200] for c in ("x", "t_x", "T"))
    params = btyd.BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
    horizons = np.where(np.arange(200) % 2, 39.0, 52.0)
    together = btyd.bgnbd_expected_purchases(params, horizons, x, t_x, T)
    for h in (39.0, 52.0):
        alone = btyd.bgnbd_expected_purchases(params, h, x, t_x, T)
        assert np.allclose(together[horizons == h], alone[horizons == h], rtol=1e-12)
