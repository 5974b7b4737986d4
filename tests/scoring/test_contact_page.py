"""The contact's own admin page shows its predictive scores (or says it is not scored yet)."""

from __future__ import annotations

import io
import math
from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.urls import reverse

from contacts.models import Contact
from segments.scoring.models import ContactScore, ModelKind, ScoringModel
from tests.factories import ContactFactory, EventFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    client.force_login(User.objects.create_superuser("boss", "boss@example.fr", "pw"))
    return client


def contact_page(client, contact: Contact, **headers) -> str:
    response = client.get(reverse("admin:contacts_contact_change", args=[contact.pk]), **headers)
    assert response.status_code == 200
    return response.content.decode()


def test_scored_contact_page_shows_every_score_rank_model_and_cohort(staff_client, customers):
    ids, _sim = customers
    call_command("fit_clv", stdout=io.StringIO())
    contact = Contact.objects.get(pk=ids[0])
    row = ContactScore.objects.get(contact=contact)
    # A churn score from a (stored) propensity model version, written as training would.
    churn_model = ScoringModel.objects.create(
        kind=ModelKind.CHURN,
        version=4,
        created_at=row.updated_at,
        reference_date=row.updated_at,
        horizon_days=90,
    )
    ContactScore.objects.filter(pk=row.pk).update(
        churn=0.73, churn_top=0.12, churn_model=churn_model
    )
    text = contact_page(staff_client, contact)
    assert "Predictive scores" in text
    assert "Probability alive" in text and f"{100 * row.p_alive:.0f} %" in text
    assert "Expected purchases (next 365 days)" in text
    assert f"{row.expected_purchases:.2f}" in text
    assert "Predicted CLV (next 365 days, discounted)" in text and f"{row.clv:.2f}" in text
    assert f"top {math.ceil(100 * row.clv_top)} %" in text
    assert "Churn risk (no purchase in the next 90 days)" in text
    assert "73 %" in text and "top 12 %" in text
    assert "Churn risk v4" in text and "v1" in text  # model versions, linked to their reports
    assert reverse("admin:scoring_scoringmodel_report", args=[churn_model.pk]) in text
    assert f"{contact.created_at:%Y-%m}" in text  # sign-up cohort
    assert "Scored at" in text
    assert "silently stopped" in text  # what "probability alive" means


def test_contact_page_in_french(staff_client, customers):
    ids, _sim = customers
    call_command("fit_clv", stdout=io.StringIO())
    text = contact_page(staff_client, Contact.objects.get(pk=ids[0]), HTTP_ACCEPT_LANGUAGE="fr")
    assert "Scores prédictifs" in text
    assert "Probabilité d’être actif" in text
    assert "CLV prédite (365 prochains jours, actualisée)" in text
    assert "arrêté d’acheter sans le dire" in text


def test_unscored_contact_page_says_not_scored_yet_and_shows_its_cohorts(staff_client):
    contact = ContactFactory(created_at=datetime(2026, 3, 9, tzinfo=UTC))
    EventFactory(contact=contact, type="purchase", occurred_at=datetime(2026, 4, 2, tzinfo=UTC))
    text = contact_page(staff_client, contact)
    assert "Not scored yet" in text
    assert "Probability alive" not in text
    assert "2026-03" in text and "2026-04" in text


def test_contact_can_still_be_saved_from_its_page(staff_client, customers):
    ids, _sim = customers
    call_command("fit_clv", stdout=io.StringIO())
    contact = Contact.objects.get(pk=ids[0])
    url = reverse("admin:contacts_contact_change", args=[contact.pk])
    page = staff_client.get(url)
    form = page.context["adminform"].form
    data = {
        name: ("" if value is None else value)
        for name, value in ((n, form[n].value()) for n in form.fields)
    }
    for inline in page.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        data.update({management.add_prefix(k): v for k, v in management.initial.items()})
    data["city"] = "Lyon"
    response = staff_client.post(url, data)
    assert response.status_code == 302, response.context and response.context.get("errors")
    contact.refresh_from_db()
    assert contact.city == "Lyon"
    assert ContactScore.objects.filter(contact=contact, clv__isnull=False).exists()
