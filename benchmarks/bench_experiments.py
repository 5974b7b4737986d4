"""Experiments benchmark: results page (HTML) and JSON API with 1,000,000 assignments.

Target (issue 10): each ≤ 1 s on PostgreSQL with 1,000,000 assignments — the aggregates run in
SQL (one grouped statement per metric family). Set-up, also timed and reported: every seeded
contact is assigned through ``assignments_ensure`` (A/B/C, weights 1:1:1), then tracking events
after the assignment are loaded with COPY (opens 25 % of which a fifth machine opens, clicks
5-6 % with a lift for C, purchases 2 % with amounts, unsubscribes 0.2 %).
Outcomes (first open/click/conversion, revenue per assignment) are kept up to date from events
by ``outcomes_refresh``; the catch-up after the bulk load is timed separately, then every page
load refreshes incrementally (nothing new: one index probe) and scans the assignments once.
Comparison: the same per-variant aggregates computed in pandas after loading the rows.
"""

from __future__ import annotations

import json
import statistics
from datetime import UTC, datetime, timedelta

import numpy as np

from benchmarks.harness import Context, Result, timed

REPEATS = 5


def _load_events(contact_ids: np.ndarray, variant_index: np.ndarray, start: datetime) -> int:
    """COPY synthetic tracking events for the assigned contacts; returns how many."""
    from django.db import connection

    rng = np.random.default_rng(10)
    n = contact_ids.size
    rows = []
    opened = rng.random(n) < 0.25
    machine = rng.random(n) < 0.2
    click_rate = np.where(variant_index == 2, 0.06, 0.05)
    clicked = rng.random(n) < click_rate
    bought = rng.random(n) < 0.02
    unsub = rng.random(n) < 0.002
    offsets = rng.integers(60, 6 * 86_400, size=n)
    amounts = np.round(rng.lognormal(3.8, 0.7, size=n), 2)
    for mask, type_ in (
        (opened, "email_open"),
        (clicked, "email_click"),
        (bought, "purchase"),
        (unsub, "unsubscribe"),
    ):
        for i in np.flatnonzero(mask):
            props = {}
            if type_ == "email_open":
                props = {"machine_open": bool(machine[i])}
            elif type_ == "purchase":
                props = {"amount": float(amounts[i])}
            rows.append(
                (
                    int(contact_ids[i]),
                    type_,
                    start + timedelta(seconds=int(offsets[i])),
                    json.dumps(props),
                )
            )
    now = datetime.now(UTC)
    with connection.cursor() as cursor:
        with cursor.copy(
            "COPY contacts_event (contact_id, type, occurred_at, received_at, properties, channel, "
            "device, country, city, source, idempotency_key) FROM STDIN"
        ) as copy:
            for k, (cid, type_, at, props) in enumerate(rows):
                copy.write_row(
                    (cid, type_, at, now, props, "email", "", "", "", "bench-experiments", f"e{k}")
                )
        cursor.execute("ANALYZE contacts_event")
        cursor.execute("ANALYZE experiments_assignment")
    return len(rows)


def _pandas_aggregates_seconds(experiment, start: datetime) -> float:
    """The same per-variant counts computed in pandas from loaded rows (the comparison)."""
    import pandas as pd
    from django.db import connection

    with timed() as t:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT contact_id, variant_id, assigned_at FROM experiments_assignment WHERE experiment_id = %s",
                [experiment.pk],
            )
            assignments = pd.DataFrame(
                cursor.fetchall(), columns=["contact_id", "variant_id", "assigned_at"]
            )
            cursor.execute(
                "SELECT contact_id, type, occurred_at, properties::text FROM contacts_event "
                "WHERE occurred_at >= %s AND type IN ('email_open','email_click','purchase','unsubscribe','email_complaint')",
                [start],
            )
            events = pd.DataFrame(
                cursor.fetchall(), columns=["contact_id", "type", "occurred_at", "properties"]
            )
        merged = events.merge(assignments, on="contact_id")
        merged = merged[merged.occurred_at >= merged.assigned_at]
        props = merged.properties.map(json.loads)
        merged["machine"] = props.map(lambda p: bool(p.get("machine_open")))
        merged["amount"] = props.map(lambda p: float(p.get("amount", 0) or 0))
        per_contact = merged.groupby(["variant_id", "contact_id"]).agg(
            opened=("type", lambda s: (s == "email_open").any()), revenue=("amount", "sum")
        )
        per_contact.groupby("variant_id").agg(opened=("opened", "sum"), revenue=("revenue", "sum"))
        assignments.groupby("variant_id").size()
    return t["seconds"]


def _assignment_floor_seconds(experiment) -> float:
    """The floor of assigning: the same assignment rows written by a bare ``INSERT … SELECT``
    (no hashing, no conflict check, no read-back) into an empty table with the same indexes."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_assignment_floor")
        cursor.execute(
            "CREATE TABLE bench_assignment_floor "
            "(LIKE experiments_assignment INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
            "INCLUDING INDEXES)"
        )
        with timed() as t:
            cursor.execute(
                "INSERT INTO bench_assignment_floor SELECT * FROM experiments_assignment "
                "WHERE experiment_id = %s",
                [experiment.pk],
            )
        cursor.execute("DROP TABLE bench_assignment_floor")
    return t["seconds"]


def _cleanup() -> None:
    """Remove what an earlier run on a kept cluster (``--keep``) left behind."""
    from django.contrib.auth.models import User
    from django.db import connection

    from experiments.models import Experiment

    old = list(Experiment.objects.filter(name="Benchmark A/B/C").values_list("pk", flat=True))
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM experiments_assignment WHERE experiment_id = ANY(%s)", [old])
        cursor.execute("DELETE FROM contacts_event WHERE source = 'bench-experiments'")
    Experiment.objects.filter(pk__in=old).delete()
    User.objects.filter(username="bench-marketer").delete()


def run(ctx: Context) -> None:
    from django.contrib.auth.models import User
    from django.test import Client

    from contacts.api_keys import api_key_create
    from contacts.models import Contact
    from experiments.models import Experiment, ExperimentStatus, Variant
    from experiments.results import experiment_results
    from experiments.services import assignments_ensure

    _cleanup()
    start = datetime.now(UTC).replace(microsecond=0)
    experiment = Experiment.objects.create(
        name="Benchmark A/B/C",
        salt="bench",
        status=ExperimentStatus.RUNNING,
        started_at=start,
        primary_metric="click",
        minimum_detectable_effect=0.05,
    )
    for position, key in enumerate("ABC"):
        Variant.objects.create(
            experiment=experiment,
            key=key,
            name=f"Variant {key}",
            is_control=key == "A",
            position=position,
        )
    contact_ids = np.fromiter(
        Contact.objects.order_by("pk").values_list("pk", flat=True).iterator(chunk_size=50_000),
        dtype=np.int64,
    )
    with timed() as t_assign:
        assigned = assignments_ensure(experiment=experiment, contact_ids=contact_ids, now=start)
    with timed() as t_again:  # every contact already assigned: read back, nothing inserted
        assignments_ensure(experiment=experiment, contact_ids=contact_ids, now=start)
    floor_seconds = _assignment_floor_seconds(experiment)
    keys = {v.pk: i for i, v in enumerate(experiment.variants.order_by("position"))}
    variant_index = np.fromiter((keys[assigned[int(c)].pk] for c in contact_ids), dtype=np.int64)
    with timed() as t_events:
        n_events = _load_events(contact_ids, variant_index, start)
    ratio = t_assign["seconds"] / max(floor_seconds, 1e-9)
    ctx.record(
        Result(
            benchmark="experiments: assign every contact (assignments_ensure)",
            value=t_assign["seconds"],
            unit="s",
            target="≤ 2× a bare INSERT … SELECT of the same rows",
            passed=ratio <= 2.0,
            comparison=f"bare INSERT … SELECT of the same {len(assigned):,} rows into an empty "
            f"table with the same indexes: {floor_seconds:.1f} s (ratio {ratio:.2f})",
            details={
                "assignments": len(assigned),
                "floor_seconds": round(floor_seconds, 3),
                "ratio": round(ratio, 2),
                "again_all_assigned_seconds": round(t_again["seconds"], 3),
                "events_loaded": n_events,
                "events_load_seconds": round(t_events["seconds"], 1),
            },
        )
    )

    user = User.objects.create_user(
        "bench-marketer", password="x", is_staff=True, is_superuser=True
    )
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    _key, raw_key = api_key_create(name="bench", scopes=["experiments:read"])
    api = Client(HTTP_HOST="localhost", HTTP_AUTHORIZATION=f"Api-Key {raw_key}")

    def measure(fn) -> tuple[float, list[float]]:
        times = []
        for _ in range(REPEATS):
            with timed() as t:
                fn()
            times.append(t["seconds"])
        return statistics.median(times), times

    def html():
        response = client.get(f"/experiments/{experiment.pk}/results/", HTTP_ACCEPT_LANGUAGE="fr")
        assert response.status_code == 200, response.status_code

    def api_json():
        response = api.get(f"/api/v1/experiments/{experiment.pk}/results")
        assert response.status_code == 200, response.status_code

    from django.db import connection

    from experiments.outcomes import outcomes_refresh

    with timed() as t_refresh:
        refreshed = outcomes_refresh(experiment=experiment)
    with connection.cursor() as cursor:  # what autovacuum does after a bulk load
        cursor.execute("VACUUM ANALYZE experiments_assignment")
    ctx.record(
        Result(
            benchmark="experiments: outcome catch-up after loading the events (outcomes_refresh)",
            value=t_refresh["seconds"],
            unit="s",
            details={"assignments_updated": refreshed, "events": n_events},
        )
    )
    with timed() as t_first:
        results = experiment_results(experiment=experiment)
    html_median, html_times = measure(html)
    json_median, json_times = measure(api_json)
    pandas_seconds = _pandas_aggregates_seconds(experiment, start)
    full_scale = len(assigned) >= 1_000_000
    details = {
        "assignments": results.total_assigned,
        "first_compute_seconds": round(t_first["seconds"], 3),
        "srm_p_value": results.srm_p_value,
        "verdicts": [c.sentence for c in results.primary_comparisons()],
    }
    comparison = f"same aggregates in pandas after loading the rows: {pandas_seconds:.1f} s"
    ctx.record(
        Result(
            benchmark="experiments: results page HTML",
            value=html_median,
            unit="s",
            target="≤ 1 s with 1,000,000 assignments",
            passed=(html_median <= 1.0) if full_scale else None,
            comparison=comparison,
            details={**details, "runs": [round(x, 3) for x in html_times]},
        )
    )
    ctx.record(
        Result(
            benchmark="experiments: results JSON API",
            value=json_median,
            unit="s",
            target="≤ 1 s with 1,000,000 assignments",
            passed=(json_median <= 1.0) if full_scale else None,
            comparison=comparison,
            details={"runs": [round(x, 3) for x in json_times]},
        )
    )
