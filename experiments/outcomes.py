"""Outcomes of each assignment, computed from contacts' events in one set-based statement.

For every assigned contact with events after its assignment, the refresh writes on its
``Assignment`` row: the first human open (``properties.machine_open`` excluded), the first
click (any channel), the first conversion within ``conversion_window_days``, the first
unsubscribe and complaint, and the revenue of conversions in the window. With a campaign,
opens, clicks and complaints count only if the event carries that ``properties.campaign_id``.

Values are *recomputed* from the events, never accumulated, so a refresh can run any number of
times, concurrently, or after a crash, without counting anything twice. Three scopes:

- incremental (default): contacts with events whose ID is above the experiment's watermark
  (``outcomes_event_id``); cheap when nothing new arrived — the results page runs it first;
- ``contact_ids``: those contacts, reset first (used after a contact merge);
- ``full``: every assignment (beat, hourly), which also catches events committed late.

The results then read the rows with one grouped scan (``selectors.variant_aggregates``).
Raw SQL is built only from fixed identifiers and constant fragments; values are parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from contacts.models import Event
from experiments.models import Assignment, Experiment

OPEN_EVENT = "email_open"
#: Clicks of every channel (activation records ``<channel>_click``).
CLICK_EVENTS = ("email_click", "sms_click", "push_click")
UNSUBSCRIBE_EVENT = "unsubscribe"
COMPLAINT_EVENT = "email_complaint"


def _dialect() -> dict[str, str]:
    """SQL fragments that differ between PostgreSQL and SQLite (fixed text, no user input)."""
    if connection.vendor == "postgresql":
        return {
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
        "after": "julianday(e.occurred_at) >= julianday(a.assigned_at)",
        "in_window": "julianday(e.occurred_at) < julianday(a.assigned_at) + %s",
        "machine_open": "COALESCE(json_extract(e.properties, '$.machine_open'), 0) IN (1, 'true')",
        "amount": (
            "CASE WHEN json_type(e.properties, %s) IN ('integer', 'real') "
            "THEN json_extract(e.properties, %s) ELSE 0 END"
        ),
        "campaign": "CAST(json_extract(e.properties, '$.campaign_id') AS TEXT) = %s",
    }


def _refresh_statement(experiment: Experiment, *, scope_sql: str) -> tuple[str, list]:
    d = _dialect()
    campaign_id = experiment.campaign_id
    campaign = f"AND {d['campaign']}" if campaign_id is not None else ""
    campaign_params = [str(campaign_id)] if campaign_id is not None else []
    amount_key = settings.CIBLE_PURCHASE_AMOUNT_PROPERTY
    amount_param = amount_key if connection.vendor == "postgresql" else f"$.{amount_key}"
    window = experiment.conversion_window_days
    conversion = f"e.type = %s AND {d['in_window']}"
    a_table, e_table = Assignment._meta.db_table, Event._meta.db_table
    types = [OPEN_EVENT, *CLICK_EVENTS, experiment.conversion_event_type]
    types += [UNSUBSCRIBE_EVENT, COMPLAINT_EVENT]
    sql = f"""
        WITH per_contact AS (
            SELECT a.id AS assignment_id,
                   MIN(CASE WHEN e.type = %s AND NOT ({d["machine_open"]}) {campaign}
                       THEN e.occurred_at END) AS first_open_at,
                   MIN(CASE WHEN e.type IN (%s, %s, %s) {campaign}
                       THEN e.occurred_at END) AS first_click_at,
                   MIN(CASE WHEN {conversion} THEN e.occurred_at END) AS first_conversion_at,
                   MIN(CASE WHEN e.type = %s THEN e.occurred_at END) AS unsubscribed_at,
                   MIN(CASE WHEN e.type = %s {campaign}
                       THEN e.occurred_at END) AS complained_at,
                   SUM(CASE WHEN {conversion} THEN {d["amount"]} ELSE 0 END) AS revenue
            FROM {a_table} a
            JOIN {e_table} e ON e.contact_id = a.contact_id
            WHERE a.experiment_id = %s
              AND e.type IN (%s, %s, %s, %s, %s, %s, %s)
              AND e.occurred_at >= %s
              AND {d["after"]}
              {scope_sql}
            GROUP BY a.id
        )
        UPDATE {a_table}
        SET first_open_at = p.first_open_at,
            first_click_at = p.first_click_at,
            first_conversion_at = p.first_conversion_at,
            unsubscribed_at = p.unsubscribed_at,
            complained_at = p.complained_at,
            revenue = COALESCE(p.revenue, 0)
        FROM per_contact p
        WHERE {a_table}.id = p.assignment_id
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
        experiment.pk,
        *types,
        connection.ops.adapt_datetimefield_value(_earliest_assignment(experiment)),
    ]
    return sql, params


def _earliest_assignment(experiment: Experiment) -> datetime:
    """Lower bound on event time, so the event index range starts at the experiment."""
    first = (
        Assignment.objects.filter(experiment=experiment)
        .order_by("assigned_at")
        .values_list("assigned_at", flat=True)
        .first()
    )
    return first or experiment.started_at or experiment.created_at


def _types(experiment: Experiment) -> list[str]:
    return [
        OPEN_EVENT,
        *CLICK_EVENTS,
        experiment.conversion_event_type,
        UNSUBSCRIBE_EVENT,
        COMPLAINT_EVENT,
    ]


def outcomes_refresh(
    *,
    experiment: Experiment,
    contact_ids: Sequence[int] | None = None,
    full: bool = False,
    now: datetime | None = None,
) -> int:
    """Recompute the outcomes of the experiment's assignments (see the module docstring).

    Returns the number of assignment rows written. Advances the experiment's event watermark
    to the highest event ID seen when the refresh started (incremental and full scopes).
    """
    now = now or timezone.now()
    with transaction.atomic():
        high = Event.objects.aggregate(m=Max("pk"))["m"] or 0
        low = experiment.outcomes_event_id
        if contact_ids is not None:
            ids = [int(i) for i in contact_ids]
            if not ids:
                return 0
            Assignment.objects.filter(experiment=experiment, contact_id__in=ids).update(
                first_open_at=None,
                first_click_at=None,
                first_conversion_at=None,
                unsubscribed_at=None,
                complained_at=None,
                revenue=0.0,
            )
            scope = f"AND a.contact_id IN ({', '.join(['%s'] * len(ids))})"
            scope_params: list = ids
        elif full:
            scope, scope_params = "", []
        else:
            if high <= low:
                return 0
            types = _types(experiment)
            scope = (
                f"AND a.contact_id IN (SELECT n.contact_id FROM {Event._meta.db_table} n "  # noqa: S608
                f"WHERE n.id > %s AND n.id <= %s AND n.type IN ({', '.join(['%s'] * len(types))}))"
            )
            scope_params = [low, high, *types]
        sql, params = _refresh_statement(experiment, scope_sql=scope)
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                # The per-contact aggregate of a large experiment: hash it in memory.
                cursor.execute("SET LOCAL work_mem = '128MB'")
                cursor.execute("SET LOCAL jit = off")
            cursor.execute(sql, params + scope_params)
            written = cursor.rowcount
        if contact_ids is None:
            Experiment.objects.filter(pk=experiment.pk, outcomes_event_id__lt=high).update(
                outcomes_event_id=high, outcomes_refreshed_at=now
            )
            experiment.outcomes_event_id = max(low, high)
            experiment.outcomes_refreshed_at = now
    return max(written, 0)
