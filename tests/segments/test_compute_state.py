"""Right after a save the segment page says it is computing (not "size 0" and an empty chart)
and polls a permission-checked status endpoint until the worker has finished."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Group, User

from segments.models import Segment
from segments.services import segments_compute
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db

PARISIANS = {"type": "field", "field": "city", "op": "eq", "value": "Paris"}


def test_saved_segment_shows_computing_until_the_worker_has_computed_it(client):
    client.force_login(User.objects.create_superuser("admin", "admin@example.fr", "x"))
    for _ in range(3):
        ContactFactory(city="Paris")
    saved = client.post(
        "/admin/segments/segment/add/",
        {
            "name": "Parisiens",
            "priority": 100,
            "is_active": "on",
            "rule": json.dumps(PARISIANS),
            "_continue": "1",
        },
        HTTP_ACCEPT_LANGUAGE="fr",
    )
    segment = Segment.objects.get()
    assert saved.status_code == 302
    assert saved["Location"] == f"/admin/segments/segment/{segment.pk}/change/"
    status_url = f"/admin/segments/segment/{segment.pk}/status/"

    page = client.get(f"/admin/segments/segment/{segment.pk}/change/", HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert 'id="segment-computing"' in page and f'data-status-url="{status_url}"' in page
    assert "Calcul en cours… la taille et le graphique apparaîtront ici" in page
    assert client.get(status_url).json()["state"] == "computing"
    listing = client.get("/admin/segments/segment/", HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert "calcul en cours…" in listing

    segments_compute(segment_ids=[segment.pk])  # what the worker does

    status = client.get(status_url).json()
    assert (status["state"], status["size"], status["chart"]["y"]) == ("done", 3, [3])
    page = client.get(f"/admin/segments/segment/{segment.pk}/change/", HTTP_ACCEPT_LANGUAGE="fr").content.decode()
    assert 'id="segment-computing"' not in page and "À jour." in page


def test_status_endpoint_needs_permission_to_view_segments(client):
    segment = Segment.objects.create(name="S", rule=PARISIANS)
    url = f"/admin/segments/segment/{segment.pk}/status/"
    assert client.get(url).status_code == 302  # to the login page
    nobody = User.objects.create_user("staff", password="x", is_staff=True)
    client.force_login(nobody)
    assert client.get(url).status_code == 403
    analyst = User.objects.create_user("analyst", password="x", is_staff=True)
    analyst.groups.add(Group.objects.get(name="Analyst"))
    client.force_login(analyst)
    assert client.get(url).json()["state"] == "never"
    assert client.get("/admin/segments/segment/999999/status/").status_code == 404
