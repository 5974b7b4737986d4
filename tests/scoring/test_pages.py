"""Model report, cohort heatmap + CSV, contact scores in the admin and the contact API."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.urls import reverse

from segments.scoring.models import ModelKind, ScoringModel
from segments.scoring.selectors import cohort_table
from tests.factories import ContactFactory, EventFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    user = User.objects.create_superuser("boss", "boss@example.fr", "pw")
    client.force_login(user)
    return client


@pytest.fixture
def cohort_data(db):
    """March 2026: 4 sign-ups, 2 buy in March (10 € + 30 €), 1 buys again in May (60 €)."""
    march = [ContactFactory(created_at=datetime(2026, 3, d, tzinfo=UTC)) for d in (2, 9, 16, 23)]
    EventFactory(
        contact=march[0],
        type="purchase",
        occurred_at=datetime(2026, 3, 3, tzinfo=UTC),
        properties={"amount": 10},
    )
    EventFactory(
        contact=march[1],
        type="purchase",
        occurred_at=datetime(2026, 3, 20, tzinfo=UTC),
        properties={"amount": 30},
    )
    EventFactory(
        contact=march[1],
        type="purchase",
        occurred_at=datetime(2026, 5, 4, tzinfo=UTC),
        properties={"amount": 60},
    )
    april = ContactFactory(created_at=datetime(2026, 4, 5, tzinfo=UTC))
    EventFactory(
        contact=april,
        type="purchase",
        occurred_at=datetime(2026, 5, 1, tzinfo=UTC),
        properties={"amount": 100},
    )
    return march, april


def test_cohort_table_retention_revenue_and_cumulative_value(cohort_data):
    table = cohort_table(by="signup", months=6, now=datetime(2026, 6, 15, tzinfo=UTC))
    assert table.cohorts == ["2026-03", "2026-04"]
    assert table.sizes == [4, 1]
    march = 0
    assert table.retention[march][:4] == [0.5, 0.0, 0.25, 0.0]
    assert table.revenue_per_contact[march][:3] == [10.0, 0.0, 15.0]
    assert table.cumulative_value[march][:4] == [10.0, 10.0, 25.0, 25.0]
    assert table.retention[march][4] is None  # July 2026 has not happened yet
    assert table.retention[1][:2] == [0.0, 1.0]  # April cohort buys in May
    by_purchase = cohort_table(by="first_purchase", months=6, now=datetime(2026, 6, 15, tzinfo=UTC))
    assert by_purchase.cohorts == ["2026-03", "2026-05"]
    assert by_purchase.sizes == [2, 1]
    assert by_purchase.retention[0][:3] == [1.0, 0.0, 0.5]


def test_purchases_before_the_period_count_only_for_the_first_purchase_month():
    """The cells read purchases from the period's first month on; a first-purchase cohort is
    still the first purchase of the whole history (an earlier buyer is in no cohort)."""
    early = ContactFactory(created_at=datetime(2025, 12, 1, tzinfo=UTC))
    late = ContactFactory(created_at=datetime(2026, 4, 10, tzinfo=UTC))
    for contact, day, amount in (
        (early, datetime(2026, 1, 5, tzinfo=UTC), 40),  # before the period
        (early, datetime(2026, 4, 5, tzinfo=UTC), 20),
        (late, datetime(2026, 3, 28, tzinfo=UTC), 70),  # history imported before sign-up
        (late, datetime(2026, 4, 20, tzinfo=UTC), 5),
    ):
        EventFactory(
            contact=contact, type="purchase", occurred_at=day, properties={"amount": amount}
        )
    now = datetime(2026, 5, 15, tzinfo=UTC)

    signup = cohort_table(by="signup", months=3, now=now)  # 2026-03 … 2026-05
    assert signup.cohorts == ["2026-04"] and signup.sizes == [1]
    assert signup.revenue_per_contact[0][:2] == [5.0, 0.0]
    first = cohort_table(by="first_purchase", months=3, now=now)
    assert first.cohorts == ["2026-03"] and first.sizes == [1]  # late; early bought in January
    assert first.revenue_per_contact[0][:3] == [70.0, 5.0, 0.0]
    assert first.cumulative_value[0][:2] == [70.0, 75.0]


def test_cohort_page_and_csv_export(staff_client, cohort_data):
    page = staff_client.get(reverse("admin:scoring_cohorts") + "?by=signup&months=120")
    assert page.status_code == 200
    assert (
        b"vendor/plotly/plotly-cartesian.min.js" in page.content and b"2026-03 (4)" in page.content
    )
    export = staff_client.get(reverse("admin:scoring_cohorts_csv") + "?by=signup&months=120")
    assert export.status_code == 200
    rows = list(csv.DictReader(io.StringIO(export.content.decode())))
    march = [r for r in rows if r["cohort"] == "2026-03"]
    assert march[0] == {
        "cohort": "2026-03",
        "by": "signup",
        "contacts": "4",
        "months_since": "0",
        "buyers": "2",
        "retention": "0.500000",
        "revenue_per_contact": "10.00",
        "cumulative_value_per_contact": "10.00",
    }
    assert march[2]["cumulative_value_per_contact"] == "25.00"


def _csv_row(client, cohort: str, months_since: int) -> dict:
    export = client.get(reverse("admin:scoring_cohorts_csv") + "?by=signup&months=120")
    rows = csv.DictReader(io.StringIO(export.content.decode()))
    return next(r for r in rows if r["cohort"] == cohort and r["months_since"] == str(months_since))


def test_cohort_page_says_when_its_figures_were_computed_and_recomputes_on_demand(
    staff_client, cohort_data, settings
):
    """The table is kept SCORING_COHORTS_CACHE_SECONDS: a purchase recorded meanwhile shows
    after "Recompute now" (a POST that comes back to the same view), not before."""
    settings.SCORING_COHORTS_CACHE_SECONDS = 900
    url = reverse("admin:scoring_cohorts") + "?by=signup&months=120"
    page = staff_client.get(url, HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert "Chiffres au " in page and "recalculés au-delà de 15 minutes" in page
    assert "Recalculer maintenant" in page
    assert _csv_row(staff_client, "2026-03", 1)["buyers"] == "0"
    march = ContactFactory(created_at=datetime(2026, 3, 30, tzinfo=UTC))
    EventFactory(
        contact=march,
        type="purchase",
        occurred_at=datetime(2026, 4, 2, tzinfo=UTC),
        properties={"amount": 50},
    )
    assert _csv_row(staff_client, "2026-03", 1)["buyers"] == "0"  # as of the first visit

    back = staff_client.post(
        reverse("admin:scoring_cohorts"), {"by": "signup", "months": "120"}, follow=True
    )

    assert back.redirect_chain[-1][0].endswith("?by=signup&months=120")
    assert b"2026-03 (5)" in back.content
    assert _csv_row(staff_client, "2026-03", 1) == {
        "cohort": "2026-03",
        "by": "signup",
        "contacts": "5",
        "months_since": "1",
        "buyers": "1",
        "retention": "0.200000",
        "revenue_per_contact": "10.00",
        "cumulative_value_per_contact": "18.00",
    }


def test_cohort_page_without_cache_counts_on_every_visit(staff_client, cohort_data, settings):
    settings.SCORING_COHORTS_CACHE_SECONDS = 0
    url = reverse("admin:scoring_cohorts") + "?by=signup&months=120"
    assert b"2026-03 (4)" in staff_client.get(url).content
    ContactFactory(created_at=datetime(2026, 3, 30, tzinfo=UTC))
    page = staff_client.get(url, HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert "2026-03 (5)" in page and "Chiffres au " in page
    assert "recalculés au-delà" not in page


def test_beat_refresh_fills_the_shared_cache_the_cohorts_page_reads(
    staff_client, cohort_data, settings
):
    """With a shared cache, beat's refresh_cohorts computes the default view ahead of the
    visitor: the page shows the table as of the task's run."""
    from segments.scoring.tasks import refresh_cohorts

    settings.SCORING_COHORTS_CACHE_SECONDS = 900
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "cible_test_cohorts_cache",
        }
    }
    call_command("createcachetable", verbosity=0)

    assert refresh_cohorts() == ["signup", "first_purchase"]
    ContactFactory(created_at=datetime(2026, 3, 30, tzinfo=UTC))  # after the task ran

    page = staff_client.get(reverse("admin:scoring_cohorts"))
    assert b"2026-03 (4)" in page.content and b"2026-03 (5)" not in page.content


def test_beat_refresh_skips_a_per_process_cache(cohort_data, settings):
    """The embedded mode's local-memory cache is the worker's own: nothing to share."""
    from segments.scoring.tasks import refresh_cohorts

    settings.SCORING_COHORTS_CACHE_SECONDS = 900
    assert refresh_cohorts() == []


def test_cohort_heatmaps_leave_room_for_the_longest_cohort_label(staff_client, cohort_data):
    """Margins are set for the labels (no automargin second drawing pass): 8 px a character."""
    page = staff_client.get(reverse("admin:scoring_cohorts") + "?by=signup&months=120")
    charts = json.loads(re.search(rb'id="scoring-figures"[^>]*>(.*?)</script>', page.content)[1])
    assert [c["id"] for c in charts] == ["scoring-chart-0", "scoring-chart-1", "scoring-chart-2"]
    for chart in charts:
        labels = chart["figure"]["data"][0]["y"]
        assert labels == ["2026-03 (4)", "2026-04 (1)"]
        assert chart["figure"]["layout"]["margin"]["l"] >= 8 * len("2026-03 (4)")
        assert chart["figure"]["layout"]["yaxis"]["automargin"] is False


def test_cohort_pages_need_the_view_permission(client, cohort_data):
    user = User.objects.create_user("intern", "i@example.fr", "pw", is_staff=True)
    client.force_login(user)
    assert client.get(reverse("admin:scoring_cohorts")).status_code == 403
    assert client.get(reverse("admin:scoring_cohorts_csv")).status_code == 403


def test_clv_model_page_shows_parameters_and_charts(staff_client, customers):
    call_command("fit_clv", stdout=io.StringIO())
    model = ScoringModel.objects.get(kind=ModelKind.CLV)
    page = staff_client.get(reverse("admin:scoring_scoringmodel_change", args=[model.pk]))
    assert page.status_code == 200
    text = page.content.decode()
    assert f"r = {model.parameters['bgnbd']['r']:.4f}" in text
    assert "scoring-figures" in text
    listing = staff_client.get(reverse("admin:scoring_scoringmodel_changelist"))
    assert listing.status_code == 200 and str(model) in listing.content.decode()


def test_contact_scores_in_admin_and_contact_api(staff_client, customers, api_client):
    ids, _sim = customers
    call_command("fit_clv", stdout=io.StringIO())
    from contacts.models import Contact
    from segments.scoring.models import ContactScore

    contact = Contact.objects.get(pk=ids[0])
    row = ContactScore.objects.get(contact=contact)
    listing = staff_client.get(
        reverse("admin:scoring_contactscore_changelist") + f"?q={contact.external_id}"
    )
    assert listing.status_code == 200
    assert reverse("admin:contacts_contact_change", args=[contact.pk]) in listing.content.decode()
    response = api_client.get(f"/api/v1/contacts/{contact.external_id}")
    assert response.status_code == 200
    scores = response.json()["scores"]
    assert scores["clv"] == pytest.approx(row.clv)
    assert scores["p_alive"] == pytest.approx(row.p_alive)
    assert scores["models"] == {"clv": 1}


def test_cohort_labels_and_charts_follow_the_language(staff_client, cohort_data):
    """A French marketer reads « 2026-03 (12 345) » and plotly's French number and date formats
    (its locale file loads after the bundle); an English one « 2026-03 (12,345) »."""
    from django.utils import translation

    from segments.scoring.charts import cohort_figures
    from segments.scoring.selectors import CohortTable

    table = CohortTable(
        by="signup",
        cohorts=["2026-03"],
        sizes=[12345],
        months_since=[0],
        buyers=[[10]],
        retention=[[0.5]],
        revenue_per_contact=[[1.5]],
        cumulative_value=[[1.5]],
    )
    with translation.override("fr"):
        assert cohort_figures(table)[0]["data"][0]["y"] == ["2026-03 (12\xa0345)"]
    with translation.override("en"):
        assert cohort_figures(table)[0]["data"][0]["y"] == ["2026-03 (12,345)"]

    url = reverse("admin:scoring_cohorts") + "?by=signup&months=120"
    french = staff_client.get(url, HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    english = staff_client.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "cible/plotly-locale-fr" in french and "cible/plotly-locale-fr" not in english
