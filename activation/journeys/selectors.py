"""Reads: when schedules fire (crontab occurrences), the calendar of the next days, the
per-step funnel of a workflow, the audience size a launch would have."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db.models import Count, Q

from activation.journeys.models import (
    CampaignSchedule,
    EnrollmentState,
    ScheduleKind,
    ScheduleState,
    StepKind,
    Workflow,
    WorkflowEnrollment,
)
from activation.models import Campaign, CampaignStatus, OutboxMessage
from activation.selectors import campaign_audience

MAX_OCCURRENCES = 500


def schedule_crontab(schedule: CampaignSchedule):
    """Celery's crontab of a recurring schedule, read from its beat row when there is one
    (an edit in the django-celery-beat admin wins) else from the schedule's own fields."""
    from celery.schedules import crontab

    source = schedule.periodic_task.crontab if schedule.periodic_task_id else None
    if source is not None:
        return crontab(
            minute=source.minute,
            hour=source.hour,
            day_of_week=source.day_of_week,
            day_of_month=source.day_of_month,
            month_of_year=source.month_of_year,
        ), ZoneInfo(str(source.timezone))
    return crontab(
        minute=schedule.cron_minute,
        hour=schedule.cron_hour,
        day_of_week=schedule.cron_day_of_week,
        day_of_month=schedule.cron_day_of_month,
        month_of_year=schedule.cron_month_of_year,
    ), ZoneInfo(schedule.timezone)


def crontab_occurrences(cron, zone: ZoneInfo, *, start: datetime, end: datetime) -> list[datetime]:
    """UTC instants in ``[start, end)`` at which ``cron`` (celery semantics: day of month AND
    day of week must match) fires, read in ``zone``. At most ``MAX_OCCURRENCES``."""
    found: list[datetime] = []
    day: date = start.astimezone(zone).date() - timedelta(days=1)
    last: date = end.astimezone(zone).date() + timedelta(days=1)
    hours, minutes = sorted(cron.hour), sorted(cron.minute)
    while day <= last and len(found) < MAX_OCCURRENCES:
        if (
            day.month in cron.month_of_year
            and day.day in cron.day_of_month
            and day.isoweekday() % 7 in cron.day_of_week
        ):
            for hour in hours:
                for minute in minutes:
                    at = datetime.combine(day, time(hour, minute), tzinfo=zone).astimezone(UTC)
                    if start <= at < end:
                        found.append(at)
        day += timedelta(days=1)
    return sorted(set(found))[:MAX_OCCURRENCES]


def schedule_occurrences(
    schedule: CampaignSchedule, *, start: datetime, end: datetime
) -> list[datetime]:
    """When ``schedule`` fires in ``[start, end)`` (UTC instants); triggered and manual
    schedules have no occurrences."""
    if schedule.kind == ScheduleKind.ONE_OFF:
        return [schedule.run_at] if schedule.run_at and start <= schedule.run_at < end else []
    if schedule.kind == ScheduleKind.RECURRING:
        cron, zone = schedule_crontab(schedule)
        return crontab_occurrences(cron, zone, start=start, end=end)
    return []


def last_occurrence(schedule: CampaignSchedule, *, now: datetime, window: timedelta):
    """The latest occurrence in ``(now − window, now]``, or None."""
    found = schedule_occurrences(schedule, start=now - window, end=now + timedelta(seconds=1))
    return found[-1] if found else None


def audience_size(campaign: Campaign) -> int:
    """How many contacts a launch of ``campaign`` would consider now (before consent and caps)."""
    return campaign_audience(campaign).count()


@dataclass
class CalendarEntry:
    at: datetime
    local: datetime
    campaign: Campaign
    schedule: CampaignSchedule
    audience: int
    collisions: list[str] = field(default_factory=list)


@dataclass
class CalendarDay:
    day: date
    entries: list[CalendarEntry]

    @property
    def channels_colliding(self) -> bool:
        return any(entry.collisions for entry in self.entries)


def calendar(*, now: datetime, days: int = 30, zone: ZoneInfo | None = None) -> list[CalendarDay]:
    """Upcoming runs of active one-off and recurring schedules in the next ``days`` days,
    grouped by day in ``zone``, with each campaign's current audience size (one COUNT per
    campaign) and, per entry, the other campaigns of the same channel the same day whose
    audiences overlap (one COUNT per such pair) — the collisions frequency caps will arbitrate."""
    zone = zone or ZoneInfo("UTC")
    end = now + timedelta(days=days)
    schedules = (
        CampaignSchedule.objects.filter(
            kind__in=[ScheduleKind.ONE_OFF, ScheduleKind.RECURRING],
            state=ScheduleState.ACTIVE,
            campaign__status__in=[CampaignStatus.ACTIVE, CampaignStatus.DRAFT],
        )
        .select_related("campaign", "periodic_task__crontab")
        .order_by("pk")
    )
    sizes: dict[int, int] = {}
    by_day: dict[date, list[CalendarEntry]] = defaultdict(list)
    for schedule in schedules:
        campaign = schedule.campaign
        for at in schedule_occurrences(schedule, start=now, end=end):
            if campaign.pk not in sizes:
                sizes[campaign.pk] = audience_size(campaign)
            local = at.astimezone(zone)
            by_day[local.date()].append(
                CalendarEntry(
                    at=at,
                    local=local,
                    campaign=campaign,
                    schedule=schedule,
                    audience=sizes[campaign.pk],
                )
            )
    overlaps: dict[tuple[int, int], int] = {}
    for entries in by_day.values():
        for entry in entries:
            for other in entries:
                if other.campaign.pk == entry.campaign.pk:
                    continue
                if other.campaign.channel != entry.campaign.channel:
                    continue
                key = tuple(sorted((entry.campaign.pk, other.campaign.pk)))
                if key not in overlaps:
                    overlaps[key] = (
                        campaign_audience(entry.campaign)
                        .filter(pk__in=campaign_audience(other.campaign).values("pk"))
                        .count()
                    )
                if overlaps[key]:
                    entry.collisions.append(f"{other.campaign.name} ({overlaps[key]})")
    return [
        CalendarDay(day=d, entries=sorted(by_day[d], key=lambda e: (e.at, e.campaign.name)))
        for d in sorted(by_day)
    ]


@dataclass
class FunnelRow:
    position: int
    label: str
    kind: str
    waiting: int = 0
    passed: int = 0
    sent: int = 0
    skipped: int = 0
    opened: int = 0
    clicked: int = 0


def workflow_funnel(workflow: Workflow) -> dict:
    """Per step: contacts waiting there now, contacts who went past it, and for send steps
    the outbox rows by outcome and unique openers/clickers. Plus totals by enrollment state
    and exit reason. A fixed number of GROUP BY queries, whatever the number of contacts."""
    from contacts.models import Event

    steps = list(workflow.steps.order_by("position"))
    enrollments = WorkflowEnrollment.objects.filter(workflow=workflow)
    waiting = {
        row["position"]: row["n"]
        for row in enrollments.filter(state=EnrollmentState.ACTIVE)
        .order_by()
        .values("position")
        .annotate(n=Count("id"))
    }
    states = {
        (row["state"], row["exit_reason"]): row["n"]
        for row in enrollments.order_by().values("state", "exit_reason").annotate(n=Count("id"))
    }
    run_ids = [s.run_id for s in steps if s.run_id]
    outbox: dict[tuple[int, str], int] = defaultdict(int)
    for row in (
        OutboxMessage.objects.filter(run_id__in=run_ids)
        .order_by()
        .values("run_id", "state")
        .annotate(n=Count("id"))
    ):
        outbox[(row["run_id"], row["state"])] += row["n"]
    engagement: dict[tuple[int, str], int] = {}
    if run_ids:
        for row in (
            Event.objects.filter(
                Q(type="email_open", properties__machine_open=False)
                | Q(type__in=["email_click", "sms_click", "push_click"]),
                source="activation",
                properties__run_id__in=run_ids,
            )
            .order_by()
            .values("properties__run_id", "type")
            .annotate(n=Count("contact_id", distinct=True))
        ):
            kind = "opened" if row["type"] == "email_open" else "clicked"
            key = (int(row["properties__run_id"]), kind)
            engagement[key] = engagement.get(key, 0) + row["n"]
    rows = [FunnelRow(position=0, label="", kind="entry", waiting=waiting.get(0, 0))]
    for step in steps:
        row = FunnelRow(
            position=step.position,
            label=str(step),
            kind=step.kind,
            waiting=waiting.get(step.position, 0),
        )
        if step.kind == StepKind.SEND and step.run_id:
            row.sent = outbox[(step.run_id, "sent")]
            row.skipped = outbox[(step.run_id, "skipped")]
            row.passed = sum(v for (run, _s), v in outbox.items() if run == step.run_id)
            row.opened = engagement.get((step.run_id, "opened"), 0)
            row.clicked = engagement.get((step.run_id, "clicked"), 0)
        rows.append(row)
    return {"steps": rows, "states": states, "total": sum(states.values())}
