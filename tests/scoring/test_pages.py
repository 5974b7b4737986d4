"""Model report, cohort heatmap + CSV, contact scores in the admin and the contact API."""

from __future__ import annotations

import csv
import io
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


def test_cohort_page_and_csv_export(staff_client, cohort_data):
    page = staff_client.get(reverse("admin:scoring_cohorts") + "?by=signup&months=120")
    assert page.status_code == 200
    assert b"vendor/plotly/plotly-cartesian.min.js" in page.content and b"2026-03 (4)" in page.content
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
