"""Results page, JSON and CSV show the numbers statsmodels/scipy give on the same fixed data."""

from __future__ import annotations

import csv
import io
import math
from datetime import timedelta

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from experiments import statistics as st
from experiments.models import Metric
from experiments.results import experiment_results
from tests.experiments.builders import T0, assign, events, make_contacts, make_experiment

pytestmark = pytest.mark.django_db


def ab_clicks(**fields):
    """Control 1,000 recipients / 100 clickers; B 1,000 / 135; some noise that must not count."""
    experiment = make_experiment(primary_metric=Metric.CLICK, **fields)
    a = assign(experiment, "A", 1000)
    b = assign(experiment, "B", 1000)
    events(a[:100], "email_click")
    events(b[:135], "email_click")
    events(b[:135], "email_click", at=T0 + timedelta(hours=5))  # second click: unique contacts
    events(a[100:150], "email_click", at=T0 - timedelta(days=1))  # before assignment: ignored
    events(a[:3], "unsubscribe")
    events(b[:4], "unsubscribe")
    return experiment


def test_click_comparison_equals_statsmodels():
    experiment = ab_clicks()
    results = experiment_results(experiment=experiment)
    click = next(c for c in results.comparisons if c.metric == "click")
    _z, p = proportions_ztest([135, 100], [1000, 1000])
    low, high = confint_proportions_2indep(135, 1000, 100, 1000, method="wald", compare="diff")
    rlow, rhigh = confint_proportions_2indep(135, 1000, 100, 1000, method="log", compare="ratio")
    assert click.p_value == pytest.approx(p, rel=1e-9)
    assert click.abs_diff == pytest.approx(0.035)
    assert click.abs_ci == pytest.approx((low, high), rel=1e-9)
    assert click.rel_lift == pytest.approx(0.35)
    assert click.rel_ci == pytest.approx((rlow - 1, rhigh - 1), rel=1e-9)
    unsub = next(c for c in results.comparisons if c.metric == "unsubscribe")
    _z, p_unsub = proportions_ztest([4, 3], [1000, 1000])
    family = st.holm([p, p_unsub, float("nan")])  # complaints: no data, no test
    assert click.p_value_adjusted == pytest.approx(family[0], rel=1e-9)
    assert unsub.p_value_adjusted == pytest.approx(family[1], rel=1e-9)
    assert click.verdict == "winner"
    arms = {arm.key: arm for arm in results.arms}
    assert arms["A"].assigned == 1000 and arms["A"].metrics["click"].count == 100
    assert arms["B"].metrics["click"].count == 135


def test_results_page_shows_the_numbers_and_the_verdict(marketer_client):
    experiment = ab_clicks()
    response = marketer_client.get(
        f"/experiments/{experiment.pk}/results/", HTTP_ACCEPT_LANGUAGE="en"
    )
    assert response.status_code == 200
    html = response.content.decode()
    _z, p = proportions_ztest([135, 100], [1000, 1000])
    rlow, rhigh = confint_proportions_2indep(135, 1000, 100, 1000, method="log", compare="ratio")
    assert "Variant B increases clicks by 35.0 %" in html
    assert f"95 % CI {(rlow - 1) * 100:.1f} % to {(rhigh - 1) * 100:.1f} %" in html
    assert f"{p:.4f}" in html
    assert "13.50 %" in html and "10.00 %" in html  # click rates
    assert "1,000" in html  # recipients
    assert 'id="srm-alert"' not in html
    assert "vendor/plotly/plotly-cartesian.min.js" in html and "cdn" not in html.lower()


def test_results_page_in_french(marketer_client):
    experiment = ab_clicks()
    response = marketer_client.get(
        f"/experiments/{experiment.pk}/results/", HTTP_ACCEPT_LANGUAGE="fr"
    )
    html = response.content.decode()
    assert "La variante B augmente les clics de 35,0 %" in html
    assert "Comparaison avec le témoin" in html
    assert "<th>Clics</th>" in html and "<th>Ouvertures</th>" in html  # headings, no article


def test_not_significant_says_how_many_more_recipients_are_needed(marketer_client):
    experiment = make_experiment(primary_metric=Metric.CLICK, minimum_detectable_effect=0.1)
    a = assign(experiment, "A", 500)
    b = assign(experiment, "B", 500)
    events(a[:50], "email_click")
    events(b[:55], "email_click")
    results = experiment_results(experiment=experiment)
    click = results.primary_comparisons()[0]
    needed = st.additional_sample_needed((500, 50), (500, 55), 0.1, 0.05, 0.8)
    assert click.verdict == "inconclusive" and click.additional_sample_needed == needed
    html = marketer_client.get(
        f"/experiments/{experiment.pk}/results/", HTTP_ACCEPT_LANGUAGE="en"
    ).content.decode()
    magnitude = 10 ** (len(str(needed)) - 2)
    rounded = math.ceil(needed / magnitude) * magnitude
    verdict = html[html.index('<section id="verdict">') : html.index("</section>")]
    assert (
        f"not enough evidence yet; about {rounded:,} more recipients per variant needed" in verdict
    )
    assert "increases" not in verdict and "decreases" not in verdict


def test_sample_ratio_mismatch_shows_alert_and_no_winner(marketer_client):
    experiment = make_experiment(primary_metric=Metric.CLICK)
    a = assign(experiment, "A", 1200)
    b = assign(experiment, "B", 900)
    events(a[:60], "email_click")
    events(b[:200], "email_click")
    results = experiment_results(experiment=experiment)
    assert results.srm_p_value == pytest.approx(sps.chisquare([1200, 900]).pvalue)
    assert results.srm_alert
    assert results.primary_comparisons()[0].verdict == "sample_ratio_mismatch"
    html = marketer_client.get(
        f"/experiments/{experiment.pk}/results/", HTTP_ACCEPT_LANGUAGE="en"
    ).content.decode()
    assert 'id="srm-alert"' in html and "Sample ratio mismatch" in html
    verdict = html[html.index('<section id="verdict">') : html.index("</section>")]
    assert "increases" not in verdict and "decreases" not in verdict


def test_opens_exclude_machine_opens_and_conversions_respect_the_window():
    experiment = make_experiment(primary_metric=Metric.CONVERSION, conversion_window_days=7)
    a = assign(experiment, "A", 100)
    b = assign(experiment, "B", 100)
    events(a[:30], "email_open", machine_open=False)
    events(a[30:60], "email_open", machine_open=True)  # Apple MPP and scanners: excluded
    events(b[:10], "email_open")
    events(a[:5], "purchase", amount=10.0, at=T0 + timedelta(days=2))
    events(a[5:9], "purchase", amount=10.0, at=T0 + timedelta(days=8))  # outside the window
    events(b[:12], "purchase", amount=20.0, at=T0 + timedelta(days=6, hours=23))
    arms = {arm.key: arm for arm in experiment_results(experiment=experiment).arms}
    assert arms["A"].metrics["open"].count == 30
    assert arms["B"].metrics["open"].count == 10
    assert arms["A"].metrics["conversion"].count == 5
    assert arms["B"].metrics["conversion"].count == 12


def test_revenue_per_recipient_is_welch_on_per_recipient_values():
    experiment = make_experiment(primary_metric=Metric.REVENUE)
    a = assign(experiment, "A", 300)
    b = assign(experiment, "B", 300)
    rng = np.random.default_rng(7)
    a_amounts = np.round(rng.lognormal(3.5, 0.6, 40), 2)
    b_amounts = np.round(rng.lognormal(3.7, 0.6, 55), 2)
    for cid, amount in zip(a[:40], a_amounts, strict=True):
        events([cid], "purchase", amount=float(amount))
    for cid, amount in zip(b[:55], b_amounts, strict=True):
        events([cid], "purchase", amount=float(amount))
    events(b[:10], "purchase", amount=5.0, at=T0 + timedelta(days=1))  # second purchase adds up
    per_a = np.zeros(300)
    per_a[:40] = a_amounts
    per_b = np.zeros(300)
    per_b[:55] = b_amounts
    per_b[:10] += 5.0
    results = experiment_results(experiment=experiment)
    revenue = results.primary_comparisons()[0]
    welch = sps.ttest_ind(per_b, per_a, equal_var=False)
    assert revenue.p_value == pytest.approx(welch.pvalue, rel=1e-6)
    assert revenue.abs_diff == pytest.approx(per_b.mean() - per_a.mean(), rel=1e-9)
    expected = st.compare_means(per_a, per_b)
    assert revenue.abs_ci == pytest.approx(expected.abs_ci, rel=1e-6)


def test_sequential_mode_reports_always_valid_p_over_daily_looks():
    experiment = make_experiment(primary_metric=Metric.CLICK, sequential=True)
    a1 = assign(experiment, "A", 400, at=T0)
    b1 = assign(experiment, "B", 400, at=T0)
    a2 = assign(experiment, "A", 400, at=T0 + timedelta(days=1))
    b2 = assign(experiment, "B", 400, at=T0 + timedelta(days=1))
    events(a1[:40], "email_click", at=T0 + timedelta(hours=3))
    events(b1[:60], "email_click", at=T0 + timedelta(hours=3))
    events(a2[:40], "email_click", at=T0 + timedelta(days=1, hours=3))
    events(b2[:70], "email_click", at=T0 + timedelta(days=1, hours=3))
    click = experiment_results(experiment=experiment).primary_comparisons()[0]
    history = st.sequential_proportions_history([((400, 40), (400, 60)), ((800, 80), (800, 130))])
    assert click.sequential_p_value == pytest.approx(history.p_value, rel=1e-9)
    assert click.sequential_ci == pytest.approx(history.ci, rel=1e-9)
    assert click.decision_p_value == click.sequential_p_value


def test_holdout_measures_the_lift_of_the_campaign():
    experiment = make_experiment(
        primary_metric=Metric.CONVERSION,
        arms=(("A", 1, True, False), ("B", 1, False, False), ("H", 1, False, True)),
    )
    a = assign(experiment, "A", 800)
    assign(experiment, "B", 800)
    h = assign(experiment, "H", 800)
    events(a[:80], "purchase", amount=30.0)
    events(h[:40], "purchase", amount=30.0)
    results = experiment_results(experiment=experiment)
    conversion = next(c for c in results.holdout_comparisons if c.metric == "conversion")
    _z, p = proportions_ztest([80, 40], [800, 800])
    assert conversion.p_value == pytest.approx(p, rel=1e-9)
    assert conversion.verdict == "winner"
    assert "The campaign increases conversions by 100.0 %" in conversion.sentence
    assert all(c.variant_key != "H" for c in results.comparisons)


def test_json_api_has_the_same_numbers_and_needs_the_scope(marketer_client):
    from django.test import Client

    from contacts.api_keys import api_key_create

    client = Client()
    experiment = ab_clicks()
    _key, good = api_key_create(name="reader", scopes=["experiments:read"])
    _key, bad = api_key_create(name="other", scopes=["contacts:read"])
    url = f"/api/v1/experiments/{experiment.pk}/results"
    assert client.get(url).status_code in (401, 403)
    assert client.get(url, HTTP_AUTHORIZATION=f"Api-Key {bad}").status_code == 403
    response = client.get(url, HTTP_AUTHORIZATION=f"Api-Key {good}")
    assert response.status_code == 200
    data = response.json()
    results = experiment_results(experiment=experiment)
    click = next(c for c in data["comparisons"] if c["metric"] == "click")
    expected = next(c for c in results.comparisons if c.metric == "click")
    assert click["p_value"] == pytest.approx(expected.p_value, rel=1e-12)
    assert click["p_value_adjusted"] == pytest.approx(expected.p_value_adjusted, rel=1e-12)
    assert click["rel_ci"] == pytest.approx(list(expected.rel_ci), rel=1e-12)
    assert click["prob_beat_control"] == pytest.approx(expected.prob_beat_control, rel=1e-12)
    assert [arm["assigned"] for arm in data["arms"]] == [1000, 1000]
    complaint = next(c for c in data["comparisons"] if c["metric"] == "complaint")
    assert complaint["p_value"] is None  # undefined statistics are null, never NaN
    assert marketer_client.get(url).status_code == 200  # staff session


def test_csv_export_lists_every_arm_and_metric(marketer_client):
    experiment = ab_clicks()
    response = marketer_client.get(f"/experiments/{experiment.pk}/results.csv")
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    click_b = next(r for r in rows if r["variant"] == "B" and r["metric"] == "click")
    assert click_b["count"] == "135" and float(click_b["value"]) == pytest.approx(0.135)
    _z, p = proportions_ztest([135, 100], [1000, 1000])
    assert float(click_b["p_value"]) == pytest.approx(p, rel=1e-9)
    assert click_b["verdict"] == "winner"
    assert {r["variant"] for r in rows} == {"A", "B"}


def test_results_need_a_login_and_the_permission(client, db):
    from django.contrib.auth.models import User

    experiment = ab_clicks()
    url = f"/experiments/{experiment.pk}/results/"
    assert client.get(url).status_code == 302
    client.force_login(User.objects.create_user("nobody", is_staff=True))
    assert client.get(url).status_code == 403


def test_sample_size_calculator_page(marketer_client):
    response = marketer_client.get(
        "/experiments/plan/",
        {
            "baseline_rate": 10,
            "relative_mde": 20,
            "alpha": 0.05,
            "power": 80,
            "variants": 2,
            "sample_share": 100,
            "audience": 5000,
        },
        HTTP_ACCEPT_LANGUAGE="en",
    )
    html = response.content.decode()
    assert st.sample_size_per_variant(0.1, 0.2) == 3835
    assert "3,835 contacts per variant" in html
    assert 'id="audience-warning"' in html and "7,670" in html


def test_plotly_is_served_locally_as_the_small_cartesian_bundle():
    from django.contrib.staticfiles import finders

    path = finders.find("vendor/plotly/plotly-cartesian.min.js")
    assert path is not None
    with open(path, "rb") as fh:
        body = fh.read()
    # The partial bundle (scatter, bar, heatmap…), not the 4.8 MB full one.
    assert b"plotly.js (cartesian - minified)" in body[:300] and len(body) < 2_000_000


def test_events_arriving_later_are_counted_once_on_the_next_read():
    from experiments.outcomes import outcomes_refresh

    experiment = make_experiment(primary_metric=Metric.CLICK)
    a = assign(experiment, "A", 100)
    b = assign(experiment, "B", 100)
    events(a[:10], "email_click")
    first = {
        arm.key: arm.metrics["click"].count
        for arm in experiment_results(experiment=experiment).arms
    }
    assert first == {"A": 10, "B": 0}
    events(b[:20], "email_click", at=T0 + timedelta(days=1))
    events(a[:10], "email_click", at=T0 + timedelta(days=1))  # same contacts click again
    outcomes_refresh(experiment=experiment, full=True)  # the hourly full pass: harmless
    second = {
        arm.key: arm.metrics["click"].count
        for arm in experiment_results(experiment=experiment).arms
    }
    assert second == {"A": 10, "B": 20}


def test_merged_contact_outcomes_follow_its_events():
    from contacts.models import Event
    from experiments.services import assignments_move_merged

    experiment = make_experiment(primary_metric=Metric.CONVERSION)
    survivor = assign(experiment, "A", 1)[0]
    duplicate = make_contacts(1)[0]
    events([duplicate], "purchase", amount=42.0)
    experiment_results(experiment=experiment)
    Event.objects.filter(contact_id=duplicate).update(contact_id=survivor)  # what a merge does
    assignments_move_merged(survivor_id=survivor, merged_ids=[duplicate])
    arm = experiment_results(experiment=experiment).arms[0]
    assert arm.metrics["conversion"].count == 1 and arm.metrics["revenue"].value == 42.0


def test_beat_catches_outcomes_up_between_full_passes_so_the_page_has_little_left(settings):
    """Beat's catch-up (every few minutes) folds in the events stored since the watermark:
    the results page opened next finds the outcomes current and refreshes nothing inline."""
    from django.db.models import Max

    from config.celery import app
    from contacts.models import Event
    from experiments.models import Assignment

    app.loader.import_default_modules()  # the tasks a worker registers when it starts
    entry = settings.CELERY_BEAT_SCHEDULE["experiments-catch-up-outcomes"]
    assert entry["task"] in app.tasks  # the worker knows the task beat sends
    full = settings.CELERY_BEAT_SCHEDULE["experiments-refresh-outcomes"]["schedule"]
    assert entry["schedule"] < full
    experiment = make_experiment(primary_metric=Metric.CLICK)
    a = assign(experiment, "A", 50)
    b = assign(experiment, "B", 50)
    draft = make_experiment(status="draft")
    events(a[:5], "email_click")
    events(b[:15], "email_click")
    app.tasks[entry["task"]].apply().get()
    # Done by beat, before anyone opens the page: the clicks are in the outcomes and the
    # watermark is at the newest event, so the page's own refresh has nothing to read.
    clicked = Assignment.objects.filter(experiment=experiment, first_click_at__isnull=False)
    assert clicked.count() == 20
    experiment.refresh_from_db()
    assert experiment.outcomes_event_id == Event.objects.aggregate(m=Max("pk"))["m"]
    counts = {
        arm.key: arm.metrics["click"].count
        for arm in experiment_results(experiment=experiment).arms
    }
    assert counts == {"A": 5, "B": 15}
    draft.refresh_from_db()
    assert draft.outcomes_refreshed_at is None  # drafts are left alone
