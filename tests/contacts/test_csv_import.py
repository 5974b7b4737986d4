"""CSV import commands: detection, normalisation, reject file, idempotent re-runs."""

from __future__ import annotations

import csv
from io import StringIO

import pytest
from django.core.management import call_command

from contacts.models import Contact, Event
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db


def run(command, *args, **options) -> str:
    out = StringIO()
    call_command(command, *[str(a) for a in args], stdout=out, **options)
    return out.getvalue()


def test_import_events_latin1_semicolons_with_rejects_and_idempotent_rerun(tmp_path):
    ContactFactory(external_id="C-1")
    ContactFactory(external_id="C-2")
    text = (
        "external_id;type;timestamp;idempotency_key;amount;catégorie;note\n"
        "C-1;Achat;2026-03-01T10:00:00+01:00;o-1;12,50;Vêtements;payé\n"
        "C-2;page_view;2026-03-02T10:00:00Z;pv-1;;;\n"
        "C-1;page_view;2999-01-01T00:00:00Z;pv-2;;;\n"
        "C-1;page_view;2026-03-02T10:00:00Z\n"
        "C-2;achat;2026-03-03T10:00:00+01:00;o-2;abc;;\n"
    )
    path = tmp_path / "events.csv"
    path.write_bytes(text.encode("latin-1"))
    rejects = tmp_path / "rejects.csv"
    output = run("import_events", path, source="shop", rejects=rejects)
    assert "2 created" in output and "3 rejected" in output
    assert "encoding cp1252" in output and "delimiter ';'" in output
    purchase = Event.objects.get(idempotency_key="o-1")
    assert purchase.type == "purchase"
    assert purchase.properties == {"amount": 12.5, "catégorie": "Vêtements", "note": "payé"}
    with rejects.open(encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows[0][:2] == ["line", "reason"]
    assert [(r[0], r[1].split(":")[0]) for r in rows[1:]] == [
        ("4", "timestamp"),
        ("5", "Expected 7 fields, found 3."),
        ("6", "properties"),
    ]
    again = run("import_events", path, source="shop")
    assert "0 created" in again and "2 duplicates" in again
    assert Event.objects.count() == 2


def test_import_events_naive_timestamps_need_a_default_zone(tmp_path):
    ContactFactory(external_id="C-1")
    path = tmp_path / "events.csv"
    path.write_text(
        "external_id,type,timestamp,idempotency_key\nC-1,page_view,2026-03-01 10:00:00,k1\n"
    )
    assert "1 rejected" in run("import_events", path, source="s")
    assert "1 created" in run("import_events", path, source="s", default_timezone="Europe/Paris")
    assert Event.objects.get().occurred_at.isoformat() == "2026-03-01T09:00:00+00:00"


def test_import_contacts_utf8_bom_normalises_and_keeps_other_columns_as_attributes(tmp_path):
    path = tmp_path / "contacts.csv"
    path.write_text(
        "\ufeffexternal_id,email,phone,country,city,fidélité\n"
        "K-1, Zoé@Example.FR ,06 12 34 56 78,France,st etienne,or\n"
        "K-2,not-an-email,,Allemagne,Berlin,\n"
        "K-3,ok@example.fr,,Pays imaginaire,,\n",
        encoding="utf-8",
    )
    rejects = tmp_path / "rejects.csv"
    output = run("import_contacts", path, source="crm", rejects=rejects)
    assert "1 created" in output and "2 rejected" in output
    contact = Contact.objects.get(external_id="K-1")
    assert (contact.email, contact.phone, contact.country, contact.city) == (
        "zoé@example.fr",
        "+33612345678",
        "FR",
        "Saint-Étienne",
    )
    assert contact.attributes == {"fidélité": "or"}
    reasons = rejects.read_text(encoding="utf-8")
    assert "email: Not a valid email address." in reasons
    assert "country: Unknown country Pays imaginaire." in reasons


def test_invalid_utf8_line_is_rejected_not_guessed(tmp_path):
    ContactFactory(external_id="C-1")
    path = tmp_path / "events.csv"
    good = "C-1,page_view,2026-03-01T10:00:00Z,k{}\n"
    path.write_bytes(
        b"external_id,type,timestamp,idempotency_key\n"
        + "".join(good.format(i) for i in range(20_000)).encode()
        + b"C-1,caf\xe9,2026-03-01T10:00:00Z,bad\n"
    )
    rejects = tmp_path / "r.csv"
    output = run("import_events", path, source="s", rejects=rejects)
    assert "20,000 created" in output and "1 rejected" in output
    assert "20002" in rejects.read_text() and "encoding" in rejects.read_text()


def test_import_summary_names_ignored_and_unknown_columns(tmp_path):
    path = tmp_path / "contacts.csv"
    path.write_text("external_id,first_name,,loyalty_tier, \nC-1,Léa,x,gold,y\n", encoding="utf-8")
    output = run("import_contacts", path)
    assert "1 created" in output
    assert "Ignored columns (not stored): #3, #5" in output
    assert "stored as attributes.<name>: loyalty_tier" in output
    assert Contact.objects.get().attributes == {"loyalty_tier": "gold"}
    events = tmp_path / "events.csv"
    events.write_text(
        "external_id,type,timestamp,idempotency_key,basket\n"
        "C-1,page_view,2026-03-01T10:00:00Z,k1,3\n",
        encoding="utf-8",
    )
    output = run("import_events", events)
    assert "Ignored columns" not in output
    assert "stored as properties.<name>: basket" in output
