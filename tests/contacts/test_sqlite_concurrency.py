"""Embedded mode (SQLite): concurrent bulk clients over real HTTP never get a 500 "database is
locked" — writes wait for each other (busy timeout, IMMEDIATE transactions) and, should the
wait run out, the answer is 503 with Retry-After — and nothing acknowledged is lost."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from contacts.models import Contact, Event

CLIENTS = 3
REQUESTS = 8
EVENTS = 400


def post(url: str, key: str, body: dict) -> tuple[int, dict, dict]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Api-Key {key}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = {"raw": raw[:300].decode("utf-8", "replace")}
        return error.code, dict(error.headers), payload


@pytest.mark.django_db(transaction=True)
def test_concurrent_bulk_clients_on_sqlite_get_no_500_and_lose_nothing(live_server, api_key_value):
    assert connection.vendor == "sqlite"

    def client(number: int) -> list[tuple[int, dict, dict, int]]:
        answers = []
        for request in range(REQUESTS):
            kind = "contacts" if request % 2 else "events"
            if kind == "events":  # new people each time: contacts created with their events
                items = [
                    {
                        "external_id": f"c{number}-r{request}-{i % 50}",
                        "type": "page_view",
                        "timestamp": "2026-03-01T10:00:00Z",
                        "idempotency_key": f"c{number}-r{request}-e{i}",
                    }
                    for i in range(EVENTS)
                ]
            else:
                items = [
                    {"external_id": f"p{number}-r{request}-{i}", "first_name": "Léa"}
                    for i in range(EVENTS // 2)
                ]
            url = f"{live_server.url}/api/v1/{kind}/bulk"
            status, headers, payload = post(url, api_key_value, {"items": items})
            while status == 503:  # allowed: "busy, retry", with Retry-After
                assert int(headers["Retry-After"]) >= 1
                status, headers, payload = post(url, api_key_value, {"items": items})
            answers.append((status, headers, payload, len(items)))
        return answers

    with ThreadPoolExecutor(CLIENTS) as pool:
        answers = [a for batch in pool.map(client, range(CLIENTS)) for a in batch]
    statuses = [status for status, _h, _p, _n in answers]
    assert statuses == [200] * (CLIENTS * REQUESTS), [
        (s, p) for s, _h, p, _n in answers if s != 200
    ][:3]
    half = REQUESTS // 2
    assert Event.objects.count() == CLIENTS * half * EVENTS
    assert Contact.objects.count() == CLIENTS * half * (50 + EVENTS // 2)


@pytest.mark.django_db(transaction=True)
def test_a_write_that_waits_out_the_busy_timeout_answers_503_with_retry_after(api_client):
    import sqlite3

    item = {
        "external_id": "C-1",
        "type": "page_view",
        "timestamp": "2026-03-01T10:00:00Z",
        "idempotency_key": "k1",
    }
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout = 200")  # this test's wait: 0.2 s, not 20 s
    holder = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        busy = api_client.post("/api/v1/events/bulk", {"items": [item]}, format="json")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert busy.status_code == 503
    assert busy["Retry-After"] == "2"
    assert "database is busy" in busy.json()["detail"]
    assert not Event.objects.exists()
    again = api_client.post("/api/v1/events/bulk", {"items": [item]}, format="json")
    assert again.status_code == 200 and Event.objects.count() == 1
