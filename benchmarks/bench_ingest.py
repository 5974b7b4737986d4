"""Ingestion benchmarks on PostgreSQL, each with the raw COPY time of the same rows:

- CSV import (``import_events`` path) of 1,000,000 events naming seeded contacts: target ≤ 60 s;
- bulk API ``POST /api/v1/events/bulk`` (1,000 events per request) against one gunicorn worker
  process: target ≥ 5,000 events/s sustained, and ≤ 4× the raw COPY of the same rows for the
  worker class docker-compose.yml runs (gthread, 2 threads); a sync worker is measured too and
  its ratio reported.

The raw COPY comparison loads the rows as they ended up in ``contacts_event`` back into
``contacts_event`` itself, under another source and with new ids, in a transaction that is
rolled back after its deferred foreign-key checks (each event's contact) have run: the least the
database must do to store those rows in that table, at its size, with its indexes and its
constraints (on a 100M-event table the index pages no longer fit in memory, and an empty table
hides that; a rollback before the checks would leave out work every committed import does). The time into an empty same-shaped table (``LIKE … INCLUDING ALL``), the
floor used before, is printed beside it.

Re-runnable on a kept cluster (``--keep``): the events of the benchmark's sources and its API
keys from an earlier run are deleted first (then ``VACUUM``), so every run inserts the same rows
into the same seeded table.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.harness import Context, Result, timed

CSV_EVENTS = 1_000_000
API_BATCH = 1000
API_REQUESTS = 240  # sustained: ≥ 30 s even for the faster worker
SHIPPED_THREADS = 2  # docker-compose.yml's web service: -k gthread --threads 2
ROOT = Path(__file__).resolve().parents[1]


def _population_ids(ctx: Context, n: int, rng: np.random.Generator) -> np.ndarray:
    picks = rng.integers(0, ctx.contacts, size=n)
    return pd.Series(picks).map(lambda i: f"demo-1-{i:07d}").to_numpy(dtype=object)


def _events_frame(ctx: Context, n: int, *, prefix: str, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    types = np.array(["purchase", "page_view", "Achat", "email_open", "cart_updated"], dtype=object)
    kind = types[rng.integers(0, len(types), size=n)]
    seconds = rng.integers(1_700_000_000, 1_760_000_000, size=n)
    stamps = np.datetime_as_string(seconds.astype("datetime64[s]"), unit="s").astype(object)
    offsets = np.where(rng.random(n) < 0.5, "Z", "+01:00").astype(object)
    purchase = (kind == "purchase") | (kind == "Achat")
    amount = np.where(purchase, np.round(rng.gamma(2.0, 30.0, size=n), 2).astype(str), "")
    categories = np.array(["shoes", "Chaussures", "books", "beauté", "home"], dtype=object)
    category = np.where(purchase, categories[rng.integers(0, len(categories), size=n)], "")
    return pd.DataFrame(
        {
            "external_id": _population_ids(ctx, n, rng),
            "type": kind,
            "timestamp": stamps + offsets,
            "idempotency_key": prefix + pd.Series(np.arange(n)).astype(str).to_numpy(dtype=object),
            "amount": amount,
            "category": category,
        }
    )


@dataclass(frozen=True)
class CopyFloor:
    live: float  # COPY into contacts_event itself (its size, its indexes, its FK), rolled back
    checks: float  # … of which the deferred foreign-key checks
    scratch: float  # COPY into an empty table with the same indexes (no foreign key)

    def describe(self, rows: int) -> str:
        return (
            f"raw COPY of the same {rows:,} rows into contacts_event: {self.live:.2f} s "
            f"({rows / self.live:,.0f} rows/s, of which the foreign-key checks "
            f"{self.checks:.2f} s; into an empty copy of the table: {self.scratch:.2f} s)"
        )


def _raw_copy_seconds(source: str, folder: Path) -> CopyFloor:
    """COPY the rows of ``source`` out, then time COPY of them back in: into contacts_event
    itself under another source (new ids, the live table's size and indexes, and the deferred
    foreign-key checks run before the rollback: what storing them costs the database at
    least), and into an empty same-shaped table."""
    from django.db import connection, transaction

    path = folder / f"{source}.copy"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT string_agg(quote_ident(column_name), ', ' ORDER BY ordinal_position) "
            "FROM information_schema.columns WHERE table_name = 'contacts_event' "
            "AND column_name NOT IN ('id', 'source')"
        )
        columns = cursor.fetchone()[0]
        with (
            path.open("wb") as fh,
            cursor.copy(
                f"COPY (SELECT {columns}, 'floor-' || source FROM contacts_event "  # noqa: S608
                "WHERE source = %s) TO STDOUT",
                [source],
            ) as copy,
        ):
            for chunk in copy:
                fh.write(chunk)
        with transaction.atomic():
            with timed() as live:
                with (
                    path.open("rb") as fh,
                    cursor.copy(f"COPY contacts_event ({columns}, source) FROM STDIN") as copy,
                ):
                    while data := fh.read(1 << 20):
                        copy.write(data)
            # The foreign key to the contact is checked at commit (deferred): run those checks
            # too, or the floor would leave out work every committed import must do.
            with timed() as checks:
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            transaction.set_rollback(True)
        cursor.execute("DROP TABLE IF EXISTS bench_ingest_event")
        cursor.execute("CREATE TABLE bench_ingest_event (LIKE contacts_event INCLUDING ALL)")
        with timed() as scratch:
            with (
                path.open("rb") as fh,
                cursor.copy(f"COPY bench_ingest_event ({columns}, source) FROM STDIN") as copy,
            ):
                while data := fh.read(1 << 20):
                    copy.write(data)
        cursor.execute("DROP TABLE bench_ingest_event")
    return CopyFloor(
        live=live["seconds"] + checks["seconds"],
        checks=checks["seconds"],
        scratch=scratch["seconds"],
    )


def bench_csv(ctx: Context, folder: Path) -> None:
    from contacts.models import Event
    from contacts.services.csv_import import csv_import

    n = CSV_EVENTS if ctx.contacts >= 100_000 else min(CSV_EVENTS, ctx.contacts * 10)
    path = folder / "events.csv"
    _events_frame(ctx, n, prefix="csv-", seed=7).to_csv(path, index=False)
    with timed() as t:
        counts = csv_import(
            kind="events", path=path, source="bench-csv", rejects_path=folder / "rejects.csv"
        )
    stored = Event.objects.filter(source="bench-csv").count()
    raw = _raw_copy_seconds("bench-csv", folder)
    ctx.record(
        Result(
            benchmark=f"CSV import of {n:,} events (import_events)",
            value=t["seconds"],
            unit="s",
            target="≤ 60 s for 1,000,000 events, ≤ 2× the raw COPY",
            passed=(t["seconds"] <= 60 and t["seconds"] <= 2 * raw.live)
            if n >= CSV_EVENTS
            else None,
            comparison=f"{raw.describe(stored)}; ratio {t['seconds'] / raw.live:.2f}× (goal ≤ 2×)",
            details={
                **counts.as_dict(),
                "stored": stored,
                "rows_per_second": n / t["seconds"],
                "raw_copy_seconds": raw.live,
                "raw_copy_empty_table_seconds": raw.scratch,
                "ratio_to_raw_copy": t["seconds"] / raw.live,
            },
        )
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_api(ctx: Context, *, threads: int = 1) -> None:
    """``threads=1``: a sync worker (one request at a time); more: one gthread worker whose
    threads overlap one request's database wait with another's Python (still one process)."""
    from contacts.api_keys import api_key_create
    from contacts.models import Event

    source = "bench-api" if threads == 1 else f"bench-api-{threads}t"
    _key, raw_key = api_key_create(name="bench", scopes=["events:write"])
    frame = _events_frame(ctx, API_BATCH * API_REQUESTS, prefix="api-", seed=11 + threads)
    frame["properties"] = [
        {"amount": float(a), "category": c} if a else {}
        for a, c in zip(frame.pop("amount"), frame.pop("category"), strict=True)
    ]
    records = frame.to_dict("records")
    bodies = [
        json.dumps({"source": source, "items": records[i : i + API_BATCH]}).encode()
        for i in range(0, len(records), API_BATCH)
    ]
    port = _free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DEBUG": "0",
        "DATABASE_URL": ctx.database_url,
        "LOG_LEVEL": "WARNING",
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi",
            "-w",
            "1",
            "-k",
            "sync" if threads == 1 else "gthread",
            "--threads",
            str(threads),
            "-b",
            f"127.0.0.1:{port}",
            "--timeout",
            "120",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        headers = {"Authorization": f"Api-Key {raw_key}", "Content-Type": "application/json"}

        def send(body: bytes) -> int:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            conn.request("POST", "/api/v1/events/bulk", body=body, headers=headers)
            response = conn.getresponse()
            payload = json.loads(response.read())
            conn.close()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}: {str(payload)[:300]}")
            return payload["counts"]["created"]

        send(bodies[0])  # warm-up (imports, connection); counted in neither time nor rows
        queue = list(bodies[1:])
        lock = threading.Lock()
        created = [0]
        errors: list[Exception] = []

        def client() -> None:  # two clients keep the single worker busy (no idle gap)
            while True:
                with lock:
                    if not queue or errors:
                        return
                    body = queue.pop()
                try:
                    n = send(body)
                except Exception as exc:
                    errors.append(exc)
                    return
                with lock:
                    created[0] += n

        with timed() as t:
            clients = [threading.Thread(target=client) for _ in range(2)]
            for thread in clients:
                thread.start()
            for thread in clients:
                thread.join()
        if errors:
            raise errors[0]
    finally:
        server.terminate()
        server.wait(timeout=30)
    rate = created[0] / t["seconds"]
    stored = Event.objects.filter(source=source).count()
    with tempfile.TemporaryDirectory() as tmp:
        raw = _raw_copy_seconds(source, Path(tmp))
    ratio = stored / raw.live / rate
    # The ratio goal (≤ 4× the COPY) is judged on the worker class Cible ships
    # (docker-compose.yml: gthread, 2 threads per process); a sync worker's ratio is reported:
    # it waits for each request's ~36 ms of database work (docs/decisions.md).
    shipped = threads == SHIPPED_THREADS
    ctx.record(
        Result(
            benchmark=(
                f"bulk API, {len(bodies) - 1} × {API_BATCH} events, 1 gunicorn worker"
                + (" (sync)" if threads == 1 else f" (gthread, {threads} threads, as shipped)")
            ),
            value=rate,
            unit="events/s",
            target="≥ 5,000 events/s sustained"
            + (", ≤ 4× the raw COPY" if shipped else "; ratio reported"),
            passed=rate >= 5000 and (ratio <= 4 or not shipped),
            comparison=(
                f"{raw.describe(stored)}; API wall time {t['seconds']:.1f} s; "
                f"ratio {ratio:.2f}×" + (" (goal ≤ 4×)" if shipped else " (reported)")
            ),
            details={
                "created": created[0],
                "stored": stored,
                "seconds": t["seconds"],
                "raw_copy_rows_per_second": stored / raw.live,
                "raw_copy_empty_table_seconds": raw.scratch,
                "ratio_to_raw_copy": ratio,
            },
        )
    )


def _forget_earlier_runs() -> None:
    from django.db import connection

    from contacts.models import ApiKey

    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM contacts_event WHERE source = ANY(%s)",
            [["bench-csv", "bench-api", "bench-api-2t"]],
        )
        deleted = cursor.rowcount
    ApiKey.objects.filter(name="bench").delete()
    if deleted:
        with connection.cursor() as cursor:
            cursor.execute("VACUUM (ANALYZE) contacts_event")


def run(ctx: Context) -> None:
    _forget_earlier_runs()
    with tempfile.TemporaryDirectory() as tmp:
        bench_csv(ctx, Path(tmp))
    bench_api(ctx)
    bench_api(ctx, threads=SHIPPED_THREADS)
