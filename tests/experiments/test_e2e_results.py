"""A marketer opens the results page in headless Chromium: verdict text and drawn charts."""

from __future__ import annotations

import os

import pytest

from experiments.models import Metric
from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS, require_chromium
from tests.experiments.builders import assign, events, make_experiment


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_marketer_sees_verdict_and_charts_in_chromium(live_server):
    require_chromium()
    from django.contrib.auth.models import Group, User
    from playwright.sync_api import sync_playwright

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

    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # Playwright's loop runs in this thread
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(locale="en-US", extra_http_headers={"Accept-Language": "en"})
            page.goto(f"{live_server.url}/admin/login/?next={results_path}")
            page.fill("#id_username", "marketer")
            page.fill("#id_password", "Marketer-pass-2026")
            page.click("input[type=submit]")
            page.wait_for_url(f"**{results_path}")
            verdict = page.locator("#verdict").inner_text()
            assert "Variant B increases clicks by 35.0 %" in verdict
            page.wait_for_selector("#chart-cumulative svg.main-svg", timeout=15_000)
            page.wait_for_selector("#chart-forest svg.main-svg", timeout=15_000)
            # The charts have data drawn: a line per arm and a marker with its error bar.
            assert page.locator("#chart-cumulative .scatterlayer .trace").count() == 2
            assert page.locator("#chart-forest .scatterlayer .point").count() >= 1
            browser.close()
    finally:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
