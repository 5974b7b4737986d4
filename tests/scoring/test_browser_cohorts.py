"""The cohort heatmap in headless Chromium at 1,400 px: month labels drawn whole inside the
chart (not clipped to "i-01 (77)") and no horizontal scroll."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.browser import logged_in_page

WIDTH = 1400


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_cohort_heatmap_labels_fit_and_the_page_fits_the_window(live_server):
    from django.contrib.auth.models import User
    from django.utils import timezone

    from contacts.models import Contact

    User.objects.create_superuser("analyst", "a@example.fr", "Analyst-pass-2026")
    now = timezone.now()
    Contact.objects.bulk_create(
        [
            Contact(external_id=f"c{m}-{i}", created_at=now - timedelta(days=31 * m + 1))
            for m in range(24)
            for i in range(77 + m)
        ]
    )
    path = "/admin/scoring/scoringmodel/cohorts/?by=signup&months=24"
    with logged_in_page(
        live_server,
        username="analyst",
        password="Analyst-pass-2026",
        path=path,
        language="fr",
        viewport={"width": WIDTH, "height": 900},
    ) as page:
        page.wait_for_selector("#scoring-chart-0 svg.main-svg", timeout=15_000)
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        assert scroll_width <= WIDTH, f"page is {scroll_width} px wide in a {WIDTH} px window"
        chart = page.locator("#scoring-chart-0 svg.main-svg").first.bounding_box()
        labels = page.locator("#scoring-chart-0 .yaxislayer-above .ytick text")
        assert labels.count() >= 20
        for i in range(labels.count()):
            box = labels.nth(i).bounding_box()
            text = labels.nth(i).text_content()
            assert box["x"] >= chart["x"], f"label “{text}” starts left of the chart"
        month = datetime.now(UTC).strftime("%Y-%m")
        texts = [labels.nth(i).text_content() for i in range(labels.count())]
        assert any(t.startswith(f"{month[:4]}-") and t.endswith(")") for t in texts), texts
