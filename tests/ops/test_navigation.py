"""The sidebar: every admin page is reachable from it, and each role sees its own work."""

from __future__ import annotations

import re

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, User
from django.test import Client
from django.urls import reverse

from ops.navigation import SECTIONS

pytestmark = pytest.mark.django_db

# Registered models that are reached from another page rather than the sidebar.
REACHED_FROM_ELSEWHERE: set[str] = set()


def _sidebar_links() -> set[str]:
    return {str(item["link"]) for _title, items, _collapsible in SECTIONS for item in items}


def test_every_admin_list_is_in_the_sidebar():
    links = _sidebar_links()
    missing = [
        f"{model._meta.app_label}.{model._meta.model_name}"
        for model in admin.site._registry
        if f"{model._meta.app_label}.{model._meta.model_name}" not in REACHED_FROM_ELSEWHERE
        and reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        not in links
    ]
    assert missing == []


def test_the_calendar_the_planner_and_the_cohorts_are_in_the_sidebar():
    links = _sidebar_links()
    for name in ("admin:journeys_calendar", "experiments:plan", "admin:scoring_cohorts"):
        assert reverse(name) in links, name


def _client_as(role: str | None, *, superuser: bool = False) -> Client:
    user = User.objects.create_user(
        f"{role or 'admin'}-nav", password="x", is_staff=True, is_superuser=superuser
    )
    if role:
        user.groups.add(Group.objects.get(name=role))
    client = Client()
    client.force_login(user)
    return client


def _sidebar_of(client: Client) -> tuple[str, set[str]]:
    """The sidebar's HTML and the admin links it offers, as the dashboard renders it."""
    response = client.get("/admin/", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 200
    html = response.content.decode()
    start = html.index('id="nav-sidebar-inner"')
    nav = html[start : html.index("</nav>", start)]
    return nav, set(re.findall(r'href="(/(?:admin|experiments)/[^"]*)"', nav))


@pytest.mark.parametrize(
    ("role", "sees", "does_not_see"),
    [
        (
            "Marketer",
            [
                "admin:activation_campaign_changelist",
                "admin:segments_segment_changelist",
                "admin:journeys_calendar",
                "experiments:plan",
            ],
            [
                "admin:django_celery_beat_periodictask_changelist",
                "admin:auth_user_changelist",
                "admin:axes_accessattempt_changelist",
                "admin:segments_segmentmembership_changelist",
            ],
        ),
        (
            "Analyst",
            [
                "admin:experiments_experiment_changelist",
                "admin:scoring_scoringmodel_changelist",
                "admin:segments_ml_clustermodel_changelist",
                "admin:journeys_campaignapproval_changelist",
            ],
            ["admin:django_celery_beat_periodictask_changelist", "admin:auth_user_changelist"],
        ),
        (
            "DPO",
            [
                "admin:consent_rightsrequest_changelist",
                "admin:consent_consentevent_changelist",
                "admin:consent_suppression_changelist",
                "admin:contacts_contact_changelist",
            ],
            ["admin:django_celery_beat_periodictask_changelist", "admin:auth_user_changelist"],
        ),
    ],
)
def test_each_role_sees_its_work_and_not_the_technical_tables(role, sees, does_not_see):
    _html, links = _sidebar_of(_client_as(role))
    for name in sees:
        assert reverse(name) in links, (role, name)
    for name in does_not_see:
        assert reverse(name) not in links, (role, name)


def test_an_administrator_sees_settings_and_the_technical_tables():
    html, links = _sidebar_of(_client_as(None, superuser=True))
    assert reverse("admin:django_celery_beat_periodictask_changelist") in links
    assert reverse("admin:segments_segmentmembership_changelist") in links
    assert "Technical tables" in html


def test_every_sidebar_page_opens_for_an_administrator():
    client = _client_as(None, superuser=True)
    for link in sorted(_sidebar_links()):
        assert client.get(link, HTTP_ACCEPT_LANGUAGE="en").status_code == 200, link


def test_the_header_offers_the_language_switch():
    html = _client_as("Marketer").get("/admin/", HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert reverse("set_language") in html
    assert "Campagnes" in html  # the sidebar in French


def test_logging_in_from_the_login_page_lands_on_the_dashboard(client):
    User.objects.create_user("direct", password="Direct-pass-2026", is_staff=True)
    response = client.post(
        "/admin/login/", {"username": "direct", "password": "Direct-pass-2026"}, follow=True
    )
    assert response.redirect_chain[-1][0] == reverse("admin:index")
    assert response.status_code == 200
