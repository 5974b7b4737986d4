"""Historical sign-up dates: ``signed_up_at`` in the contacts CSV import, the bulk contacts API
and the admin becomes the contact's ``created_at``; a contact created by an event is dated by
that event; features as of a past date then include the contacts signed up by then."""

from __future__ import annotations

import csv
import re
from datetime import UTC, datetime
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from contacts.models import Contact
from segments.models import ContactFeatures
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db


def run(command: str, *args: str) -> str:
    out = StringIO()
    call_command(command, *args, stdout=out)
    return out.getvalue()


def test_import_contacts_reads_signed_up_at_and_rejects_bad_ones(tmp_path):
    path, rejects = tmp_path / "clients.csv", tmp_path / "rejects.csv"
    path.write_text(
        "external_id,first_name,signed_up_at\n"
        "C-1,Léa,1997-01-01\n"
        "C-2,Zoé,1997-03-25T18:30:00+01:00\n"
        "C-3,Noé,1997-03-25 18:30:00\n"
        "C-4,Ève,0001-01-01T00:00:00+01:00\n"
        "C-5,Ali,2999-01-01\n"
        "C-6,Bob,\n",
        encoding="utf-8",
    )
    output = run("import_contacts", str(path), "--rejects", str(rejects))
    assert "3 created" in output and "3 rejected" in output
    assert "signed_up_at" not in output  # a known column: neither ignored nor an attribute
    dates = dict(Contact.objects.values_list("external_id", "created_at"))
    assert dates["C-1"] == datetime(1997, 1, 1, tzinfo=UTC)
    assert dates["C-2"] == datetime(1997, 3, 25, 17, 30, tzinfo=UTC)
    assert dates["C-6"].year == datetime.now(UTC).year  # no date given: today
    assert Contact.objects.get(external_id="C-1").attributes == {}
    with rejects.open(encoding="utf-8") as fh:
        rows = list(csv.reader(fh))[1:]
    assert [r[0] for r in rows] == ["4", "5", "6"]
    assert all(r[1].startswith("signed_up_at: ") for r in rows)
    assert "no UTC offset" in rows[0][1]
    assert (
        rows[1][1] == "signed_up_at: Before 1970." and rows[2][1] == "signed_up_at: In the future."
    )
    # With a default zone, the naive time is read in it; a later file corrects a date.
    path.write_text("external_id,signed_up_at\nC-3,1997-03-25 18:30:00\nC-1,1996-12-31\n")
    run("import_contacts", str(path), "--default-timezone", "Europe/Paris")
    dates = dict(Contact.objects.values_list("external_id", "created_at"))
    assert dates["C-3"] == datetime(1997, 3, 25, 17, 30, tzinfo=UTC)
    assert dates["C-1"] == datetime(1996, 12, 30, 23, tzinfo=UTC)  # midnight in Paris


def test_bulk_contacts_api_accepts_signed_up_at(api_client):
    response = api_client.post(
        "/api/v1/contacts/bulk",
        {
            "items": [
                {"external_id": "C-1", "signed_up_at": "2019-06-01T09:00:00Z"},
                {"external_id": "C-2", "signed_up_at": "9999-12-31T23:59:59-01:00"},
            ]
        },
        format="json",
    )
    assert response.status_code == 207
    results = response.json()["results"]
    assert results[0]["status"] == "created"
    assert results[1]["errors"] == {"signed_up_at": "In the future."}
    assert Contact.objects.get().created_at == datetime(2019, 6, 1, 9, tzinfo=UTC)
    detail = api_client.get("/api/v1/contacts/C-1").json()
    assert detail["created_at"].startswith("2019-06-01")


def test_a_contact_created_by_events_is_dated_by_its_earliest_event(api_client):
    items = [
        {"external_id": "V-1", "type": "page_view", "timestamp": stamp, "idempotency_key": key}
        for key, stamp in [("a", "2024-05-02T10:00:00Z"), ("b", "2024-05-01T08:00:00Z")]
    ]
    assert (
        api_client.post("/api/v1/events/bulk", {"items": items}, format="json").status_code == 200
    )
    contact = Contact.objects.get(external_id="V-1")
    assert contact.is_anonymous and contact.created_at == datetime(2024, 5, 1, 8, tzinfo=UTC)


def test_admin_sets_and_validates_the_sign_up_date(client):
    client.force_login(User.objects.create_superuser("admin", "admin@example.fr", "x"))
    form = {
        "external_id": "C-9",
        "locale": "fr",
        "timezone": "Europe/Paris",
        "attributes": "{}",
        "created_at_0": "2015-04-01",
        "created_at_1": "12:00:00",
    }
    page = client.get("/admin/contacts/contact/add/").content.decode()
    for prefix in re.findall(r'name="([\w-]+)-TOTAL_FORMS"', page):  # inlines of every app
        form.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"})
    assert "Signed up at" in page
    bad = client.post("/admin/contacts/contact/add/", {**form, "created_at_0": "0001-01-01"})
    assert bad.status_code == 200 and "Before 1970." in bad.content.decode()
    assert not Contact.objects.exists()
    good = client.post("/admin/contacts/contact/add/", form)
    assert good.status_code == 302
    assert Contact.objects.get().created_at == datetime(2015, 4, 1, 10, tzinfo=UTC)  # Paris


def test_features_as_of_a_past_date_include_contacts_signed_up_by_then(tmp_path):
    path = tmp_path / "clients.csv"
    path.write_text("external_id,signed_up_at\nOLD,1997-01-01\nLATER,1998-09-01\n")
    run("import_contacts", str(path))
    ContactFactory(external_id="NEW")  # signed up today
    run("refresh_features", "--as-of", "1998-07-01T00:00:00+00:00")
    rows = ContactFeatures.objects.values_list("contact__external_id", "days_since_signup")
    assert dict(rows) == {"OLD": (datetime(1998, 7, 1) - datetime(1997, 1, 1)).days}
