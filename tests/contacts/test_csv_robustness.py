"""Hostile CSV files: mixed encodings, a huge cell, a quote left open. Each broken line is a
reject of its own with its reason; every good line is stored — in import_contacts,
import_events and the admin import job alike."""

from __future__ import annotations

import csv
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.test.utils import override_settings

from contacts.models import Contact, Event, ImportJob
from contacts.services.csv_import import import_job_execute
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db


def run(command: str, path: Path, rejects: Path) -> str:
    out = StringIO()
    call_command(command, str(path), "--rejects", str(rejects), stdout=out)
    return out.getvalue()


def reject_rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8") as fh:
        return list(csv.reader(fh))[1:]


def mixed_contacts_file(path: Path) -> None:
    """800 UTF-8 lines and 100 Latin-1 lines (every 9th line), the first one Latin-1."""
    with path.open("wb") as fh:
        fh.write(b"external_id,first_name,city,segment_hint\n")
        for i in range(900):
            latin = i % 9 == 0
            line = f"C-{i},Zoé{i},Saint-Étienne,Vêtements\n"
            fh.write(line.encode("latin-1" if latin else "utf-8"))


def test_import_contacts_mixed_encodings_rejects_latin1_lines_and_stores_utf8_ones(tmp_path):
    path, rejects = tmp_path / "contacts.csv", tmp_path / "rejects.csv"
    mixed_contacts_file(path)
    output = run("import_contacts", path, rejects)
    assert "800 created" in output and "100 rejected" in output
    assert "encoding utf-8" in output
    assert Contact.objects.count() == 800
    assert not Contact.objects.filter(first_name__contains="Ã").exists()
    assert set(Contact.objects.values_list("city", flat=True)) == {"Saint-Étienne"}
    assert Contact.objects.get(external_id="C-1").attributes == {"segment_hint": "Vêtements"}
    rows = reject_rows(rejects)
    assert [int(r[0]) for r in rows] == [i + 2 for i in range(0, 900, 9)]
    assert all("Not valid utf-8 text" in r[1] and "UTF-8" in r[1] for r in rows)


def test_import_events_utf8_line_in_a_latin1_file_is_rejected_not_garbled(tmp_path):
    ContactFactory(external_id="C-1")
    path, rejects = tmp_path / "events.csv", tmp_path / "rejects.csv"
    with path.open("wb") as fh:
        fh.write(b"external_id;type;timestamp;idempotency_key;category\n")
        fh.write("C-1;page_view;2026-03-01T10:00:00Z;k1;Vêtements\n".encode("latin-1"))
        fh.write("C-1;page_view;2026-03-01T10:00:00Z;k2;Vêtements\n".encode())
        fh.write("C-1;page_view;2026-03-01T10:00:00Z;k3;Été\n".encode("latin-1"))
    out = StringIO()
    call_command(
        "import_events", str(path), "--encoding", "latin-1", "--rejects", str(rejects), stdout=out
    )
    assert "2 created" in out.getvalue() and "1 rejected" in out.getvalue()
    assert sorted(Event.objects.values_list("properties__category", flat=True)) == [
        "Vêtements",
        "Été",
    ]
    (row,) = reject_rows(rejects)
    assert row[0] == "3" and "UTF-8 text in a latin-1 file" in row[1]


@pytest.mark.parametrize("command", ["import_contacts", "import_events"])
def test_a_200_kb_cell_rejects_its_line_and_the_899_others_are_stored(tmp_path, command):
    path, rejects = tmp_path / "in.csv", tmp_path / "rejects.csv"
    huge = "x" * 200_000
    with path.open("w", encoding="utf-8") as fh:
        if command == "import_contacts":
            fh.write("external_id,first_name,note\n")
            for i in range(900):
                fh.write(f"C-{i},Léa,{huge if i == 450 else 'ok'}\n")
        else:
            ContactFactory(external_id="C-1")
            fh.write("external_id,type,timestamp,idempotency_key,note\n")
            for i in range(900):
                fh.write(f"C-1,page_view,2026-03-01T10:00:00Z,k{i},{huge if i == 450 else 'ok'}\n")
    output = run(command, path, rejects)
    assert "899 created" in output and "1 rejected" in output
    stored = Contact.objects.count() if command == "import_contacts" else Event.objects.count()
    assert stored == 899
    (row,) = reject_rows(rejects)
    assert row[0] == "452" and "16384 bytes" in row[1]


@pytest.mark.parametrize("command", ["import_contacts", "import_events"])
def test_an_unclosed_quote_rejects_its_line_only(tmp_path, command):
    path, rejects = tmp_path / "in.csv", tmp_path / "rejects.csv"
    ContactFactory(external_id="C-0")
    if command == "import_contacts":
        lines = ["external_id,first_name,city"]
        lines += [f'C-{i},"Léa {i}",Lyon' for i in range(1, 6)]
        lines[2] = 'C-2,"Léa 2,Lyon'  # the quote is never closed
        lines[4] = 'C-4,"Léa\nsur deux lignes",Lyon'  # a legitimate quoted line break
    else:
        lines = ["external_id,type,timestamp,idempotency_key"]
        lines += [f"C-0,page_view,2026-03-01T10:00:00Z,k{i}" for i in range(1, 6)]
        lines[2] = 'C-0,page_view,"2026-03-01T10:00:00Z,k2'
        lines[4] = 'C-0,page_view,2026-03-01T10:00:00Z,"k\n4"'
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    output = run(command, path, rejects)
    assert "4 created" in output and "1 rejected" in output
    (row,) = reject_rows(rejects)
    assert row[0] == "3" and "quote is left open" in row[1]
    if command == "import_contacts":
        assert Contact.objects.get(external_id="C-3").first_name == "Léa 3"
        assert Contact.objects.get(external_id="C-4").first_name == "Léa\nsur deux lignes"
        assert Contact.objects.get(external_id="C-5").city == "Lyon"
    else:
        assert set(Event.objects.values_list("idempotency_key", flat=True)) == {
            "k1",
            "k3",
            "k\n4",
            "k5",
        }


def test_an_unclosed_quote_at_the_top_of_a_long_file_does_not_swallow_it(tmp_path):
    path, rejects = tmp_path / "in.csv", tmp_path / "rejects.csv"
    lines = ["external_id,first_name"] + [f"C-{i},Léa" for i in range(1, 1001)]
    lines[1] = 'C-1,"Léa'
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    output = run("import_contacts", path, rejects)
    assert "999 created" in output and "1 rejected" in output
    (row,) = reject_rows(rejects)
    assert row[0] == "2" and "quote is left open" in row[1]


def test_admin_import_job_rejects_mixed_encoding_lines_and_stores_the_rest(tmp_path, client):
    path = tmp_path / "contacts.csv"
    mixed_contacts_file(path)
    with override_settings(MEDIA_ROOT=str(tmp_path / "media")):
        job = ImportJob(kind="contacts", source="upload")
        job.file.save("contacts.csv", ContentFile(path.read_bytes()), save=False)
        job.save()
        import_job_execute(job_id=job.pk)
        job.refresh_from_db()
        assert (job.status, job.created, job.rejected, job.encoding) == ("done", 800, 100, "utf-8")
        assert "Not valid utf-8 text" in Path(job.rejects_file.path).read_text(encoding="utf-8")
        job.column_map = {**job.column_map, "segment_hint": ""}  # mapped to “(ignore)”
        job.save()
        admin = User.objects.create_superuser("admin", "admin@example.fr", "x")
        client.force_login(admin)
        page = client.get(f"/admin/contacts/importjob/{job.pk}/change/").content.decode()
        assert "Ignored columns (not stored): segment_hint" in page
    assert not Contact.objects.filter(city__contains="Ã").exists()


def test_a_file_with_old_mac_line_endings_still_imports(tmp_path):
    path, rejects = tmp_path / "mac.csv", tmp_path / "rejects.csv"
    path.write_bytes(
        'external_id,first_name\rC-1,Léa\rC-2,"Zoé\rMartin"\rC-3,Noé\r'.encode("cp1252")
    )
    output = run("import_contacts", path, rejects)
    assert "3 created" in output and "0 rejected" in output
    assert Contact.objects.get(external_id="C-1").first_name == "Léa"
    assert Contact.objects.get(external_id="C-2").first_name == "Zoé\nMartin"


@pytest.mark.postgres
def test_hostile_csv_files_on_postgresql(tmp_path):
    """The same rejects on PostgreSQL (events stored by COPY)."""
    test_import_contacts_mixed_encodings_rejects_latin1_lines_and_stores_utf8_ones(tmp_path)
    for command in ("import_contacts", "import_events"):
        Event.objects.all().delete()
        Contact.objects.all().delete()
        folder = tmp_path / command
        folder.mkdir()
        test_a_200_kb_cell_rejects_its_line_and_the_899_others_are_stored(folder, command)
        Event.objects.all().delete()
        Contact.objects.all().delete()
        test_an_unclosed_quote_rejects_its_line_only(folder, command)
