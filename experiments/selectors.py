"""Per-variant aggregates of an experiment, computed in SQL (one grouped query per family).

1. :func:`assignment_counts` — contacts assigned per variant and per day (``GROUP BY``).
2. :func:`event_aggregates` — one statement over ``Assignment ⋈ Event``: a per-contact
   sub-aggregate (did the contact open, click, convert, unsubscribe, complain after being
   assigned; revenue within the conversion window; day of the first primary-metric event), then
   grouped by (variant, that day). Totals are the sums over days; the days give the cumulative
   chart and the daily looks of the sequential test.
3. :func:`delivery_counts` — messages delivered per variant, from activation's outbox (when the
   experiment is attached to a campaign).

Raw SQL is built only from fixed identifiers (model table names and constant fragments); every
value is a query parameter. Both SQLite and PostgreSQL are supported.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime

from django.conf import settings
from django.db import connection

from contacts.models import Event
from experiments.models import Assignment, Experiment, Metric

#: Event types read by the results (written by ingestion and activation's tracking).
OPEN_EVENT = "email_open"
#: Clicks of every channel (activation records ``<channel>_click``).
CLICK_EVENTS = ("email_click", "sms_click", "push_click")
UNSUBSCRIBE_EVENT = "unsubscribe"
COMPLAINT_EVENT = "email_complaint"


@dataclass
class VariantAggregate:
    """Counts of one variant. Rates use ``assigned`` as the denominator (intention to treat)."""

    variant_id: int
    assigned: int = 0
    targeted: int = 0
    delivered: int | None = None
    opens: int = 0
    clicks: int = 0
    conversions: int = 0
    unsubscribes: int = 0
    complaints: int = 0
    revenue_sum: float = 0.0
    revenue_sum_squares: float = 0.0
    assigned_by_day: dict[date, int] = field(default_factory=dict)
    primary_by_day: dict[date, int] = field(default_factory=dict)
    revenue_by_day: dict[date, float] = field(default_factory=dict)

    def count(self, metric: str) -> int:
        return {
            Metric.OPEN: self.opens,
            Metric.CLICK: self.clicks,
            Metric.CONVERSION: self.conversions,
            Metric.UNSUBSCRIBE: self.unsubscribes,
            Metric.COMPLAINT: self.complaints,
        }[Metric(metric)]


def _day(value) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _dialect() -> dict[str, str]:
    """SQL fragments that differ between PostgreSQL and SQLite (fixed text, no user input)."""
    if connection.vendor == "postgresql":
        return {
            "day_a": "(a.assigned_at AT TIME ZONE 'UTC')::date",
            "day_first": "(first_primary_at AT TIME ZONE 'UTC')::date",
            "after": "e.occurred_at >= a.assigned_at",
            "in_window": "e.occurred_at < a.assigned_at + %s * interval '1 day'",
            "machine_open": "COALESCE(e.properties->>'machine_open', 'false') = 'true'",
            "amount": (
                "CASE WHEN jsonb_typeof(e.properties->%s) = 'number' "
                "THEN (e.properties->>%s)::double precision ELSE 0 END"
            ),
            "campaign": "e.properties->>'campaign_id' = %s",
        }
    return {
        "day_a": "date(a.assigned_at)",
        "day_first": "date(first_primary_at)",
        "after": "julianday(e.occurred_at) >= julianday(a.assigned_at)",
        "in_window": "julianday(e.occurred_at) < julianday(a.assigned_at) + %s",
        "machine_open": "COALESCE(json_extract(e.properties, '$.machine_open'), 0) IN (1, 'true')",
        "amount": (
            "CASE WHEN json_type(e.properties, %s) IN ('integer', 'real') "
            "THEN json_extract(e.properties, %s) ELSE 0 END"
        ),
        "campaign": "CAST(json_extract(e.properties, '$.campaign_id') AS TEXT) = %s",
    }


def assignment_counts(*, experiment: Experiment) -> dict[int, VariantAggregate]:
    """Assigned (and targeted) contacts per variant, and per assignment day."""
    sql = f"""
        SELECT a.variant_id, {_dialect()["day_a"]} AS day, COUNT(*),
               SUM(CASE WHEN a.targeted THEN 1 ELSE 0 END)
        FROM {Assignment._meta.db_table} a
        WHERE a.experiment_id = %s
        GROUP BY a.variant_id, day
    """  # noqa: S608 — fixed identifiers only
    out: dict[int, VariantAggregate] = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, [experiment.pk])
        for variant_id, day, count, targeted in cursor.fetchall():
            agg = out.setdefault(variant_id, VariantAggregate(variant_id=variant_id))
            agg.assigned += count
            agg.targeted += int(targeted or 0)
            agg.assigned_by_day[_day(day)] = agg.assigned_by_day.get(_day(day), 0) + count
    return out


def _primary_condition(experiment: Experiment) -> str:
    return {
        Metric.OPEN: "opened",
        Metric.CLICK: "clicked",
        Metric.CONVERSION: "converted",
        Metric.REVENUE: "converted",
    }[Metric(experiment.primary_metric)]


def event_aggregates(
    *,
    experiment: Experiment,
    campaign_id: int | None = None,
    until: datetime | None = None,
) -> dict[int, VariantAggregate]:
    """Per-variant event metrics, one grouped statement (see the module docstring).

    A contact counts once per metric (unique opens/clicks/conversions) and only for events at or
    after its assignment; conversions and revenue only within ``conversion_window_days``; opens
    flagged ``properties.machine_open`` are excluded. With ``campaign_id``, opens, clicks and
    complaints count only if the event carries that ``properties.campaign_id`` (the campaign's
    own messages); conversions, revenue and unsubscribes count whatever their source.
    ``until`` bounds the events read (for reproducible reports); default: all.
    """
    d = _dialect()
    amount_key = settings.CIBLE_PURCHASE_AMOUNT_PROPERTY
    amount_param = amount_key if connection.vendor == "postgresql" else f"$.{amount_key}"
    window = experiment.conversion_window_days
    campaign_filter = f"AND {d['campaign']}" if campaign_id is not None else ""
    campaign_params = [str(campaign_id)] if campaign_id is not None else []
    conversion = f"e.type = %s AND {d['in_window']}"
    flag = "MAX(CASE WHEN {cond} THEN 1 ELSE 0 END)"
    opened = flag.format(cond=f"e.type = %s AND NOT ({d['machine_open']}) {campaign_filter}")
    clicked = flag.format(cond=f"e.type IN (%s, %s, %s) {campaign_filter}")
    complained = flag.format(cond=f"e.type = %s {campaign_filter}")
    unsubscribed = flag.format(cond="e.type = %s")
    converted = flag.format(cond=conversion)
    revenue = f"SUM(CASE WHEN {conversion} THEN {d['amount']} ELSE 0 END)"
    primary = {
        "opened": f"e.type = %s AND NOT ({d['machine_open']}) {campaign_filter}",
        "clicked": f"e.type IN (%s, %s, %s) {campaign_filter}",
        "converted": conversion,
    }[_primary_condition(experiment)]
    primary_params = {
        "opened": [OPEN_EVENT, *campaign_params],
        "clicked": [*CLICK_EVENTS, *campaign_params],
        "converted": [experiment.conversion_event_type, window],
    }[_primary_condition(experiment)]
    until_filter = "AND e.occurred_at <= %s" if until is not None else ""
    sql = f"""
        WITH per_contact AS (
            SELECT a.variant_id AS variant_id,
                   {opened} AS opened,
                   {clicked} AS clicked,
                   {converted} AS converted,
                   {unsubscribed} AS unsubscribed,
                   {complained} AS complained,
                   {revenue} AS revenue,
                   MIN(CASE WHEN {primary} THEN e.occurred_at END) AS first_primary_at
            FROM {Assignment._meta.db_table} a
            JOIN {Event._meta.db_table} e ON e.contact_id = a.contact_id
            WHERE a.experiment_id = %s
              AND e.type IN (%s, %s, %s, %s, %s, %s, %s)
              AND e.occurred_at >= %s
              AND {d["after"]}
              {until_filter}
            GROUP BY a.variant_id, a.contact_id
        )
        SELECT variant_id, {d["day_first"]} AS day,
               SUM(opened), SUM(clicked), SUM(converted), SUM(unsubscribed), SUM(complained),
               SUM(revenue), SUM(revenue * revenue)
        FROM per_contact
        GROUP BY variant_id, day
    """  # noqa: S608 — fixed identifiers and constant fragments only
    params: list = [
        OPEN_EVENT,
        *campaign_params,
        *CLICK_EVENTS,
        *campaign_params,
        experiment.conversion_event_type,
        window,
        UNSUBSCRIBE_EVENT,
        COMPLAINT_EVENT,
        *campaign_params,
        experiment.conversion_event_type,
        window,
        amount_param,
        amount_param,
        *primary_params,
        experiment.pk,
        OPEN_EVENT,
        *CLICK_EVENTS,
        experiment.conversion_event_type,
        UNSUBSCRIBE_EVENT,
        COMPLAINT_EVENT,
        connection.ops.adapt_datetimefield_value(_earliest_assignment(experiment)),
    ]
    if until is not None:
        params.append(connection.ops.adapt_datetimefield_value(until))
    out: dict[int, VariantAggregate] = defaultdict(lambda: VariantAggregate(variant_id=0))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    for variant_id, day, opens, clicks, conv, unsub, compl, rev, rev2 in rows:
        agg = out[variant_id]
        agg.variant_id = variant_id
        agg.opens += int(opens or 0)
        agg.clicks += int(clicks or 0)
        agg.conversions += int(conv or 0)
        agg.unsubscribes += int(unsub or 0)
        agg.complaints += int(compl or 0)
        agg.revenue_sum += float(rev or 0)
        agg.revenue_sum_squares += float(rev2 or 0)
        if day is not None:
            agg.primary_by_day[_day(day)] = agg.primary_by_day.get(_day(day), 0) + _primary_count(
                experiment, opens, clicks, conv
            )
            agg.revenue_by_day[_day(day)] = agg.revenue_by_day.get(_day(day), 0.0) + float(rev or 0)
    return dict(out)


def _primary_count(experiment: Experiment, opens, clicks, conversions) -> int:
    key = _primary_condition(experiment)
    return int({"opened": opens, "clicked": clicks, "converted": conversions}[key] or 0)


def _earliest_assignment(experiment: Experiment) -> datetime:
    """Lower bound on event time, so the event index range starts at the experiment."""
    first = (
        Assignment.objects.filter(experiment=experiment)
        .order_by("assigned_at")
        .values_list("assigned_at", flat=True)
        .first()
    )
    return first or experiment.started_at or experiment.created_at


def experiment_aggregates(
    *, experiment: Experiment, until: datetime | None = None
) -> dict[int, VariantAggregate]:
    """All families merged per variant id (every variant present, zeros when nothing yet)."""
    campaign_id = getattr(experiment, "campaign_id", None)
    counts = assignment_counts(experiment=experiment)
    events = event_aggregates(experiment=experiment, campaign_id=campaign_id, until=until)
    delivered = delivery_counts(experiment=experiment)
    out: dict[int, VariantAggregate] = {}
    for variant in experiment.variants.all():
        agg = counts.get(variant.pk, VariantAggregate(variant_id=variant.pk))
        ev = events.get(variant.pk)
        if ev is not None:
            agg.opens, agg.clicks, agg.conversions = ev.opens, ev.clicks, ev.conversions
            agg.unsubscribes, agg.complaints = ev.unsubscribes, ev.complaints
            agg.revenue_sum, agg.revenue_sum_squares = ev.revenue_sum, ev.revenue_sum_squares
            agg.primary_by_day, agg.revenue_by_day = ev.primary_by_day, ev.revenue_by_day
        if delivered is not None:
            agg.delivered = delivered.get(variant.pk, 0)
        out[variant.pk] = agg
    return out


def delivery_counts(*, experiment: Experiment) -> dict[int, int] | None:
    """Delivered messages per variant id from activation's outbox; None when not available."""
    from experiments import integration

    return integration.delivered_per_variant(experiment)
