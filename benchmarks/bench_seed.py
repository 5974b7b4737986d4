"""Seed benchmark: generate + load the population with ``seed_demo`` (target ≤ 180 s for
1M contacts + 10M events on PostgreSQL), compared with a raw ``COPY`` of the same rows (contacts,
events and the demo consent ledger seed_demo also writes) into scratch tables with the same
indexes and constraints, measured in the same run, and the ratio of the two."""

from __future__ import annotations

import tempfile
from pathlib import Path

from benchmarks.harness import Context, Result, timed

# The floor copies at most this many rows of a table (the whole table at 1M contacts, whose
# largest table has 10M rows). Beyond it (the 10M scale run: 100M events, ~35 GB) a full
# scratch copy does not fit beside the cluster, so the floor is the COPY time of the first
# FLOOR_ROWS rows scaled to the table's rows, and says so.
FLOOR_ROWS = 10_100_000


def _raw_copy_seconds(table: str, path: Path) -> tuple[float, int, int]:
    """(seconds, rows copied, rows in the table) of a raw COPY of ``table``'s rows into a
    scratch table with the same indexes and partitions; seconds are scaled to the whole table
    when only the first FLOOR_ROWS rows were copied."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")  # noqa: S608
        (total,) = cursor.fetchone()
        copied = min(total, FLOOR_ROWS)
        source = f"(SELECT * FROM {table}" + (")" if copied == total else f" LIMIT {copied})")  # noqa: S608
        with path.open("wb") as fh, cursor.copy(f"COPY {source} TO STDOUT") as copy:  # noqa: S608
            for chunk in copy:
                fh.write(chunk)
        # A partitioned table (events on PostgreSQL) gets a scratch copy with the same
        # partitions, so the floor pays the same routing and per-partition indexes.
        cursor.execute(
            "SELECT pg_get_partkeydef(c.oid) FROM pg_class c WHERE c.oid = %s::regclass", [table]
        )
        (partition_key,) = cursor.fetchone()
        shape = f" PARTITION BY {partition_key}" if partition_key else ""
        cursor.execute(f"CREATE TABLE bench_{table} (LIKE {table} INCLUDING ALL){shape}")
        cursor.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
            [table],
        )
        for name, bound in cursor.fetchall():
            cursor.execute(f"CREATE TABLE bench_{name} PARTITION OF bench_{table} {bound}")
        with timed() as t:
            with path.open("rb") as fh, cursor.copy(f"COPY bench_{table} FROM STDIN") as copy:
                while data := fh.read(1 << 20):
                    copy.write(data)
        cursor.execute(f"DROP TABLE bench_{table}")
        path.unlink()
    return t["seconds"] * total / max(copied, 1), copied, total


def run(ctx: Context) -> None:
    from django.core.management import call_command

    from consent.models import ConsentEvent, CurrentConsent
    from contacts.models import Contact, Event

    if Contact.objects.exists():
        # ``--keep DIR``: the kept cluster was seeded by an earlier run; measure nothing again.
        print(f"  reusing the seeded population ({Contact.objects.count():,} contacts)", flush=True)
        return
    with timed() as t:
        call_command(
            "seed_demo", contacts=ctx.contacts, events_per_contact=ctx.events_per_contact, seed=1
        )
    events = Event.objects.count()
    # The COPY files go beside the cluster (the largest free disk), not to /tmp.
    with tempfile.TemporaryDirectory(dir=ctx.data_dir) as tmp:
        floors = {
            model: _raw_copy_seconds(model._meta.db_table, Path(tmp) / "table.copy")
            for model in (Contact, Event, ConsentEvent, CurrentConsent)
        }
    raw_contacts, raw_events = floors[Contact][0], floors[Event][0]
    # seed_demo also writes the demo consent ledger and its current state: same floor.
    raw_ledger = floors[ConsentEvent][0] + floors[CurrentConsent][0]
    raw_total = raw_contacts + raw_events + raw_ledger
    scaled = [
        f"{model._meta.db_table} from its first {copied:,} of {total:,} rows"
        for model, (_, copied, total) in floors.items()
        if copied < total
    ]
    full_scale = ctx.contacts >= 1_000_000 and ctx.events_per_contact >= 10
    ctx.record(
        Result(
            benchmark="seed_demo generate+load",
            value=t["seconds"],
            unit="s",
            target="≤ 180 s for 1M contacts + 10M events",
            passed=(t["seconds"] <= 180) if full_scale else None,
            comparison=f"raw COPY of the same rows: {raw_total:.1f} s (contacts "
            f"{raw_contacts:.1f} s, events {raw_events:.1f} s, consent ledger "
            f"{raw_ledger:.1f} s); ratio {t['seconds'] / raw_total:.2f}× "
            f"({t['seconds'] / (raw_contacts + raw_events):.2f}× contacts + events only)"
            + (f"; floor scaled linearly for {', '.join(scaled)}" if scaled else ""),
            details={
                "contacts": ctx.contacts,
                "events": events,
                "raw_copy_seconds": raw_total,
                "raw_copy_contacts_events_seconds": raw_contacts + raw_events,
                "ratio_to_raw_copy": t["seconds"] / raw_total,
                "floor_scaled_from_rows": {
                    m._meta.db_table: f[1] for m, f in floors.items() if f[1] < f[2]
                },
            },
        )
    )
