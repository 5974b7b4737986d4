"""Year 1 / year 9999 timestamps whose UTC offset pushes them past Python's datetime range are
rejected with their reason at every door; the other rows of the same batch are stored."""

from __future__ import annotations

import csv
import json
import time
from io import StringIO

import pytest
from django.core.management import call_command
from django.test.utils import override_settings

from consent.models import ConsentEvent
from contacts.models import Event
from contacts.services.webhooks import webhook_signature
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db

EXTREMES = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]
GOOD = "2026-01-05T10:00:00+01:00"


@pytest.mark.parametrize("stamp", EXTREMES)
def test_tracking_endpoint_rejects_extreme_timestamp(client, stamp):
    response = client.get(
        "/t/e", {"anonymous_id": "v1", "type": "page_view", "id": "p1", "timestamp": stamp}
    )
    assert response.status_code == 400
    assert response.json()["errors"]["timestamp"] in ("Before 1970.", "In the future.")
    assert not Event.objects.exists()


@override_settings(CIBLE_WEBHOOK_SECRETS={"mailer": "s3cret"})
def test_signed_webhook_rejects_extreme_timestamps_and_stores_the_good_event(client):
    ContactFactory(email="lea@example.fr")
    events = [
        {"id": f"e{i}", "type": "email_open", "email": "lea@example.fr", "timestamp": stamp}
        for i, stamp in enumerate([*EXTREMES, GOOD])
    ]
    raw = json.dumps({"events": events}).encode()
    ts = str(int(time.time()))
    response = client.post(
        "/webhooks/mailer/",
        data=raw,
        content_type="application/json",
        HTTP_X_CIBLE_TIMESTAMP=ts,
        HTTP_X_CIBLE_SIGNATURE=webhook_signature(secret="s3cret", timestamp=ts, body=raw),
    )
    assert response.status_code == 207
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["rejected", "rejected", "created"]
    assert results[0]["errors"] == {"timestamp": "Before 1970."}
    assert results[1]["errors"] == {"timestamp": "In the future."}
    assert list(Event.objects.values_list("idempotency_key", flat=True)) == ["e2"]


def test_bulk_events_api_stores_999_good_rows_beside_one_extreme(api_client):
    ContactFactory(external_id="C-1")
    items = [
        {"external_id": "C-1", "type": "page_view", "timestamp": GOOD, "idempotency_key": f"k{i}"}
        for i in range(1000)
    ]
    items[500]["timestamp"] = EXTREMES[0]
    items[700]["timestamp"] = EXTREMES[1]
    response = api_client.post("/api/v1/events/bulk", {"items": items}, format="json")
    assert response.status_code == 207
    body = response.json()
    assert body["counts"]["created"] == 998 and body["counts"]["rejected"] == 2
    assert body["results"][500]["errors"] == {"timestamp": "Before 1970."}
    assert body["results"][700]["errors"] == {"timestamp": "In the future."}
    assert Event.objects.count() == 998


def test_bulk_consents_api_rejects_extreme_timestamps_and_records_the_good_one(api_client):
    contact = ContactFactory(external_id="C-1")
    items = [
        {
            "external_id": "C-1",
            "purpose": "promotions",
            "channel": "email",
            "granted": True,
            "timestamp": stamp,
        }
        for stamp in [*EXTREMES, "1969-12-31T23:00:00Z", GOOD]
    ]
    response = api_client.post(
        "/api/v1/consents/bulk", {"source": "shop", "items": items}, format="json"
    )
    assert response.status_code == 207
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["rejected", "rejected", "rejected", "recorded"]
    assert "Before 1970" in results[0]["errors"] and "In the future" in results[1]["errors"]
    assert "Before 1970" in results[2]["errors"]
    assert list(ConsentEvent.objects.values_list("contact_id", flat=True)) == [contact.pk]


def test_consent_record_refuses_extreme_time_with_a_value_error():
    from datetime import datetime, timedelta, timezone

    from consent.services import consent_record

    contact = ContactFactory()
    at = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))
    with pytest.raises(ValueError, match="out of range"):
        consent_record(
            contact=contact,
            purpose="promotions",
            channel="email",
            granted=True,
            source="api",
            at=at,
        )
    assert not ConsentEvent.objects.exists()


def test_import_events_rejects_extreme_timestamps_line_by_line(tmp_path):
    ContactFactory(external_id="C-1")
    lines = ["external_id,type,timestamp,idempotency_key"]
    lines += [f"C-1,page_view,{GOOD},k{i}" for i in range(10)]
    lines.insert(3, f"C-1,page_view,{EXTREMES[0]},bad-1")
    lines.insert(6, f"C-1,page_view,{EXTREMES[1]},bad-2")
    path = tmp_path / "events.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rejects = tmp_path / "rejects.csv"
    out = StringIO()
    call_command("import_events", str(path), "--rejects", str(rejects), stdout=out)
    assert "10 created" in out.getvalue() and "2 rejected" in out.getvalue()
    with rejects.open(encoding="utf-8") as fh:
        rows = list(csv.reader(fh))[1:]
    assert [(r[0], r[1]) for r in rows] == [
        ("4", "timestamp: Before 1970."),
        ("7", "timestamp: In the future."),
    ]
    assert Event.objects.count() == 10
