"""Campaign reports: what a campaign (all its runs) or one run did, read in SQL.

:func:`campaign_report` / :func:`run_report` return a :class:`CampaignReport`, built from five
set-based statements whatever the audience size:

1. the outbox rows of the runs grouped by (channel, variant, state, skip reason) — sent,
   failed, waiting, excluded now;
2. the events *linked* to the runs' messages, aggregated per (channel, variant) and overall —
   see below;
3. the clicks per URL (clicks, unique clickers);
4. the attributed conversions per (channel, variant) (``Attribution``: last message within the
   attribution window, revenue from the event's amount);
5. opens, clicks and conversions per hour (per day past three days) since the first send.

An event is linked to a message of the runs when:

- it carries the run in ``properties.run_id`` and the message in ``properties.message_id`` —
  the open pixel and the click redirect write both (source ``activation``);
- otherwise (a provider's ``<channel>_delivered`` / ``email_bounce`` / ``email_complaint``
  webhook, an ``unsubscribe`` event) it is the contact's, on the message's channel (any
  channel for ``unsubscribe``), at or after the message was sent and within
  ``ACTIVATION_ATTRIBUTION_WINDOW_HOURS``;
- consent withdrawals of the campaign's purpose recorded in the ledger (unsubscribe link,
  List-Unsubscribe, preference centre, SMS STOP) count as unsubscribes the same way.

Definitions (the numbers a marketer reads, see docs/campaigns.md): *audience* = contacts
snapshotted by the runs; *exclusions* per reason as decided at launch (``run.counts``, kept on
the run) and as the outbox says now (e.g. ``consent_withdrawn`` found at send time);
*delivered* = sent − bounced messages; *human opens* = contacts with an ``email_open`` not
flagged ``machine_open`` (Apple Mail Privacy Protection, security scanners), *machine opens*
= contacts with a flagged open, shown apart; clicks, unsubscribes and complaints count
contacts (unique), clicks also count every click. Per variant, sent / human opens / clicks
are the same numbers as the experiment's results page when the experiment has one run.

Raw SQL is built only from fixed identifiers and constant fragments; every value is a query
parameter. SQLite and PostgreSQL are supported.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection
from django.db.models import Count, Sum
from django.db.models.functions import TruncDay, TruncHour
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from activation.models import (
    Attribution,
    Campaign,
    CampaignRun,
    OutboxMessage,
    OutboxState,
    SkipReason,
)
from contacts.models import Event

OPEN_EVENT = "email_open"
CLICK_EVENTS = ("email_click", "sms_click", "push_click")
#: Provider feedback linked to a message by contact, channel and time (no message id).
FEEDBACK_EVENTS = (
    "email_delivered",
    "sms_delivered",
    "push_delivered",
    "email_bounce",
    "email_complaint",
    "unsubscribe",
)
#: Past this span since the first send, the chart counts per day instead of per hour.
HOURLY_SPAN = timedelta(hours=72)


@dataclass
class Funnel:
    """The counts of one slice (a channel and variant, or everything)."""

    channel: str = ""
    variant: str = ""
    sent: int = 0
    failed: int = 0
    waiting: int = 0
    excluded: int = 0
    bounced_hard: int = 0
    bounced_soft: int = 0
    delivery_reports: int = 0
    human_opens: int = 0
    machine_opens: int = 0
    clickers: int = 0
    clicks: int = 0
    unsubscribes: int = 0
    complaints: int = 0
    conversions: int = 0
    revenue: Decimal = Decimal("0.00")

    @property
    def bounced(self) -> int:
        return self.bounced_hard + self.bounced_soft

    @property
    def delivered(self) -> int:
        return max(self.sent - self.bounced, 0)

    def rate(self, count: int) -> float | None:
        """``count`` over delivered messages (None when nothing was delivered)."""
        return count / self.delivered if self.delivered else None


@dataclass
class Exclusion:
    reason: str
    label: str
    at_launch: int
    now: int


@dataclass
class LinkClicks:
    url: str
    clicks: int
    clickers: int


@dataclass
class CampaignReport:
    campaign: Campaign
    runs: list[CampaignRun]
    audience: int
    exclusions: list[Exclusion]
    total: Funnel
    breakdown: list[Funnel]
    links: list[LinkClicks]
    timeline_unit: str  # "hour" | "day"
    timeline: list[dict] = field(default_factory=list)  # {"at", "opens", "clicks", "conversions"}

    @property
    def run_ids(self) -> list[int]:
        return [run.pk for run in self.runs]


def run_report(run: CampaignRun, *, now: datetime | None = None) -> CampaignReport:
    """The report of one run (a dry run has only its audience and exclusions)."""
    return _report(run.campaign, [run], now=now or timezone.now())


def campaign_report(campaign: Campaign, *, now: datetime | None = None) -> CampaignReport:
    """The report of every real (not dry) run of ``campaign``."""
    runs = list(campaign.runs.filter(dry_run=False).order_by("created_at", "pk"))
    return _report(campaign, runs, now=now or timezone.now())


def _report(campaign: Campaign, runs: list[CampaignRun], *, now: datetime) -> CampaignReport:
    run_ids = [run.pk for run in runs]
    slices: dict[tuple[str, str], Funnel] = {}

    def slice_of(channel: str, variant: str) -> Funnel:
        return slices.setdefault((channel, variant), Funnel(channel=channel, variant=variant))

    total = Funnel()
    reasons_now: dict[str, int] = defaultdict(int)
    outbox = (
        OutboxMessage.objects.filter(run_id__in=run_ids)
        .order_by()
        .values_list("channel", "variant", "state", "skip_reason")
        .annotate(n=Count("id"))
    )
    for channel, variant, state, reason, n in outbox:
        for funnel in (slice_of(channel, variant), total):
            if state == OutboxState.SENT:
                funnel.sent += n
            elif state == OutboxState.FAILED:
                funnel.failed += n
            elif state in (OutboxState.QUEUED, OutboxState.DEFERRED, OutboxState.SENDING):
                funnel.waiting += n
            if state in (OutboxState.SKIPPED, OutboxState.CANCELLED):
                funnel.excluded += n
        if reason:
            reasons_now[reason] += n

    links: list[LinkClicks] = []
    timeline: dict[str, dict] = {}
    since = min((run.created_at for run in runs), default=now)
    unit = "hour"
    if run_ids:
        started = _first_sent(run_ids)
        unit = "hour" if started is None or now - started <= HOURLY_SPAN else "day"
        linked, params = _linked_events_sql(campaign=campaign, run_ids=run_ids, since=since)
        with connection.cursor() as cursor:
            cursor.execute(_report_sql(linked, unit), params)
            rows = cursor.fetchall()
        for part, key, variant, *values in rows:
            if part == 0:
                _fill(slice_of(key, variant), values)
            elif part == 1:
                _fill(total, values)
            elif part == 2:
                links.append(LinkClicks(url=key, clicks=int(values[0]), clickers=int(values[1])))
            else:
                timeline[key] = {"at": key, "opens": int(values[0]), "clicks": int(values[1])}
        links.sort(key=lambda link: (-link.clicks, link.url))
        trunc = TruncHour if unit == "hour" else TruncDay
        conversions = (
            Attribution.objects.filter(run_id__in=run_ids)
            .order_by()
            .values_list("message__channel", "variant")
            .annotate(n=Count("id"), revenue=Sum("value"))
        )
        for channel, variant, n, revenue in conversions:
            for funnel in (slice_of(channel, variant), total):
                funnel.conversions += n
                funnel.revenue += revenue or Decimal("0.00")
        per_bucket = (
            Attribution.objects.filter(run_id__in=run_ids)
            .annotate(bucket=trunc("event__occurred_at", tzinfo=UTC))
            .order_by()
            .values_list("bucket")
            .annotate(n=Count("id"))
        )
        for bucket, n in per_bucket:
            key = _bucket_key(bucket, unit)
            timeline.setdefault(key, {"at": key, "opens": 0, "clicks": 0})["conversions"] = n

    at_launch: dict[str, int] = defaultdict(int)
    for run in runs:
        for reason, n in (run.counts or {}).get("by_reason", {}).items():
            at_launch[reason] += int(n)
    labels = dict(SkipReason.choices)
    exclusions = [
        Exclusion(
            reason=reason,
            label=str(labels.get(reason, reason)),
            at_launch=at_launch.get(reason, 0),
            now=reasons_now.get(reason, 0),
        )
        for reason in [*SkipReason.values, *sorted(set(at_launch) - set(SkipReason.values))]
        if at_launch.get(reason) or reasons_now.get(reason)
    ]
    points = sorted(timeline.values(), key=lambda p: p["at"])
    for point in points:
        point.setdefault("conversions", 0)
    return CampaignReport(
        campaign=campaign,
        runs=runs,
        audience=sum(run.audience_size for run in runs),
        exclusions=exclusions,
        total=total,
        breakdown=[slices[key] for key in sorted(slices)],
        links=links,
        timeline_unit=unit,
        timeline=points,
    )


def _first_sent(run_ids: list[int]) -> datetime | None:
    return (
        OutboxMessage.objects.filter(run_id__in=run_ids, state=OutboxState.SENT)
        .order_by("sent_at")
        .values_list("sent_at", flat=True)
        .first()
    )


def _bucket_key(value: datetime, unit: str) -> str:
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:00") if unit == "hour" else value.strftime("%Y-%m-%d")


def _fill(funnel: Funnel, row) -> None:
    (
        funnel.bounced_hard,
        funnel.bounced_soft,
        funnel.delivery_reports,
        funnel.human_opens,
        funnel.machine_opens,
        funnel.clickers,
        funnel.clicks,
        funnel.unsubscribes,
        funnel.complaints,
    ) = (int(v or 0) for v in row)


# --- SQL -------------------------------------------------------------------------------------


def _dialect() -> dict[str, str]:
    """Fragments that differ between PostgreSQL and SQLite (fixed text, no user input)."""
    if connection.vendor == "postgresql":
        return {
            "run_id": "(e.properties->>'run_id')",
            # A bigint only when the text is one (a webhook's "abc" or 10**30 matches nothing),
            # so the join reads the outbox by primary key.
            "message_id": (
                "CASE WHEN e.properties->>'message_id' ~ '^[0-9]{1,18}$' "
                "THEN (e.properties->>'message_id')::bigint END"
            ),
            "machine": "(COALESCE(e.properties->>'machine_open', 'false') = 'true')",
            "url": "COALESCE(e.properties->>'url', '')",
            "bounce_type": "COALESCE(e.properties->>'bounce_type', '')",
            "in_window": "{t} >= m.sent_at AND {t} < m.sent_at + %s * interval '1 hour'",
            "true": "TRUE",
            "false": "FALSE",
            "hour": "to_char(l.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:00')",
            "day": "to_char(l.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
        }
    return {
        "run_id": "CAST(json_extract(e.properties, '$.run_id') AS TEXT)",
        "message_id": (
            "CASE WHEN json_type(e.properties, '$.message_id') = 'integer' "
            "THEN json_extract(e.properties, '$.message_id') END"
        ),
        "machine": "(COALESCE(json_extract(e.properties, '$.machine_open'), 0) IN (1, 'true'))",
        "url": "COALESCE(CAST(json_extract(e.properties, '$.url') AS TEXT), '')",
        "bounce_type": "COALESCE(CAST(json_extract(e.properties, '$.bounce_type') AS TEXT), '')",
        "in_window": (
            "julianday({t}) >= julianday(m.sent_at) AND julianday({t}) < julianday(m.sent_at) + %s"
        ),
        "true": "1",
        "false": "0",
        "hour": "strftime('%%Y-%%m-%%dT%%H:00', l.occurred_at)",
        "day": "strftime('%%Y-%%m-%%d', l.occurred_at)",
    }


def _in(values) -> str:
    return ", ".join(["%s"] * len(values))


def _linked_events_sql(
    *, campaign: Campaign, run_ids: list[int], since: datetime
) -> tuple[str, list]:
    """The events linked to the runs' messages (module docstring) as one ``UNION ALL``
    subquery with columns message_id, contact_id, channel, variant, kind, machine, url,
    bounce_type, occurred_at — and its parameters."""
    d = _dialect()
    e_table, m_table = Event._meta.db_table, OutboxMessage._meta.db_table
    from consent.models import ConsentEvent

    c_table = ConsentEvent._meta.db_table
    hours = settings.ACTIVATION_ATTRIBUTION_WINDOW_HOURS
    window = hours if connection.vendor == "postgresql" else hours / 24.0
    since_param = connection.ops.adapt_datetimefield_value(since)
    runs_in = _in(run_ids)
    tracked_types = (OPEN_EVENT, *CLICK_EVENTS)
    sql = f"""
        SELECT m.id AS message_id, m.contact_id AS contact_id, m.channel AS channel,
               m.variant AS variant, e.type AS kind, {d["machine"]} AS machine,
               {d["url"]} AS url, '' AS bounce_type, e.occurred_at AS occurred_at
        FROM {e_table} e
        JOIN {m_table} m ON m.id = {d["message_id"]}
        WHERE e.type IN ({_in(tracked_types)}) AND e.occurred_at >= %s
          AND {d["run_id"]} IN ({runs_in}) AND m.run_id IN ({runs_in})
        UNION ALL
        SELECT m.id, m.contact_id, m.channel, m.variant, e.type, {d["false"]}, '',
               {d["bounce_type"]}, e.occurred_at
        FROM {e_table} e
        JOIN {m_table} m ON m.contact_id = e.contact_id
        WHERE e.type IN ({_in(FEEDBACK_EVENTS)}) AND e.occurred_at >= %s
          AND {d["run_id"]} IS NULL
          AND m.run_id IN ({runs_in}) AND m.state = %s
          AND (e.type = %s OR e.type LIKE m.channel || '%%')
          AND {d["in_window"].format(t="e.occurred_at")}
        UNION ALL
        SELECT m.id, m.contact_id, m.channel, m.variant, %s, {d["false"]}, '', '',
               c.occurred_at
        FROM {c_table} c
        JOIN {m_table} m ON m.contact_id = c.contact_id
        WHERE c.granted = {d["false"]} AND c.purpose_id = %s AND c.occurred_at >= %s
          AND m.run_id IN ({runs_in}) AND m.state = %s
          AND {d["in_window"].format(t="c.occurred_at")}
    """  # noqa: S608 — fixed identifiers and constant fragments only
    run_texts = [str(pk) for pk in run_ids]
    params: list = [
        *tracked_types,
        since_param,
        *run_texts,
        *run_ids,
        *FEEDBACK_EVENTS,
        since_param,
        *run_ids,
        OutboxState.SENT.value,
        "unsubscribe",
        window,
        "unsubscribe",
        campaign.purpose_id,
        since_param,
        *run_ids,
        OutboxState.SENT.value,
        window,
    ]
    return sql, params


_FUNNEL_COLUMNS = """
    COUNT(DISTINCT CASE WHEN l.kind = 'email_bounce' AND l.bounce_type = 'hard'
                        THEN l.message_id END),
    COUNT(DISTINCT CASE WHEN l.kind = 'email_bounce' AND l.bounce_type <> 'hard'
                        THEN l.message_id END),
    COUNT(DISTINCT CASE WHEN l.kind LIKE '%%\\_delivered' ESCAPE '\\' THEN l.message_id END),
    COUNT(DISTINCT CASE WHEN l.kind = 'email_open' AND NOT l.machine THEN l.contact_id END),
    COUNT(DISTINCT CASE WHEN l.kind = 'email_open' AND l.machine THEN l.contact_id END),
    COUNT(DISTINCT CASE WHEN l.kind LIKE '%%\\_click' ESCAPE '\\' THEN l.contact_id END),
    SUM(CASE WHEN l.kind LIKE '%%\\_click' ESCAPE '\\' THEN 1 ELSE 0 END),
    COUNT(DISTINCT CASE WHEN l.kind = 'unsubscribe' THEN l.contact_id END),
    COUNT(DISTINCT CASE WHEN l.kind = 'email_complaint' THEN l.contact_id END)
"""


def _report_sql(linked: str, unit: str) -> str:
    """ONE statement over the linked events (a CTE read four times, computed once): rows
    ``(part, key, variant, values…)`` — part 0 per (channel, variant), 1 the total, 2 per
    clicked URL (clicks, clickers), 3 per time bucket (human opens, clicks)."""
    bucket = _dialect()[unit]
    click = "l.kind LIKE '%%\\_click' ESCAPE '\\'"
    zeros = ", 0" * 7
    return f"""
        WITH l AS ({linked})
        SELECT 0, l.channel, l.variant, {_FUNNEL_COLUMNS} FROM l GROUP BY l.channel, l.variant
        UNION ALL
        SELECT 1, '', '', {_FUNNEL_COLUMNS} FROM l
        UNION ALL
        SELECT 2, l.url, '', COUNT(*), COUNT(DISTINCT l.contact_id){zeros}
        FROM l WHERE {click} GROUP BY l.url
        UNION ALL
        SELECT 3, {bucket}, '',
               SUM(CASE WHEN l.kind = 'email_open' AND NOT l.machine THEN 1 ELSE 0 END),
               SUM(CASE WHEN {click} THEN 1 ELSE 0 END){zeros}
        FROM l WHERE l.kind IN ('email_open', 'email_click', 'sms_click', 'push_click')
        GROUP BY {bucket}
    """  # noqa: S608 — fixed identifiers and constant fragments only


# --- one message -----------------------------------------------------------------------------


@dataclass
class SentContent:
    """What a message said: rendered again from its template for its contact (the outbox
    keeps no copy), with tracking removed from the HTML. ``error`` when it cannot render."""

    to: str = ""
    subject: str = ""
    html: str = ""
    text: str = ""
    sms_body: str = ""
    push_title: str = ""
    push_body: str = ""
    push_url: str = ""
    error: str = ""


def message_sent_content(message: OutboxMessage) -> SentContent:
    """The content of ``message`` as the delivery renders it (variant, locale, STOP mention)."""
    from django.template import TemplateSyntaxError

    from activation.delivery import message_build
    from activation.tracking import tracking_removed
    from contacts.models import Contact
    from segments.models import ContactFeatures

    contact = Contact.objects.filter(pk=message.contact_id).first()
    if contact is None:
        return SentContent(error=str(_("The contact no longer exists (erased or merged).")))
    features = ContactFeatures.objects.filter(contact_id=contact.pk).first()
    copy = OutboxMessage.objects.select_related("run__campaign").get(pk=message.pk)
    try:
        out = message_build(
            message=copy, contact=contact, features=features, push_targets=[], versions={}
        )
    except (TemplateSyntaxError, ValueError) as exc:
        return SentContent(error=str(exc))
    payload = out.push_payload or {}
    return SentContent(
        to=out.to or (str(_("the contact's active push subscriptions")) if payload else ""),
        subject=out.subject,
        html=tracking_removed(out.html, message_id=message.pk) if out.html else "",
        text=out.text,
        sms_body=out.sms_body,
        push_title=payload.get("title", ""),
        push_body=payload.get("body", ""),
        push_url=payload.get("url", ""),
    )


def message_engagement(message: OutboxMessage) -> list[Event]:
    """The opens and clicks recorded for ``message`` (the contact's events naming it)."""
    return list(
        Event.objects.filter(
            contact_id=message.contact_id,
            type__in=(OPEN_EVENT, *CLICK_EVENTS),
            properties__message_id=message.pk,
        ).order_by("occurred_at", "pk")[:200]
    )
