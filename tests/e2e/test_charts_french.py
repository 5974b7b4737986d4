"""An Analyst working in French reads the charts in French: numbers « 12,50 » in the cells,
the chart toolbar's tooltips in French (plotly's locale, loaded after the bundle)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.factories import ContactFactory, EventFactory


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_cohort_charts_speak_french(journey):
    march = [ContactFactory(created_at=datetime(2026, 3, d, tzinfo=UTC)) for d in (2, 9)]
    for contact, amount in zip(march, (10, 15), strict=True):
        EventFactory(
            contact=contact,
            type="purchase",
            occurred_at=datetime(2026, 3, 20, tzinfo=UTC),
            properties={"amount": amount},
        )
    page = journey.login("Analyst", language="fr")

    journey.open(page, "/admin/scoring/scoringmodel/cohorts/?by=signup&months=120")
    page.wait_for_selector("#scoring-chart-0 .main-svg")
    page.locator("#scoring-chart-1").scroll_into_view_if_needed()
    page.wait_for_selector("#scoring-chart-1 .main-svg")

    revenue_cells = page.locator("#scoring-chart-1 .main-svg").first.inner_html()
    assert "12,50" in revenue_cells  # (10 + 15) / 2 contacts, French decimal comma
    toolbar = page.locator("#scoring-chart-0 .modebar-btn").evaluate_all(
        "buttons => buttons.map(b => b.getAttribute('data-title'))"
    )
    assert "Télécharger le graphique en PNG" in toolbar
