"""Services of campaign schedules, workflows and approvals (everything that writes or decides).

Public entry points (keyword-only):

- ``schedule_save(schedule=…, now=…)``: validate, store, and keep the django-celery-beat row
  (``PeriodicTask`` on a ``CrontabSchedule`` or a one-off ``ClockedSchedule``) in step.
- ``schedule_fire(schedule=…, now=…)`` (beat task) and ``campaign_launch_now(campaign=…,
  now=…, user=…)``: launch the occurrence due now, once (``ScheduledOccurrence`` is unique per
  slot): a single-message campaign gets an activation run, a workflow campaign enrols its
  audience.
- ``workflow_steps_sync(workflow=…, now=…)``: give every send step its campaign and run.
- ``campaign_pause`` / ``campaign_resume`` / ``campaign_cancel``.
- ``approval_request`` / ``approval_decide``; ``approval_needed``.
- ``triggers_segment_entered`` / ``triggers_events`` (signal receivers call them).
The engine itself (enrolment, the sweep) lives in ``activation.journeys.enrollment``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F
from django.utils.translation import gettext as _

from activation.journeys.enrollment import (
    enrollments_create,
    enrollments_for_ids,
    enrollments_from_events,
    large_work_mem,
    workflow_advance,
    workflows_advance,
)
from activation.journeys.models import (
    TRIGGERED_KINDS,
    CampaignApproval,
    CampaignSchedule,
    EnrollmentState,
    ExitReason,
    ScheduledOccurrence,
    ScheduleKind,
    ScheduleState,
    StepKind,
    Workflow,
    WorkflowEnrollment,
    WorkflowStep,
)
from activation.journeys.selectors import audience_size, last_occurrence
from activation.journeys.validation import schedule_problems
from activation.models import (
    CLAIMABLE_STATES,
    FINISHED_RUN_STATES,
    Campaign,
    CampaignRun,
    CampaignStatus,
    OutboxMessage,
    RunStatus,
)
from activation.selectors import campaign_audience, run_channels

__all__ = [
    "approval_decide",
    "approval_needed",
    "approval_request",
    "campaign_cancel",
    "campaign_launch",
    "campaign_launch_check",
    "campaign_launch_refusal",
    "campaign_launch_now",
    "campaign_pause",
    "campaign_resume",
    "schedule_fire",
    "schedule_save",
    "triggers_events",
    "triggers_segment_entered",
    "workflow_steps_sync",
    "workflows_advance",
]

BEAT_TASK = "activation.journeys.tasks.fire_schedule"
# Paused campaigns keep their waiting messages, pushed this far into the future.
HOLD = timedelta(days=36_500)


# --- schedules -------------------------------------------------------------------------------


def schedule_save(*, schedule: CampaignSchedule, now: datetime) -> CampaignSchedule:
    """Validate ``schedule`` (``ValidationError`` per field), save it, and create, update or
    disable its beat row: recurring → ``PeriodicTask`` on a ``CrontabSchedule`` in the
    schedule's zone; one-off → ``PeriodicTask`` on a ``ClockedSchedule`` (one_off); other
    kinds → none. Triggered kinds get a workflow (one send step of the campaign's own
    message when the campaign has none yet)."""
    problems = schedule_problems(schedule, now=now)
    if problems:
        raise ValidationError(problems)
    with transaction.atomic():
        schedule.save()
        _beat_sync(schedule)
        if schedule.kind in TRIGGERED_KINDS:
            workflow, _created = Workflow.objects.get_or_create(campaign=schedule.campaign)
            if not workflow.steps.exists():
                campaign = schedule.campaign
                WorkflowStep.objects.create(
                    workflow=workflow,
                    position=1,
                    kind=StepKind.SEND,
                    channel=campaign.channel,
                    template=campaign.template,
                )
            workflow_steps_sync(workflow=workflow, now=now)
    return schedule


def _beat_sync(schedule: CampaignSchedule) -> None:
    from django_celery_beat.models import ClockedSchedule, CrontabSchedule, PeriodicTask

    wanted = schedule.kind in (ScheduleKind.RECURRING, ScheduleKind.ONE_OFF)
    task = schedule.periodic_task
    if not wanted:
        if task is not None:
            schedule.periodic_task = None
            schedule.save(update_fields=["periodic_task"])
            task.delete()
        return
    if task is None:
        task = PeriodicTask(
            name=f"journeys: campaign {schedule.campaign_id} schedule {schedule.pk}"
        )
    task.task = BEAT_TASK
    task.args = json.dumps([schedule.pk])
    task.queue = "send"
    task.enabled = schedule.state == ScheduleState.ACTIVE
    task.description = str(schedule.campaign)
    if schedule.kind == ScheduleKind.RECURRING:
        crontab, _created = CrontabSchedule.objects.get_or_create(
            minute=schedule.cron_minute,
            hour=schedule.cron_hour,
            day_of_week=schedule.cron_day_of_week,
            day_of_month=schedule.cron_day_of_month,
            month_of_year=schedule.cron_month_of_year,
            timezone=schedule.timezone,
        )
        task.crontab, task.clocked, task.one_off = crontab, None, False
    else:
        clocked, _created = ClockedSchedule.objects.get_or_create(clocked_time=schedule.run_at)
        task.crontab, task.clocked, task.one_off = None, clocked, True
    task.interval = task.solar = None
    task.save()
    if schedule.periodic_task_id != task.pk:
        schedule.periodic_task = task
        schedule.save(update_fields=["periodic_task"])


def schedule_fire(*, schedule: CampaignSchedule, now: datetime) -> ScheduledOccurrence | None:
    """Beat's entry point: launch the latest occurrence of ``schedule`` that is due (not older
    than ``JOURNEYS_CATCH_UP_HOURS``), once. Returns the occurrence, or None when nothing is
    due (manual and triggered schedules never fire)."""
    if schedule.kind not in (ScheduleKind.RECURRING, ScheduleKind.ONE_OFF):
        return None
    window = timedelta(hours=settings.JOURNEYS_CATCH_UP_HOURS)
    at = last_occurrence(schedule, now=now, window=window)
    if at is None:
        return None
    return occurrence_launch(schedule=schedule, occurrence_at=at, now=now)


def campaign_launch(
    *, campaign: Campaign, user=None, now: datetime, background: bool = False
) -> ScheduledOccurrence | None:
    """The one way to launch a campaign now — the campaign list's "Launch now", the
    schedule's "Launch now", ``run_campaign``. Refused (``ValidationError`` with the reason,
    nothing written) unless :func:`campaign_launch_refusal` finds nothing against it: active
    campaign and schedule, template fit for the channel, approval when above
    ``JOURNEYS_APPROVAL_THRESHOLD``. The occurrence (unique per second, so a double click
    launches once) is launched here, or with ``background`` by a worker after the current
    transaction commits (returns None). Beat-fired occurrences go through the same refusal in
    :func:`occurrence_launch`."""
    campaign_launch_check(campaign=campaign)
    schedule, _created = CampaignSchedule.objects.get_or_create(
        campaign=campaign, defaults={"kind": ScheduleKind.MANUAL, "created_by": user}
    )
    at = now.replace(microsecond=0)
    if background:
        from activation.journeys.tasks import launch_now

        transaction.on_commit(lambda: launch_now.delay(schedule.pk, at.isoformat()))
        return None
    return occurrence_launch(schedule=schedule, occurrence_at=at, now=now)


def campaign_launch_now(*, campaign: Campaign, now: datetime, user=None) -> ScheduledOccurrence:
    """:func:`campaign_launch` in this process."""
    return campaign_launch(campaign=campaign, user=user, now=now)


def campaign_launch_refusal(
    *, campaign: Campaign, schedule: CampaignSchedule | None = None
) -> tuple[str, str] | None:
    """Why ``campaign`` may not be launched now, as ``(occurrence outcome, message for the
    marketer)``; None when it may. Every launch path asks this (see :func:`campaign_launch`)."""
    from activation.services import campaign_problems

    Outcome = ScheduledOccurrence.Outcome  # noqa: N806
    if campaign.status == CampaignStatus.DRAFT:
        return Outcome.NOT_ACTIVE, _(
            "“%(name)s” is a draft: set its status to Active (and save) before launching it."
        ) % {"name": campaign.name}
    if campaign.status != CampaignStatus.ACTIVE or (
        schedule is not None and schedule.state != ScheduleState.ACTIVE
    ):
        return Outcome.NOT_ACTIVE, _("This campaign is paused or cancelled; resume it first.")
    problems = campaign_problems(campaign=campaign)
    if problems:
        return Outcome.INVALID, " ".join(str(p) for p in problems.values())
    if approval_needed(campaign=campaign):
        return Outcome.NEEDS_APPROVAL, _(
            "This campaign reaches more than %(n)s contacts: it needs an approval first."
        ) % {"n": settings.JOURNEYS_APPROVAL_THRESHOLD}
    return None


def campaign_launch_check(*, campaign: Campaign, schedule: CampaignSchedule | None = None) -> None:
    """Raise ``ValidationError`` with the reason a launch of ``campaign`` is refused now."""
    if schedule is None:
        schedule = CampaignSchedule.objects.filter(campaign=campaign).first()
    refusal = campaign_launch_refusal(campaign=campaign, schedule=schedule)
    if refusal is not None:
        raise ValidationError(refusal[1])


def occurrence_launch(
    *, schedule: CampaignSchedule, occurrence_at: datetime, now: datetime
) -> ScheduledOccurrence:
    """Launch one occurrence, at most once: the occurrence row (unique per schedule and slot)
    and the run or enrolments are written in one transaction; a redelivered task finds the
    row and only finishes preparing a run left ``preparing`` by a crash."""
    campaign = schedule.campaign
    with transaction.atomic():
        existing = (
            ScheduledOccurrence.objects.select_for_update()
            .filter(schedule=schedule, occurrence_at=occurrence_at)
            .first()
        )
        if existing is None:
            existing = _occurrence_create(schedule, occurrence_at, now)
            created = True
        else:
            created = False
    if existing.run_id and existing.run.status == RunStatus.PREPARING:
        run_prepare(run=existing.run, schedule=schedule, now=now)
    elif created and existing.enrolled:
        workflow_advance(workflow=campaign.workflow, now=now)
    return existing


def _occurrence_create(schedule, occurrence_at, now) -> ScheduledOccurrence:
    campaign = schedule.campaign
    occurrence = ScheduledOccurrence(schedule=schedule, occurrence_at=occurrence_at, fired_at=now)
    refusal = campaign_launch_refusal(campaign=campaign, schedule=schedule)
    if refusal is not None:
        occurrence.outcome = refusal[0]
    else:
        occurrence.outcome = ScheduledOccurrence.Outcome.LAUNCHED
        workflow = Workflow.objects.filter(campaign=campaign).first()
        if workflow is not None and workflow.steps.exists():
            workflow_steps_sync(workflow=workflow, now=now)
            occurrence.enrolled = enrollments_create(
                workflow=workflow,
                contacts=campaign_audience(campaign),
                entered_at=now,
                reentry=schedule.reentry,
                reentry_days=schedule.reentry_days,
            )
        else:
            occurrence.run = CampaignRun.objects.create(
                campaign=campaign, status=RunStatus.PREPARING, created_at=now
            )
    occurrence.save()
    return occurrence


def run_prepare(*, run: CampaignRun, schedule: CampaignSchedule, now: datetime) -> CampaignRun:
    """Prepare ``run`` with activation (audience snapshot, eligibility, outbox), then, for a
    "contact's local time" schedule, hold each message until that time in the contact's zone
    (one UPDATE per distinct time zone, in the same transaction), then start delivery."""
    from activation.services import (
        campaign_run_prepare,
        outbox_defer_to_local_time,
        outbox_delivery_start,
    )

    with transaction.atomic():
        large_work_mem()
        run = campaign_run_prepare(run=run, now=now)
        if schedule.local_send_time is not None and run.status == RunStatus.SENDING:
            outbox_defer_to_local_time(run=run, local_time=schedule.local_send_time, now=now)
    if run.status == RunStatus.SENDING:
        for channel in run_channels(run):
            outbox_delivery_start(channel=channel)
    return run


# --- workflows -------------------------------------------------------------------------------


def workflow_steps_sync(*, workflow: Workflow, now: datetime) -> None:
    """Give each send step the campaign it sends through: the workflow's own campaign when
    the step uses its channel and template, else a campaign of its own (same purpose, quiet
    hours and frequency capping; no segments, so it is never launched as a whole)."""
    parent = workflow.campaign
    for step in workflow.steps.filter(kind=StepKind.SEND).select_related("step_campaign"):
        if step.channel == parent.channel and step.template_id == parent.template_id:
            target = parent
        else:
            target = step.step_campaign
            if target is None or target.pk == parent.pk:
                target = Campaign(status=CampaignStatus.ACTIVE)
            target.name = f"{parent.name} · {_('step')} {step.position}"[:150]
            target.purpose_id = parent.purpose_id
            target.channel = step.channel
            target.template_id = step.template_id
            target.quiet_hours_policy = parent.quiet_hours_policy
            target.quiet_hours_start = parent.quiet_hours_start
            target.quiet_hours_end = parent.quiet_hours_end
            target.frequency_capped = parent.frequency_capped
            target.save()
        if step.step_campaign_id != target.pk:
            run = None
            if step.run_id and step.run.campaign_id == target.pk:
                run = step.run
            WorkflowStep.objects.filter(pk=step.pk).update(step_campaign=target, run=run)


# --- pause / resume / cancel -----------------------------------------------------------------


def _campaign_runs(campaign: Campaign) -> list[int]:
    ids = list(
        CampaignRun.objects.filter(campaign=campaign, dry_run=False).values_list("pk", flat=True)
    )
    workflow = Workflow.objects.filter(campaign=campaign).first()
    if workflow is not None:
        ids += [r for r in workflow.steps.values_list("run_id", flat=True) if r]
    return ids


def _set_state(campaign: Campaign, state: str, status: str, user=None) -> CampaignSchedule:
    schedule, _created = CampaignSchedule.objects.get_or_create(
        campaign=campaign, defaults={"kind": ScheduleKind.MANUAL, "created_by": user}
    )
    schedule.state = state
    schedule.save(update_fields=["state", "updated_at"])
    if schedule.periodic_task_id:
        from django_celery_beat.models import PeriodicTask

        PeriodicTask.objects.filter(pk=schedule.periodic_task_id).update(
            enabled=state == ScheduleState.ACTIVE
        )
        from django_celery_beat.models import PeriodicTasks

        PeriodicTasks.update_changed()
    Campaign.objects.filter(pk=campaign.pk).update(status=status)
    campaign.status = status
    return schedule


def campaign_pause(*, campaign: Campaign, now: datetime, user=None) -> int:
    """Stop the campaign: no scheduled run fires, no trigger enrols, workflows do not move,
    and messages still waiting in the outbox are held (their due time pushed ``HOLD`` ahead,
    restored by ``campaign_resume``). Messages being handed off finish. Returns rows held."""
    with transaction.atomic():
        _set_state(campaign, ScheduleState.PAUSED, CampaignStatus.PAUSED, user)
        return OutboxMessage.objects.filter(
            run_id__in=_campaign_runs(campaign),
            state__in=CLAIMABLE_STATES,
            next_attempt_at__lt=now + HOLD / 2,
        ).update(next_attempt_at=F("next_attempt_at") + HOLD)


def campaign_resume(*, campaign: Campaign, now: datetime, user=None) -> int:
    """Undo ``campaign_pause``: held messages get their due time back (already-past ones are
    sent at once), schedules, triggers and workflows run again. Returns rows released."""
    from activation.services import outbox_delivery_start

    with transaction.atomic():
        _set_state(campaign, ScheduleState.ACTIVE, CampaignStatus.ACTIVE, user)
        held = OutboxMessage.objects.filter(
            run_id__in=_campaign_runs(campaign),
            state__in=CLAIMABLE_STATES,
            next_attempt_at__gte=now + HOLD / 2,
        )
        channels = set(held.values_list("channel", flat=True).distinct())
        released = held.update(next_attempt_at=F("next_attempt_at") - HOLD)
        for channel in channels:
            outbox_delivery_start(channel=channel, tasks=1)
    return released


def campaign_cancel(*, campaign: Campaign, now: datetime, user=None) -> int:
    """Cancel for good: schedules stop, enrolments end (reason ``cancelled``) and every
    message not yet handed off is withdrawn through activation's ``campaign_run_cancel``.
    Returns the number of messages withdrawn."""
    from activation.services import campaign_run_cancel

    withdrawn = 0
    with transaction.atomic():
        _set_state(campaign, ScheduleState.CANCELLED, CampaignStatus.ARCHIVED, user)
        WorkflowEnrollment.objects.filter(
            workflow__campaign=campaign, state=EnrollmentState.ACTIVE
        ).update(
            state=EnrollmentState.EXITED,
            exit_reason=ExitReason.CANCELLED,
            finished_at=now,
            due_at=now,
        )
        for run in CampaignRun.objects.filter(
            pk__in=_campaign_runs(campaign),
            status__in=[RunStatus.PREPARING, RunStatus.SENDING, *FINISHED_RUN_STATES],
        ):
            if (
                run.status in FINISHED_RUN_STATES
                and not run.messages.filter(state__in=CLAIMABLE_STATES).exists()
            ):
                continue
            withdrawn += campaign_run_cancel(run=run, now=now)
    return withdrawn


# --- approval --------------------------------------------------------------------------------


def approval_audience(campaign: Campaign) -> int:
    """The size compared with the threshold: the target audience, or for a segment-entry
    trigger the trigger segment's last computed size."""
    schedule = CampaignSchedule.objects.filter(campaign=campaign).first()
    if schedule is not None and schedule.kind == ScheduleKind.SEGMENT_ENTRY:
        return schedule.trigger_segment.size if schedule.trigger_segment else 0
    return audience_size(campaign)


def approval_needed(*, campaign: Campaign) -> bool:
    """True when the campaign is larger than ``JOURNEYS_APPROVAL_THRESHOLD`` and nobody has
    approved it yet (once approved, later runs need no new approval)."""
    if CampaignApproval.objects.filter(
        campaign=campaign, status=CampaignApproval.Status.APPROVED
    ).exists():
        return False
    return approval_audience(campaign) > settings.JOURNEYS_APPROVAL_THRESHOLD


def approval_request(*, campaign: Campaign, user, now: datetime) -> CampaignApproval:
    """Ask for approval: the dry-run report (who would receive it, who not and why, samples)
    is computed now and kept with the request for the approver to read."""
    from activation.services import eligibility_report

    report = eligibility_report(campaign=campaign, now=now)
    return CampaignApproval.objects.create(
        campaign=campaign,
        requested_by=user,
        requested_at=now,
        audience_size=report.audience,
        eligible=report.eligible,
        report=report.as_dict(),
    )


def approval_decide(
    *, approval: CampaignApproval, user, approve: bool, now: datetime, comment: str = ""
) -> CampaignApproval:
    """Approve or reject. Needs ``activation.approve_campaign`` (Analysts, Marketers); the
    approver cannot be who asked nor who created the schedule (``PermissionDenied``)."""
    if not user.has_perm("activation.approve_campaign"):
        raise PermissionDenied(_("You are not allowed to approve campaigns."))
    schedule = CampaignSchedule.objects.filter(campaign_id=approval.campaign_id).first()
    authors = {approval.requested_by_id, schedule.created_by_id if schedule else None}
    if user.pk in authors:
        raise PermissionDenied(
            _("A campaign must be approved by someone else than the person who prepared it.")
        )
    if approval.status != CampaignApproval.Status.PENDING:
        raise ValidationError(_("This request has already been decided."))
    approval.status = (
        CampaignApproval.Status.APPROVED if approve else CampaignApproval.Status.REJECTED
    )
    approval.decided_by = user
    approval.decided_at = now
    approval.comment = comment
    approval.save(update_fields=["status", "decided_by", "decided_at", "comment"])
    return approval


# --- triggers --------------------------------------------------------------------------------


@dataclass
class TriggerWork:
    schedule_id: int
    contact_ids: list[int]


def _live_triggers(**filters):
    return CampaignSchedule.objects.filter(
        state=ScheduleState.ACTIVE,
        campaign__status=CampaignStatus.ACTIVE,
        **filters,
    ).select_related("campaign", "trigger_segment")


def triggers_segment_entered(
    *, segment_id: int, contact_ids: list[int], at: datetime
) -> dict[int, int]:
    """Enrol contacts who entered ``segment_id`` in every live segment-entry campaign on it
    (approved when needed). Returns enrolled counts per schedule id."""
    done = {}
    for schedule in _live_triggers(kind=ScheduleKind.SEGMENT_ENTRY, trigger_segment_id=segment_id):
        if campaign_launch_refusal(campaign=schedule.campaign, schedule=schedule) is not None:
            continue
        done[schedule.pk] = enrollments_for_ids(
            schedule=schedule, contact_ids=contact_ids, entered_at=at
        )
    return done


def triggers_events(
    *, contact_ids: list[int], event_types: set[str], now: datetime
) -> dict[int, int]:
    """Enrol contacts who just did the trigger event of a live event-triggered campaign."""
    done = {}
    for schedule in _live_triggers(kind=ScheduleKind.EVENT, trigger_event_type__in=event_types):
        if campaign_launch_refusal(campaign=schedule.campaign, schedule=schedule) is not None:
            continue
        done[schedule.pk] = enrollments_from_events(
            schedule=schedule, contact_ids=contact_ids, now=now
        )
    return done


def local_and_utc(at: datetime, zone_name: str) -> str:
    """``"2026-06-12 10:00 Europe/Paris (08:00 UTC)"`` — how times are shown to marketers."""
    try:
        zone = ZoneInfo(zone_name)
    except (KeyError, ValueError):
        zone = ZoneInfo(settings.TIME_ZONE)
    local = at.astimezone(zone)
    return f"{local:%Y-%m-%d %H:%M} {zone_name} ({at.astimezone(UTC):%H:%M} UTC)"
