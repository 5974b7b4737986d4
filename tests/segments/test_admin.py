from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Group, User

from segments.models import Segment
from segments.services import features_refresh, segment_create, segments_compute
from tests.factories import ContactFactory, EventFactory

pytestmark = pytest.mark.django_db

PARISIANS = {"type": "field", "field": "city", "op": "eq", "value": "Paris"}


@pytest.fixture
def admin_client_logged(client):
    client.force_login(User.objects.create_superuser("admin", "admin@example.fr", "x"))
    return client


def _role_client(client, role: str):
    user = User.objects.create_user(f"{role.lower()}-user", password="x", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client.force_login(user)
    return client


def test_estimate_returns_plain_language_size_and_sample(admin_client_logged):
    for i in range(3):
        ContactFactory(city="Paris", external_id=f"PAR-{i}")
    ContactFactory(city="Lyon")
    response = admin_client_logged.post(
        "/admin/segments/segment/estimate/",
        json.dumps({"rule": PARISIANS}),
        content_type="application/json",
    )
    body = response.json()
    assert response.status_code == 200 and body["ok"]
    assert body["description"] == "Contacts: city is “Paris”"
    assert (body["size"], body["total"]) == (3, 4)
    assert [c["external_id"] for c in body["sample"]] == ["PAR-0", "PAR-1", "PAR-2"]
    assert any("too small" in w for w in body["warnings"])


def test_estimate_names_the_faulty_condition(admin_client_logged):
    response = admin_client_logged.post(
        "/admin/segments/segment/estimate/",
        json.dumps(
            {
                "rule": {
                    "any": [PARISIANS, {"type": "field", "field": "shoe", "op": "eq", "value": 1}]
                }
            }
        ),
        content_type="application/json",
    )
    assert response.status_code == 400
    assert "Condition any[1]: unknown field “shoe”" in response.json()["error"]


def test_admin_form_saves_a_valid_rule_and_refuses_an_invalid_one(admin_client_logged):
    page = admin_client_logged.get("/admin/segments/segment/add/")
    assert page.status_code == 200 and "segments-builder-schema" in page.content.decode()
    bad = admin_client_logged.post(
        "/admin/segments/segment/add/",
        {
            "name": "Bad",
            "priority": 1,
            "is_active": "on",
            "rule": json.dumps(
                {"type": "feature", "feature": "recency_days", "op": "contains", "value": 3}
            ),
        },
    )
    assert "operator “contains” does not apply to a number" in bad.content.decode()
    good = admin_client_logged.post(
        "/admin/segments/segment/add/",
        {"name": "Parisians", "priority": 1, "is_active": "on", "rule": json.dumps(PARISIANS)},
    )
    assert good.status_code == 302
    assert Segment.objects.get(name="Parisians").rule == PARISIANS


def test_change_page_shows_size_chart_with_local_plotly_and_warnings(admin_client_logged):
    ContactFactory(city="Paris")
    segment = segment_create(name="Parisians", rule=PARISIANS)
    segments_compute()
    html = admin_client_logged.get(f"/admin/segments/segment/{segment.pk}/change/").content.decode()
    assert "/static/vendor/plotly/plotly-cartesian.min.js" in html and "cdn" not in html.lower()
    assert "segment-size-chart" in html and "Contacts: city is “Paris”" in html
    assert "100 % of all contacts" in html  # one contact out of one
    listing = admin_client_logged.get("/admin/segments/segment/").content.decode()
    assert "too small to act on" in listing


def test_vendored_plotly_bundle_matches_the_python_package_version():
    """Figures built server-side (plotly.graph_objects) are drawn by the same plotly.js."""
    import re
    from pathlib import Path

    import plotly
    from django.contrib.staticfiles import finders

    found = finders.find("vendor/plotly/plotly-cartesian.min.js")
    bundled = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    version = re.compile(rb"plotly\.js (?:\(cartesian - minified\) )?v(\d+\.\d+\.\d+)")
    with open(found, "rb") as ours, open(bundled, "rb") as theirs:
        assert version.search(ours.read(300)).group(1) == version.search(theirs.read(300)).group(1)


def test_explain_shows_each_condition_with_the_contacts_value(admin_client_logged):
    from datetime import UTC, datetime

    contact = ContactFactory(external_id="EXPL-1", city="Paris")
    EventFactory(
        contact=contact, type="purchase", occurred_at=datetime.now(UTC), properties={"amount": 80}
    )
    features_refresh()
    segment = segment_create(
        name="Rich Parisians",
        rule={
            "all": [
                PARISIANS,
                {"type": "feature", "feature": "monetary_total", "op": "gte", "value": 100},
            ]
        },
    )
    html = admin_client_logged.get(
        f"/admin/segments/segment/{segment.pk}/explain/", {"contact": "EXPL-1"}
    ).content.decode()
    assert "The rule does not hold for this contact now." in html
    assert "total spent is at least 100" in html and "80.00" in html
    assert html.count("✔") == 1 and html.count("✘") == 2  # city holds; spend and the group fail


def test_overlap_matrix_counts_and_jaccard(admin_client_logged):
    for city in ["Paris", "Paris", "Lyon"]:
        ContactFactory(city=city)
    segment_create(name="Parisians", rule=PARISIANS)
    segment_create(name="Everyone", rule={"all": []})
    segments_compute()
    html = admin_client_logged.get("/admin/segments/segment/overlap/").content.decode()
    assert "2<br><small>0.67</small>" in html  # 2 in both, 2 / 3


def test_csv_export_gives_pii_only_to_roles_that_may_view_contacts(client):
    ContactFactory(external_id="CSV-1", email="camille@example.fr")
    segment = segment_create(name="Everyone", rule={"all": []})
    segments_compute()
    marketer = _role_client(client, "Marketer")
    body = b"".join(
        marketer.get(f"/admin/segments/segment/{segment.pk}/export.csv").streaming_content
    ).decode()
    lines = body.strip().splitlines()
    assert lines[0] == "external_id,entered_at,email,phone,first_name,last_name"
    assert lines[1].startswith("CSV-1,") and "camille@example.fr" in lines[1]

    stranger = User.objects.create_user("nobody", password="x", is_staff=True)
    client.force_login(stranger)
    assert client.get(f"/admin/segments/segment/{segment.pk}/export.csv").status_code == 403
