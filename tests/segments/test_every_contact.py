"""A rule with no restricting condition selects every contact: saving one needs an explicit
confirmation in the admin and in the API (``confirm_every_contact``)."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User

from segments.models import Segment
from segments.rules import rule_matches_everyone
from segments.services import segment_create
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db

CITY = {"type": "field", "field": "city", "op": "eq", "value": "Paris"}


@pytest.fixture
def admin_logged(client):
    client.force_login(User.objects.create_superuser("admin", "admin@example.fr", "x"))
    return client


@pytest.mark.parametrize(
    ("rule", "everyone"),
    [
        ({"all": []}, True),
        ({"all": [{"all": []}, {"not": {"any": []}}]}, True),
        ({"any": [CITY, {"all": []}]}, True),
        ({"not": {"all": [CITY, {"any": []}]}}, True),
        ({"any": []}, False),
        ({"all": [CITY]}, False),
        ({"not": {"all": []}}, False),
    ],
)
def test_rules_that_select_every_contact_are_recognised(rule, everyone):
    assert rule_matches_everyone(rule) is everyone


def _admin_post(client, rule, **extra):
    data = {"name": "Tout le monde", "priority": 100, "is_active": "on", "rule": json.dumps(rule)}
    return client.post("/admin/segments/segment/add/", {**data, **extra}, HTTP_ACCEPT_LANGUAGE="fr")


def test_admin_asks_to_confirm_a_segment_of_every_contact(admin_logged):
    refused = _admin_post(admin_logged, {"all": []})
    page = refused.content.decode()
    assert refused.status_code == 200 and not Segment.objects.exists()
    assert "le segment contient tous les contacts" in page
    assert "Cochez cette case pour enregistrer un segment qui contient tous les contacts." in page

    saved = _admin_post(admin_logged, {"all": []}, confirm_every_contact="on")
    assert saved.status_code == 302
    segment = Segment.objects.get()
    assert segment.rule == {"all": []}
    shown = admin_logged.get(saved["Location"], HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert "« Tout le monde » contient tous les contacts" in shown

    # Editing another field of a segment that already held every contact needs no new tick.
    edited = admin_logged.post(
        f"/admin/segments/segment/{segment.pk}/change/",
        {
            "name": "Tout le monde",
            "description": "base",
            "priority": 100,
            "is_active": "on",
            "rule": json.dumps({"all": []}),
        },
    )
    assert edited.status_code == 302
    segment.refresh_from_db()
    assert segment.description == "base"


def test_admin_live_estimate_warns_that_every_contact_is_selected(admin_logged):
    ContactFactory()
    body = admin_logged.post(
        "/admin/segments/segment/estimate/",
        json.dumps({"rule": {"all": []}}),
        content_type="application/json",
    ).json()
    assert body["warnings"][0] == (
        "This rule has no restricting condition: the segment contains every contact."
    )


def test_api_refuses_every_contact_unless_confirmed(api_client):
    refused = api_client.post(
        "/api/v1/segments", {"name": "All", "rule": {"all": []}}, format="json"
    )
    assert refused.status_code == 400
    assert "the segment contains every contact" in refused.json()["rule"][0]
    assert refused.json()["confirm_every_contact"] == [
        "Send true to save a segment that contains every contact."
    ]
    created = api_client.post(
        "/api/v1/segments",
        {"name": "All", "rule": {"all": []}, "confirm_every_contact": True},
        format="json",
    )
    assert created.status_code == 201
    # PUT turning a restricted segment into everyone needs the flag as well.
    other = segment_create(name="Parisians", rule=CITY)
    put = api_client.put(
        f"/api/v1/segments/{other.pk}", {"name": "Parisians", "rule": {"all": []}}, format="json"
    )
    assert put.status_code == 400
    other.refresh_from_db()
    assert other.rule == CITY
