"""A marketer opens the results page in headless Chromium: verdict text and drawn charts."""

from __future__ import annotations

import pytest

from experiments.models import Metric
from tests.e2e.browser import logged_in_page
from tests.experiments.builders import assign, events, make_experiment


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_marketer_sees_verdict_and_charts_in_chromium(live_server):
    from django.contrib.auth.models import Group, User

    from ops.roles import roles_sync

    roles_sync()
    user = User.objects.create_user("marketer", password="Marketer-pass-2026", is_staff=True)
    user.groups.add(Group.objects.get(name="Marketer"))
    experiment = make_experiment(primary_metric=Metric.CLICK, name="Soldes d'été")
    a = assign(experiment, "A", 1000)
    b = assign(experiment, "B", 1000)
    events(a[:100], "email_click")
    events(b[:135], "email_click")
    results_path = f"/experiments/{experiment.pk}/results/"

    with logged_in_page(
        live_server, username="marketer", password="Marketer-pass-2026", path=results_path
    ) as page:
        verdict = page.locator("#verdict").inner_text()
        assert "Variant B increases clicks by 35.0 %" in verdict
        page.wait_for_selector("#chart-cumulative svg.main-svg", timeout=15_000)
        page.wait_for_selector("#chart-forest svg.main-svg", timeout=15_000)
        # The charts have data drawn: a line per arm and a marker with its error bar.
        assert page.locator("#chart-cumulative .scatterlayer .trace").count() == 2
        assert page.locator("#chart-forest .scatterlayer .point").count() >= 1
