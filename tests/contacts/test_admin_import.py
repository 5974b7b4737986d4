"""Admin CSV upload: column mapping, preview, then a real Celery worker (queue ingest) imports
the file and the job page shows the counts and the reject file."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test.utils import override_settings
from django.utils import translation
from django.utils.translation import gettext as _

from contacts.models import Event, ImportJob
from tests.factories import ContactFactory
from tests.workers import celery_worker, wait_until

CSV = (
    "client;type;date;id;prix_payé\n"
    "C-1;Achat;2026-03-01T10:00:00+01:00;o-1;19,90\n"
    "C-1;page_view;2026-03-01T10:05:00+01:00;pv-1;\n"
    "C-1;page_view;pas une date;pv-2;\n"
).encode("cp1252")


@pytest.mark.django_db(transaction=True)
def test_upload_mapping_preview_then_worker_imports(client, tmp_path, isolated_broker):
    folder = isolated_broker
    media = tmp_path / "media"
    ContactFactory(external_id="C-1")
    client.force_login(User.objects.create_superuser("admin", "admin@example.fr", "x"))
    with override_settings(MEDIA_ROOT=str(media)):
        page = client.post(
            "/admin/contacts/importjob/upload/",
            {
                "kind": "events",
                "file": SimpleUploadedFile("ventes.csv", CSV, content_type="text/csv"),
                "source": "boutique",
                "delimiter": "",
                "encoding": "",
                "default_timezone": "",
            },
            follow=True,
        )
        html = page.content.decode()
        assert "encoding cp1252" in html and "delimiter “;”" in html
        mapping_url = page.redirect_chain[-1][0]
        mapping = {
            "columns": "5",
            "column_0": "client",
            "target_0": "external_id",
            "column_1": "type",
            "target_1": "type",
            "column_2": "date",
            "target_2": "timestamp",
            "column_3": "id",
            "target_3": "idempotency_key",
            "column_4": "prix_payé",
            "target_4": "properties.amount",
        }
        preview = client.post(mapping_url, {**mapping, "preview": "yes"}).content.decode()
        assert "purchase" in preview and "19.9" in preview  # normalised as it will be stored
        assert "Not an ISO 8601 date-time" in preview  # line 4's problem, before importing
        assert not Event.objects.exists()
        started = client.post(mapping_url, {**mapping, "start": "yes"}, follow=True)
        job = ImportJob.objects.get()
        assert started.redirect_chain[-1][0].endswith(f"/admin/contacts/importjob/{job.pk}/change/")
        with celery_worker(
            broker_url="filesystem://",
            broker_folder=folder,
            queues="ingest",
            extra_env={"MEDIA_ROOT": str(media)},
        ):
            wait_until(
                lambda: ImportJob.objects.filter(pk=job.pk, status="done").exists(),
                timeout=180,
                what="the worker to finish the import",
            )
        job.refresh_from_db()
        assert (job.created, job.duplicates, job.rejected) == (2, 0, 1)
        assert Event.objects.get(idempotency_key="o-1").properties == {"amount": 19.9}
        reject = Path(job.rejects_file.path).read_text(encoding="utf-8")
        # The worker runs with the deployment's language (French by default): the reject file
        # speaks the marketers' language.
        with translation.override("fr"):
            reason = str(_("Not an ISO 8601 date-time (expected e.g. 2026-03-01T14:05:00+01:00)."))
        assert reason != "Not an ISO 8601 date-time (expected e.g. 2026-03-01T14:05:00+01:00)."
        assert f"4,timestamp: {reason}" in reject
        page = client.get(f"/admin/contacts/importjob/{job.pk}/change/").content.decode()
        assert "100 %" in page and job.rejects_file.name in page
