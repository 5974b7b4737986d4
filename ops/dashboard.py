"""The home dashboard: what each role needs to know when opening the workspace.

Reads only, each a handful of aggregate statements (no Python loop over contacts, messages or
events), reusing the owning apps' own rules rather than restating them:

- :func:`audience_summary` — contacts, and per messaging channel those contactable now for the
  dashboard's purpose (``consent.selectors.contactable``, the rule activation sends by);
- :func:`send_summary` — messages sent in the last 7 and 30 days and, for each period and the
  one before it, delivery, human-open (machine opens counted apart), click, conversion,
  unsubscribe and complaint rates and the revenue attributed: one statement on the outbox, one
  on the events, one on the attributions, every period as a filtered aggregate;
- :func:`running_experiments` — each running test with the verdict its results page shows
  (``experiments.results.experiment_results``, outcomes as of their last refresh);
- :func:`upcoming_sends`, :func:`pending_approvals`, :func:`open_rights_requests`;
- :func:`system_health` — ``ops.health.readiness_report``, the same checks as ``/ready``;
- :func:`dashboard_cards` — the cards a user may see, in the order their role needs them;
  a card appears only for someone who may open the page it links to.

Rates are shares of the messages sent in the period: delivered = sent − bounced; opens and
clicks are unique per message (an event without a ``message_id`` counts once);
unsubscribes and complaints are unique per contact; conversions and revenue are the
attributions recorded in the period (``activation.services.conversions_attribute``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db.models import Count, Q, Sum
from django.db.models.fields.json import KT
from django.urls import reverse
from django.utils.translation import get_language, gettext_lazy
from django.utils.translation import gettext as _

from experiments.wording import is_finite, number, percent

if TYPE_CHECKING:
    from experiments.selectors import VariantAggregate

PERIODS = (7, 30)
RUNNING_TESTS_SHOWN = 5

OPEN_EVENT = "email_open"
CLICK_EVENTS = ("email_click", "sms_click", "push_click")
BOUNCE_EVENT = "email_bounce"
UNSUBSCRIBE_EVENT = "unsubscribe"
COMPLAINT_EVENT = "email_complaint"

RATE_LABELS = {
    "delivery": gettext_lazy("Delivered"),
    "human_open": gettext_lazy("Opened (people)"),
    "click": gettext_lazy("Clicked"),
    "conversion": gettext_lazy("Converted"),
    "unsubscribe": gettext_lazy("Unsubscribed"),
    "complaint": gettext_lazy("Complaints"),
}
#: Rates where a rise is bad news (the trend arrow turns red).
LOWER_IS_BETTER = {"unsubscribe", "complaint"}


# --- audience -------------------------------------------------------------------------------


def audience_summary(*, purpose_code: str | None = None) -> dict[str, Any]:
    """``{"contacts": n, "purpose": Purpose | None, "channels": [(code, label, contactable)]}``.

    Contactable = may be messaged now for the purpose on the channel (consent state, erasure,
    suppression list: ``consent.selectors.contactable``) and has an address or an active push
    subscription on it (``activation.selectors.address_missing``). One COUNT per channel.
    """
    from activation.selectors import address_missing
    from consent.models import MESSAGING_CHANNELS, ConsentChannel, Purpose
    from consent.selectors import contactable
    from contacts.models import Contact

    code = purpose_code or settings.CIBLE_DASHBOARD_PURPOSE
    purpose = Purpose.objects.filter(code=code).first()
    contacts = Contact.objects.filter(is_anonymous=False)
    channels = []
    if purpose is not None:
        applies = set(purpose.channels)
        for channel in MESSAGING_CHANNELS:
            if "any" not in applies and channel not in applies:
                continue
            reachable = contacts.exclude(address_missing(channel))
            size = contactable(reachable, purpose=purpose, channel=channel).count()
            channels.append((channel, ConsentChannel(channel).label, size))
    return {"contacts": contacts.count(), "purpose": purpose, "channels": channels}


# --- sends and their outcomes ---------------------------------------------------------------


@dataclass
class PeriodCounts:
    sent: int = 0
    bounced: int = 0
    human_opens: int = 0
    machine_opens: int = 0
    clicks: int = 0
    unsubscribes: int = 0
    complaints: int = 0
    conversions: int = 0
    revenue: float = 0.0

    @property
    def delivered(self) -> int:
        return max(self.sent - self.bounced, 0)

    def rate(self, metric: str) -> float:
        numerator = {
            "delivery": self.delivered,
            "human_open": self.human_opens,
            "click": self.clicks,
            "conversion": self.conversions,
            "unsubscribe": self.unsubscribes,
            "complaint": self.complaints,
        }[metric]
        return numerator / self.sent if self.sent else float("nan")


@dataclass
class PeriodSummary:
    days: int
    current: PeriodCounts
    previous: PeriodCounts
    rows: list[dict] = field(default_factory=list)


def _windows(now: datetime) -> dict[str, tuple[datetime, datetime]]:
    """``"7"``/``"7p"`` (the 7 days before), ``"30"``/``"30p"``: half-open [start, end)."""
    out = {}
    for days in PERIODS:
        span = timedelta(days=days)
        out[str(days)] = (now - span, now)
        out[f"{days}p"] = (now - 2 * span, now - span)
    return out


def _between(column: str, start: datetime, end: datetime) -> Q:
    return Q(**{f"{column}__gte": start, f"{column}__lt": end})


def period_counts(*, now: datetime) -> dict[str, PeriodCounts]:
    """Counts of every window of :func:`_windows` in three aggregate statements."""
    from activation.models import Attribution, OutboxMessage, OutboxState
    from contacts.models import Event

    windows = _windows(now)
    earliest = min(start for start, _end in windows.values())
    out = {key: PeriodCounts() for key in windows}

    sent = OutboxMessage.objects.filter(
        state=OutboxState.SENT, sent_at__gte=earliest, sent_at__lt=now
    ).aggregate(**{key: Count("pk", filter=_between("sent_at", *w)) for key, w in windows.items()})
    for key, value in sent.items():
        out[key].sent = value or 0

    by_message = KT("properties__message_id")
    no_message = Q(properties__message_id__isnull=True)
    human = Q(type=OPEN_EVENT) & (
        Q(properties__machine_open=False) | ~Q(properties__has_key="machine_open")
    )
    machine = Q(type=OPEN_EVENT, properties__machine_open=True)
    clicks = Q(type__in=CLICK_EVENTS)
    aggregates = {}
    for key, w in windows.items():
        during = _between("occurred_at", *w)
        for name, condition in (("human", human), ("machine", machine), ("click", clicks)):
            # Unique per message; an event naming no message counts once.
            aggregates[f"{key}_{name}_m"] = Count(
                by_message, distinct=True, filter=during & condition
            )
            aggregates[f"{key}_{name}_e"] = Count("pk", filter=during & condition & no_message)
        aggregates[f"{key}_bounce"] = Count("pk", filter=during & Q(type=BOUNCE_EVENT))
        aggregates[f"{key}_unsub"] = Count(
            "contact_id", distinct=True, filter=during & Q(type=UNSUBSCRIBE_EVENT)
        )
        aggregates[f"{key}_complaint"] = Count(
            "contact_id", distinct=True, filter=during & Q(type=COMPLAINT_EVENT)
        )
    types = [OPEN_EVENT, *CLICK_EVENTS, BOUNCE_EVENT, UNSUBSCRIBE_EVENT, COMPLAINT_EVENT]
    events = Event.objects.filter(
        type__in=types, occurred_at__gte=earliest, occurred_at__lt=now
    ).aggregate(**aggregates)
    for key in windows:
        counts = out[key]
        counts.human_opens = events[f"{key}_human_m"] + events[f"{key}_human_e"]
        counts.machine_opens = events[f"{key}_machine_m"] + events[f"{key}_machine_e"]
        counts.clicks = events[f"{key}_click_m"] + events[f"{key}_click_e"]
        counts.bounced = events[f"{key}_bounce"]
        counts.unsubscribes = events[f"{key}_unsub"]
        counts.complaints = events[f"{key}_complaint"]

    attributed = {}
    for key, w in windows.items():
        during = _between("attributed_at", *w)
        attributed[f"{key}_n"] = Count("pk", filter=during)
        attributed[f"{key}_value"] = Sum("value", filter=during)
    conversions = Attribution.objects.filter(
        attributed_at__gte=earliest, attributed_at__lt=now
    ).aggregate(**attributed)
    for key in windows:
        out[key].conversions = conversions[f"{key}_n"] or 0
        out[key].revenue = float(conversions[f"{key}_value"] or 0)
    return out


def _trend(metric: str, current: float, previous: float) -> dict[str, str]:
    """The change in percentage points and whether it is good news."""
    if not (is_finite(current) and is_finite(previous)):
        return {"text": "—", "tone": ""}
    points = (current - previous) * 100
    if round(points, 1) == 0:
        return {"text": _("stable"), "tone": ""}
    better = points < 0 if metric in LOWER_IS_BETTER else points > 0
    sign = "+" if points > 0 else "−"
    return {
        "text": _("%(sign)s%(points)s pt") % {"sign": sign, "points": number(abs(points), 1)},
        "tone": "good" if better else "bad",
    }


def _count_trend(current: float, previous: float) -> dict[str, str]:
    if not previous:
        return {"text": "—", "tone": ""}
    change = (current - previous) / previous
    if round(change, 3) == 0:
        return {"text": _("stable"), "tone": ""}
    sign = "+" if change > 0 else "−"
    return {"text": f"{sign}{percent(abs(change))}", "tone": ""}


def send_summary(
    *, now: datetime, counts: dict[str, PeriodCounts] | None = None
) -> list[PeriodSummary]:
    """Per period (7 and 30 days): counts (``period_counts`` unless given), and display rows
    (label, value, count, trend)."""
    counts = counts if counts is not None else period_counts(now=now)
    summaries = []
    for days in PERIODS:
        current, previous = counts[str(days)], counts[f"{days}p"]
        rows = [
            {
                "label": _("Messages sent"),
                "value": number(current.sent),
                "count": "",
                "trend": _count_trend(current.sent, previous.sent),
            }
        ]
        numerators = {
            "delivery": current.delivered,
            "human_open": current.human_opens,
            "click": current.clicks,
            "conversion": current.conversions,
            "unsubscribe": current.unsubscribes,
            "complaint": current.complaints,
        }
        for metric, label in RATE_LABELS.items():
            rows.append(
                {
                    "label": str(label),
                    "value": percent(current.rate(metric)),
                    "count": number(numerators[metric]),
                    "trend": _trend(metric, current.rate(metric), previous.rate(metric)),
                }
            )
        rows.append(
            {
                "label": _("Machine opens (not counted)"),
                "value": number(current.machine_opens),
                "count": "",
                "trend": {"text": "", "tone": ""},
            }
        )
        rows.append(
            {
                "label": _("Revenue attributed"),
                "value": f"{number(current.revenue, 2)} {settings.CIBLE_CURRENCY_SYMBOL}",
                "count": "",
                "trend": _count_trend(current.revenue, previous.revenue),
            }
        )
        summaries.append(PeriodSummary(days=days, current=current, previous=previous, rows=rows))
    return summaries


# --- lists ----------------------------------------------------------------------------------


def _running_tests(limit: int) -> list:
    from experiments.models import Experiment, ExperimentStatus

    running = Experiment.objects.filter(status=ExperimentStatus.RUNNING)
    return list(running.order_by("-started_at", "-pk")[:limit])


def running_experiment_aggregates(
    *, limit: int = RUNNING_TESTS_SHOWN
) -> dict[int, dict[int, VariantAggregate]]:
    """The variant counts of the running tests the card shows (``experiment_aggregates``: one
    grouped scan of each test's assignments, ~1 s for a test over 10M contacts), by test."""
    from experiments.selectors import experiment_aggregates

    return {e.pk: experiment_aggregates(experiment=e) for e in _running_tests(limit)}


def running_experiments(*, limit: int = RUNNING_TESTS_SHOWN) -> tuple[list[dict[str, Any]], Any]:
    """Running tests, newest first, each with the first sentence of its results page's verdict
    (outcomes as of their last refresh; the results page refreshes them when opened), and when
    their assignments were counted: beat counts them ahead with the other cards
    (``dashboard_counts_refresh``); a test started since is counted by the visit."""
    from experiments.results import experiment_results

    counted, computed_at = _cached("experiments", running_experiment_aggregates)
    rows = []
    for experiment in _running_tests(limit):
        results = experiment_results(
            experiment=experiment, refresh=False, aggregates=counted.get(experiment.pk)
        )
        rows.append(
            {
                "name": experiment.name,
                "assigned": number(results.total_assigned),
                "verdict": results.headline[0] if results.headline else "—",
                "url": reverse("experiments:results", args=[experiment.pk]),
            }
        )
    return rows, computed_at


def upcoming_sends(*, now: datetime, days: int = 7, limit: int = 5) -> list[dict[str, Any]]:
    """The next runs of active schedules within ``days`` (no audience counts: the calendar
    page has them)."""
    from activation.journeys.models import CampaignSchedule, ScheduleKind, ScheduleState
    from activation.journeys.selectors import schedule_occurrences
    from activation.models import CampaignStatus

    schedules = CampaignSchedule.objects.filter(
        kind__in=[ScheduleKind.ONE_OFF, ScheduleKind.RECURRING],
        state=ScheduleState.ACTIVE,
        campaign__status__in=[CampaignStatus.ACTIVE, CampaignStatus.DRAFT],
    ).select_related("campaign", "periodic_task__crontab")
    entries = []
    for schedule in schedules:
        for at in schedule_occurrences(schedule, start=now, end=now + timedelta(days=days)):
            entries.append((at, schedule.campaign))
    entries.sort(key=lambda e: (e[0], e[1].name))
    return [
        {"at": at, "campaign": campaign.name, "channel": campaign.get_channel_display()}
        for at, campaign in entries[:limit]
    ]


def pending_approvals(*, limit: int = 5) -> tuple[int, list[dict[str, Any]]]:
    from activation.journeys.models import CampaignApproval

    pending = CampaignApproval.objects.filter(status=CampaignApproval.Status.PENDING)
    rows = [
        {
            "campaign": approval.campaign.name,
            "requested_at": approval.requested_at,
            "eligible": number(approval.eligible),
            "url": reverse("admin:journeys_campaignapproval_change", args=[approval.pk]),
        }
        for approval in pending.select_related("campaign").order_by("requested_at")[:limit]
    ]
    return pending.count(), rows


def open_rights_requests(*, now: datetime, limit: int = 8) -> tuple[int, int, list[dict]]:
    """``(open, overdue, rows)``: requests not completed, soonest due first."""
    from consent.models import RightsRequest

    pending = RightsRequest.objects.filter(completed_at__isnull=True)
    totals = pending.aggregate(open=Count("pk"), overdue=Count("pk", filter=Q(due_at__lt=now)))
    rows = [
        {
            "kind": request.get_kind_display(),
            "requester": request.requester,
            "due_at": request.due_at,
            "overdue": request.due_at < now,
            "url": reverse("admin:consent_rightsrequest_change", args=[request.pk]),
        }
        for request in pending.order_by("due_at", "pk")[:limit]
    ]
    return totals["open"], totals["overdue"], rows


def system_health(*, now: datetime) -> dict[str, Any]:
    """The readiness checks (``/ready``) as rows a person reads: name, ok, detail."""
    from ops.health import readiness_report

    report = readiness_report(now=now)
    labels = {
        "database": _("Database"),
        "broker": _("Message broker"),
        "cache": _("Cache"),
        "beat": _("Scheduler (beat)"),
        "workers": _("Workers"),
        "outbox": _("Sending queue"),
        "providers": _("Providers"),
    }
    rows = []
    for name, check in report["checks"].items():
        detail = ""
        if name == "beat" and check.get("age_seconds") is not None:
            detail = _("last seen %(seconds)s s ago") % {"seconds": number(check["age_seconds"])}
        elif name == "workers" and "queues" in check:
            down = [q for q, state in check["queues"].items() if not state["ok"]]
            detail = (
                _("no recent heartbeat: %(queues)s") % {"queues": ", ".join(down)} if down else ""
            )
        elif not check.get("ok") and check.get("error"):
            detail = check["error"]
        rows.append({"name": labels.get(name, name), "ok": bool(check.get("ok")), "detail": detail})
    return {"ready": report["ready"], "rows": rows}


# --- cards per role ---------------------------------------------------------------------------


def _cached(key: str, compute):
    """``compute()``, kept ``CIBLE_DASHBOARD_CACHE_SECONDS`` in the shared cache with the time
    it was computed: the audience and send counts scan the contacts and the events of the last
    60 days, the running tests' counts their assignments, too much to redo on every visit of
    the home page (benchmarks/bench_pages.py). Beat recounts them ahead (``dashboard_counts_refresh``), so a visit finds them counted; a
    visit counts itself only when nothing is cached (no beat, a cold cache)."""
    from django.core.cache import cache
    from django.utils import timezone

    seconds = settings.CIBLE_DASHBOARD_CACHE_SECONDS
    if seconds <= 0:
        return compute(), timezone.now()
    key = f"ops:dashboard:{key}"
    hit = cache.get(key)
    if hit is None:
        hit = (compute(), timezone.now())
        cache.set(key, hit, seconds)
    return hit


def dashboard_counts_refresh(*, now: datetime | None = None) -> dict[str, float]:
    """Count the dashboard's audience, send and running-test cards now and put them in the
    cache (the beat task ``ops.tasks.refresh_dashboard_counts``), kept until the next refresh
    is due plus ``CIBLE_DASHBOARD_CACHE_SECONDS``: at 10M contacts counting them takes longer
    than a visitor waits. Returns the seconds each count took."""
    import time

    from django.core.cache import cache
    from django.utils import timezone

    now = now or timezone.now()
    keep = settings.CIBLE_DASHBOARD_CACHE_SECONDS + settings.CIBLE_DASHBOARD_REFRESH_SECONDS
    took: dict[str, float] = {}
    for key, compute in (
        ("audience", audience_summary),
        ("periods", lambda: period_counts(now=now)),
        ("experiments", running_experiment_aggregates),
    ):
        started = time.perf_counter()
        value = compute()
        cache.set(f"ops:dashboard:{key}", (value, timezone.now()), keep)
        took[key] = time.perf_counter() - started
    return took


def dashboard_cards(*, user, now: datetime) -> list[dict[str, Any]]:
    """The cards ``user`` may see, each ``{"key", "title", "link", "data"}``, in the order
    their role needs them (someone who carries out rights requests sees those first)."""
    cards: list[dict[str, Any]] = []
    may = user.has_perm

    if may("contacts.view_contact"):
        audience, computed_at = _cached("audience", audience_summary)
        total = audience["contacts"]
        purpose = audience["purpose"]
        cards.append(
            {
                "key": "audience",
                "title": _("Audience"),
                "link": reverse("admin:contacts_contact_changelist"),
                "link_text": _("See the contacts"),
                "computed_at": computed_at,
                "data": {
                    "contacts_text": number(total),
                    "purpose": purpose,
                    "purpose_name": purpose.name(get_language() or "fr") if purpose else "",
                    "rows": [
                        {
                            "channel": channel,
                            "label": str(label),
                            "size": number(size),
                            "share": percent(size / total if total else float("nan")),
                        }
                        for channel, label, size in audience["channels"]
                    ],
                },
            }
        )
    if may("activation.view_campaignrun"):
        counts, computed_at = _cached("periods", lambda: period_counts(now=now))
        periods = send_summary(now=now, counts=counts)
        cards.append(
            {
                "key": "sends",
                "title": _("Sends and outcomes"),
                "link": reverse("admin:activation_campaignrun_changelist"),
                "link_text": _("See the campaign runs"),
                "computed_at": computed_at,
                "data": periods,
                # One table row per measure, one column pair per period.
                "data_rows": [
                    {"label": row["label"], "cells": [p.rows[i] for p in periods]}
                    for i, row in enumerate(periods[0].rows)
                ],
            }
        )
    if may("experiments.view_experiment"):
        tests, computed_at = running_experiments()
        cards.append(
            {
                "key": "experiments",
                "title": _("Running A/B tests"),
                "link": reverse("admin:experiments_experiment_changelist"),
                "link_text": _("See the A/B tests"),
                "computed_at": computed_at,
                "data": tests,
            }
        )
    if may("journeys.view_campaignschedule"):
        cards.append(
            {
                "key": "upcoming",
                "title": _("Next scheduled sends"),
                "link": reverse("admin:journeys_calendar"),
                "link_text": _("Open the calendar"),
                "data": upcoming_sends(now=now),
            }
        )
    if may("journeys.view_campaignapproval"):
        total, rows = pending_approvals()
        cards.append(
            {
                "key": "approvals",
                "title": _("Campaigns awaiting approval"),
                "link": reverse("admin:journeys_campaignapproval_changelist")
                + "?status__exact=pending",
                "link_text": _("Review and approve"),
                "data": {"total": total, "total_text": number(total), "rows": rows},
            }
        )
    if may("consent.view_rightsrequest"):
        total, overdue, rows = open_rights_requests(now=now)
        card = {
            "key": "rights",
            "title": _("Open rights requests"),
            "link": reverse("admin:consent_rightsrequest_changelist"),
            "link_text": _("See the rights requests"),
            "data": {
                "total": total,
                "total_text": number(total),
                "overdue": overdue,
                "rows": rows,
            },
        }
        if may("consent.carry_out_rightsrequest"):
            cards.insert(0, card)
        else:
            cards.append(card)
    if may("ops.view_workerheartbeat"):
        cards.append(
            {
                "key": "health",
                "title": _("Workers and scheduler"),
                "link": reverse("admin:ops_workerheartbeat_changelist"),
                "link_text": _("See the worker heartbeats"),
                "data": system_health(now=now),
            }
        )
    return cards


def dashboard_callback(request, context: dict) -> dict:
    """unfold's ``DASHBOARD_CALLBACK``: the cards of the person signed in."""
    from django.utils import timezone

    context["cards"] = dashboard_cards(user=request.user, now=timezone.now())
    return context
