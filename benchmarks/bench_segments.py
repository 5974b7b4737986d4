"""Segments benchmarks on the seeded population (PostgreSQL):

- full feature refresh vs a raw SQL aggregate of the same events (target ≤ 1.5×);
- incremental refresh after 10,000 contacts received new events (target ≤ 1 s);
- 20 typical rule segments (features, event windows, a membership condition, a priority family)
  computed from scratch and again (target ≤ 10 s total);
- single-contact real-time re-evaluation after one event, p95 over 200 contacts (target ≤ 20 ms).
"""

from __future__ import annotations

import random
import statistics
import time
from datetime import timedelta

from benchmarks.harness import Context, Result, timed


def _raw_aggregate_sql() -> tuple[str, dict]:
    """The hand-written equivalent of the feature refresh's aggregate: one GROUP BY over the
    events computing the same aggregates (purchase first/last/count/90-day/365-day counts, sum
    and average of the numeric amount, decayed engagement per weighted event type, last
    activity, per-channel counts) into a plain (logged) table. What it does not do and the
    refresh does: join every contact (those without events get a row too), derive the final
    columns, key the table (primary key, foreign key) and analyse it."""
    import math

    from django.conf import settings
    from django.utils import timezone

    from contacts.models import Channel

    now = timezone.now()
    weights = sorted(settings.SEGMENTS_ENGAGEMENT_WEIGHTS.items())
    params: dict = {
        "purchase": settings.CIBLE_PURCHASE_EVENT_TYPE,
        "amount": settings.CIBLE_PURCHASE_AMOUNT_PROPERTY,
        "now": now,
        "epoch": now.timestamp(),
        "decay": math.log(2) / (float(settings.SEGMENTS_ENGAGEMENT_HALF_LIFE_DAYS) * 86_400.0),
        "d90": now - timedelta(days=90),
        "d365": now - timedelta(days=365),
    }
    branches = []
    for i, (event_type, weight) in enumerate(weights):
        params[f"t{i}"], params[f"w{i}"] = event_type, float(weight)
        branches.append(
            f"WHEN %(t{i})s THEN %(w{i})s * "
            "exp(%(decay)s * (date_part('epoch', occurred_at) - %(epoch)s))"
        )
    channels = []
    for i, channel in enumerate(Channel.values):
        params[f"c{i}"] = channel
        channels.append(f"count(*) FILTER (WHERE channel = %(c{i})s) AS ch_{i}")
    amount = (
        "CASE WHEN jsonb_typeof(properties -> %(amount)s) = 'number' "
        "THEN (properties ->> %(amount)s)::float8 END"
    )
    sql = f"""
CREATE TABLE bench_raw_aggregate AS
SELECT contact_id,
       max(occurred_at) FILTER (WHERE type = %(purchase)s) AS last_purchase,
       min(occurred_at) FILTER (WHERE type = %(purchase)s) AS first_purchase,
       count(*) FILTER (WHERE type = %(purchase)s) AS purchases,
       count(*) FILTER (WHERE type = %(purchase)s AND occurred_at > %(d90)s) AS f90,
       count(*) FILTER (WHERE type = %(purchase)s AND occurred_at > %(d365)s) AS f365,
       sum({amount}) FILTER (WHERE type = %(purchase)s) AS monetary,
       avg({amount}) FILTER (WHERE type = %(purchase)s) AS basket,
       sum(CASE type {" ".join(branches)} END) AS engagement,
       max(occurred_at) AS last_activity,
       {", ".join(channels)}
FROM contacts_event
WHERE occurred_at <= %(now)s
GROUP BY contact_id
"""  # noqa: S608
    return sql, params


def _forget_earlier_runs() -> None:
    """Re-runnable on a kept cluster: drop what an earlier run of this module created (its
    segments, their history, its events, its watermark)."""
    from contacts.models import Event
    from segments.demo import example_segments
    from segments.models import FeatureWatermark, Segment, SegmentFamily

    names = [spec["name"] for spec in example_segments()]
    Segment.objects.filter(name__in=names).delete()
    families = {spec["family"] for spec in example_segments() if "family" in spec}
    SegmentFamily.objects.filter(name__in=families, segments__isnull=True).delete()
    Event.objects.filter(source="bench").delete()
    FeatureWatermark.objects.filter(name="incremental").delete()
    # Other modules' fixed audiences (memberships written by hand; runs before 2026-12-06 left
    # them active, one with an empty rule): not part of the 20 segments measured here.
    Segment.objects.filter(name__startswith="bench: ").update(is_active=False)


def _create_segments() -> list[int]:
    from segments.demo import example_segments_create

    return [segment.pk for segment in example_segments_create()]


def _add_events(contact_ids: list[int], *, event_type: str, tag: str) -> None:
    from django.utils import timezone

    from contacts.models import Event

    now = timezone.now()
    Event.objects.bulk_create(
        [
            Event(
                contact_id=cid,
                type=event_type,
                occurred_at=now,
                properties={"amount": 42.0, "category": "shoes"}
                if event_type == "purchase"
                else {},
                channel="web",
                source="bench",
                idempotency_key=f"{tag}-{cid}",
            )
            for cid in contact_ids
        ],
        batch_size=5_000,
    )


def _scan_nodes(node: dict):
    yield node
    for child in node.get("Plans", []):
        yield from _scan_nodes(child)


def _segment_costs(segment_ids: list[int]) -> list[dict]:
    """Each segment's rule compiled on its own (as SQLite, a real-time batch or a level too
    large for one pass run it) under ``EXPLAIN (ANALYZE, BUFFERS)``: its execution time and the
    scan that costs most (node, relation, index, rows, heap blocks, loops) — why it is slow.
    In a scheduled computation on PostgreSQL the segments of one dependency level are
    evaluated together (one pass; their history rows share its duration), so this is where a
    segment's own cost shows."""
    import json

    from django.db import connection, transaction
    from django.utils import timezone

    from contacts.models import Contact
    from segments.dependencies import effective_rule, spec_of
    from segments.models import Segment
    from segments.rules import rule_compile

    specs = [spec_of(s) for s in Segment.objects.all()]
    now = timezone.now()
    costs = []
    for spec in specs:
        if spec.id not in segment_ids:
            continue
        q = rule_compile(effective_rule(spec, specs), now=now)
        sql, params = Contact.objects.filter(q).values("pk").query.sql_with_params()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL work_mem = '256MB'")  # as a computation runs it
            cursor.execute(
                f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT count(*) FROM ({sql}) x",  # noqa: S608
                params,
            )
            plan = cursor.fetchone()[0]
        plan = plan if isinstance(plan, list) else json.loads(plan)
        top = plan[0]
        scans = [n for n in _scan_nodes(top["Plan"]) if "Scan" in n["Node Type"]]
        worst = max(scans, key=lambda n: n["Actual Total Time"], default=top["Plan"])
        costs.append(
            {
                "segment": spec.name,
                "ms": round(top["Execution Time"], 1),
                "scan": worst["Node Type"],
                "relation": worst.get("Relation Name", ""),
                "index": worst.get("Index Name", ""),
                "rows": worst.get("Actual Rows", 0) * worst.get("Actual Loops", 1),
                "loops": worst.get("Actual Loops", 1),
                "heap_blocks": worst.get("Exact Heap Blocks", 0)
                + worst.get("Lossy Heap Blocks", 0),
                "scan_ms": round(worst["Actual Total Time"], 1),
            }
        )
    return sorted(costs, key=lambda c: -c["ms"])


def _level_times(rows) -> list[tuple[int, list[str]]]:
    """(duration ms, segment names) per computation pass: the segments of one dependency level
    are evaluated together on PostgreSQL and share the pass's duration."""
    from segments.models import Segment

    names = dict(Segment.objects.values_list("pk", "name"))
    passes: dict[int, list[str]] = {}
    for r in rows:
        passes.setdefault(r.duration_ms, []).append(names.get(r.segment_id, str(r.segment_id)))
    return sorted(passes.items(), key=lambda p: -p[0])


def run(ctx: Context) -> None:
    from django.db import connection
    from django.db.models import Max

    from contacts.models import Contact, Event
    from segments.models import FeatureWatermark, Segment
    from segments.services import (
        contacts_reevaluate,
        features_refresh,
        features_refresh_incremental,
        segments_compute,
    )

    _forget_earlier_runs()
    raw_sql, raw_params = _raw_aggregate_sql()
    # Both sides are timed twice and compared best to best (a 2-core machine's noise moves
    # either by ±20 % between runs).
    raw_times = []
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_raw_aggregate")
        cursor.execute("ANALYZE")
        for _ in range(2):
            with timed() as raw:
                cursor.execute(raw_sql, raw_params)
            cursor.execute("DROP TABLE bench_raw_aggregate")
            raw_times.append(raw["seconds"])

    with timed() as first:
        features_refresh()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE segments_contactfeatures")
    with timed() as steady:
        features_refresh()
    best_raw = min(raw_times)
    best = min(first["seconds"], steady["seconds"])
    ratio = best / best_raw
    ctx.record(
        Result(
            benchmark="segments: full feature refresh (best of 2)",
            value=best,
            unit="s",
            target="≤ 1.5 × raw SQL aggregate",
            passed=ratio <= 1.5,
            comparison=f"hand-written GROUP BY of the same aggregates into a table (best of 2): "
            f"{best_raw:.2f} s; ratio {ratio:.2f}×; refreshes {first['seconds']:.2f} s "
            f"(over last run's table) and {steady['seconds']:.2f} s (after VACUUM); "
            f"GROUP BYs {raw_times[0]:.2f} s and {raw_times[1]:.2f} s",
            details={
                "raw_seconds": raw_times,
                "first_seconds": first["seconds"],
                "steady_seconds": steady["seconds"],
                "ratio": ratio,
            },
        )
    )

    # Incremental: watermark at the newest event, then 10,000 contacts receive one event each.
    newest = Event.objects.aggregate(top=Max("id"))["top"]
    FeatureWatermark.objects.update_or_create(
        name="incremental", defaults={"last_event_id": newest}
    )
    all_ids = list(Contact.objects.values_list("pk", flat=True))
    rng = random.Random(5)
    changed = rng.sample(all_ids, min(10_000, len(all_ids)))
    _add_events(changed, event_type="purchase", tag="incr")
    with timed() as incr:
        result = features_refresh_incremental()
    ctx.record(
        Result(
            benchmark="segments: incremental refresh of 10,000 changed contacts",
            value=incr["seconds"],
            unit="s",
            target="≤ 1 s",
            passed=incr["seconds"] <= 1.0,
            comparison=f"full refresh of {ctx.contacts:,} contacts: {steady['seconds']:.2f} s",
            details={"contacts_refreshed": result.contacts, "folded": result.folded},
        )
    )

    segment_ids = _create_segments()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    with timed() as cold:
        segments_compute()
    # A scheduled recompute as it runs in production: since the last one, 10,000 other
    # contacts bought something and the incremental refresh folded it into their features.
    churned = rng.sample(all_ids, min(10_000, len(all_ids)))
    _add_events(churned, event_type="purchase", tag="churn")
    features_refresh_incremental()
    with timed() as warm:
        rows = segments_compute()
    sizes = {s.name: s.size for s in Segment.objects.filter(pk__in=segment_ids)}
    passes = _level_times(rows)
    costs = _segment_costs(segment_ids)
    slowest = costs[0]
    why = (
        f"{slowest['scan']} on {slowest['relation']}"
        + (f" using {slowest['index']}" if slowest["index"] else "")
        + f": {slowest['rows']:,} rows"
        + (f" from {slowest['heap_blocks']:,} heap blocks" if slowest["heap_blocks"] else "")
        + (f", run in each of {slowest['loops']} processes" if slowest["loops"] > 1 else "")
        + f", {slowest['scan_ms']:.0f} ms"
    )
    ctx.record(
        Result(
            benchmark="segments: 20 typical segments recomputed",
            value=warm["seconds"],
            unit="s",
            target="≤ 10 s total",
            passed=warm["seconds"] <= 10.0,
            comparison=f"recompute after 10,000 contacts changed (diff: "
            f"{sum(r.entered for r in rows):,} entered, {sum(r.exited for r in rows):,} exited); "
            f"first compute (every member enters, {sum(sizes.values()):,} rows) "
            f"{cold['seconds']:.2f} s; passes (segments of a dependency level evaluated "
            f"together): "
            + "; ".join(f"{ms} ms for {len(names)} segment(s)" for ms, names in passes)
            + f"; slowest segment on its own (EXPLAIN ANALYZE): “{slowest['segment']}” "
            f"{slowest['ms']:.0f} ms — {why}; next: "
            + ", ".join(f"“{c['segment']}” {c['ms']:.0f} ms" for c in costs[1:4]),
            details={
                "sizes": sizes,
                "cold_seconds": cold["seconds"],
                "passes": [{"ms": ms, "segments": names} for ms, names in passes],
                "segments_alone": costs,
            },
        )
    )

    # Real-time: one event for one contact, then re-evaluate that contact (feature refresh +
    # every segment depending on purchases, and those reading them).
    sample = rng.sample(all_ids, 200)
    _add_events(sample, event_type="purchase", tag="rt")
    timings = []
    for cid in sample:
        started = time.perf_counter()
        contacts_reevaluate(contact_ids=[cid], event_types={"purchase"})
        timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    p95 = timings[int(0.95 * len(timings)) - 1]
    ctx.record(
        Result(
            benchmark="segments: single-contact real-time re-evaluation p95",
            value=p95,
            unit="ms",
            target="≤ 20 ms",
            passed=p95 <= 20.0,
            comparison=f"median {statistics.median(timings):.1f} ms, max {timings[-1]:.1f} ms over "
            f"{len(timings)} contacts; full recompute of the 20 segments {warm['seconds']:.2f} s",
        )
    )
