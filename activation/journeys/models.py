"""When campaigns run (schedules, triggers), what they do step by step (workflows), and who
approved them.

- ``CampaignSchedule`` (one per campaign): launched by hand, once at a date-time, on a crontab
  (a django-celery-beat ``PeriodicTask`` kept in step by ``schedule_save``), or triggered per
  contact (segment entry; event type unless another event follows within N hours).
- ``ScheduledOccurrence``: one row per fired occurrence (unique), so beat firing twice or a
  redelivered task never launches a second run for the same slot.
- ``Workflow`` / ``WorkflowStep``: ordered steps (send, wait, branch, exit). Each send step
  sends through a campaign of its own (its channel and template) and a long-lived run; outbox
  rows use ``step = position + STEP_STRIDE × (entry − 1)``, so activation's unique
  ``(run, contact, step)`` makes a second send of a step to the same entry impossible.
- ``WorkflowEnrollment``: one contact's way through a workflow, advanced by the beat sweep.
- ``CampaignApproval``: the dry-run report an approver saw, who asked and who approved.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

# Outbox ``step`` of a workflow send: position + STEP_STRIDE × (entry − 1).
STEP_STRIDE = 1000
MAX_STEPS = 50


class ScheduleKind(models.TextChoices):
    MANUAL = "manual", _("Launched by hand only")
    ONE_OFF = "one_off", _("Once, at a date and time")
    RECURRING = "recurring", _("Recurring (crontab)")
    SEGMENT_ENTRY = "segment_entry", _("Triggered: contact enters a segment")
    EVENT = "event", _("Triggered: contact does an event")


TRIGGERED_KINDS = (ScheduleKind.SEGMENT_ENTRY, ScheduleKind.EVENT)


class ScheduleState(models.TextChoices):
    ACTIVE = "active", _("Active")
    PAUSED = "paused", _("Paused")
    CANCELLED = "cancelled", _("Cancelled")


class Reentry(models.TextChoices):
    ONCE = "once", _("Once ever")
    EVERY_N_DAYS = "every_n_days", _("Again after N days")


class CampaignSchedule(models.Model):
    """When a campaign runs. Times are stored in UTC; ``timezone`` is the marketer's zone in
    which ``run_at`` is entered and the crontab is read."""

    campaign = models.OneToOneField(
        "activation.Campaign",
        on_delete=models.CASCADE,
        related_name="schedule",
        verbose_name=_("campaign"),
    )
    kind = models.CharField(
        _("kind"), max_length=16, choices=ScheduleKind.choices, default=ScheduleKind.MANUAL
    )
    state = models.CharField(
        _("state"), max_length=10, choices=ScheduleState.choices, default=ScheduleState.ACTIVE
    )
    timezone = models.CharField(
        _("time zone of the schedule"),
        max_length=64,
        default=settings.TIME_ZONE,
        help_text=_("IANA zone in which the date-time and the crontab are read."),
    )
    run_at = models.DateTimeField(_("send at"), null=True, blank=True)
    cron_minute = models.CharField(_("minute"), max_length=64, default="0")
    cron_hour = models.CharField(_("hour"), max_length=64, default="9")
    cron_day_of_week = models.CharField(
        _("day of week"), max_length=64, default="1", help_text=_("0 = Sunday, 1 = Monday…")
    )
    cron_day_of_month = models.CharField(_("day of month"), max_length=64, default="*")
    cron_month_of_year = models.CharField(_("month"), max_length=64, default="*")
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("beat task"),
    )
    local_send_time = models.TimeField(
        _("send at the contact's local time"),
        null=True,
        blank=True,
        help_text=_(
            "Each message waits for the next time the contact's clock shows this time "
            "(e.g. 10:00 in their own time zone)."
        ),
    )
    trigger_segment = models.ForeignKey(
        "segments.Segment",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("segment entered"),
    )
    trigger_event_type = models.CharField(
        _("event type"), max_length=64, blank=True, default="", help_text=_("e.g. cart_updated")
    )
    unless_event_type = models.CharField(
        _("unless this event follows"),
        max_length=64,
        blank=True,
        default="",
        help_text=_("e.g. purchase: a contact who does it before the message is sent exits."),
    )
    delay_hours = models.PositiveIntegerField(_("wait before the first step (hours)"), default=0)
    reentry = models.CharField(
        _("re-entry"), max_length=16, choices=Reentry.choices, default=Reentry.ONCE
    )
    reentry_days = models.PositiveIntegerField(_("re-entry after (days)"), default=30)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("campaign schedule")
        verbose_name_plural = _("campaign schedules")
        constraints = [
            models.CheckConstraint(
                condition=~Q(kind="one_off") | Q(run_at__isnull=False),
                name="schedule_one_off_has_a_time",
            ),
            models.CheckConstraint(
                condition=~Q(kind="segment_entry") | Q(trigger_segment__isnull=False),
                name="schedule_segment_trigger_has_a_segment",
            ),
            models.CheckConstraint(
                condition=~Q(kind="event") | ~Q(trigger_event_type=""),
                name="schedule_event_trigger_has_a_type",
            ),
        ]
        indexes = [
            models.Index(fields=["kind", "state"], name="schedule_by_kind_state"),
            models.Index(fields=["trigger_event_type"], name="schedule_by_trigger_event"),
        ]

    def __str__(self) -> str:
        return f"{self.campaign} — {self.get_kind_display()}"

    @property
    def is_triggered(self) -> bool:
        return self.kind in TRIGGERED_KINDS


class ScheduledOccurrence(models.Model):
    """One fired occurrence of a schedule (or one "launch now"): its run or enrollments."""

    class Outcome(models.TextChoices):
        LAUNCHED = "launched", _("Launched")
        NEEDS_APPROVAL = "needs_approval", _("Not launched: waiting for approval")
        NOT_ACTIVE = "not_active", _("Not launched: campaign not active (draft, paused, cancelled)")
        INVALID = "invalid", _("Not launched: the template does not fit the campaign's channel")

    schedule = models.ForeignKey(
        CampaignSchedule, on_delete=models.CASCADE, related_name="occurrences"
    )
    occurrence_at = models.DateTimeField(_("scheduled for"))
    fired_at = models.DateTimeField(_("fired at"))
    outcome = models.CharField(_("outcome"), max_length=16, choices=Outcome.choices)
    run = models.ForeignKey(
        "activation.CampaignRun",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("run"),
    )
    enrolled = models.PositiveIntegerField(_("contacts enrolled"), default=0)

    class Meta:
        verbose_name = _("scheduled occurrence")
        verbose_name_plural = _("scheduled occurrences")
        ordering = ["-occurrence_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["schedule", "occurrence_at"], name="occurrence_once_per_slot"
            )
        ]

    def __str__(self) -> str:
        return f"{self.schedule.campaign} @ {self.occurrence_at:%Y-%m-%d %H:%M}"


class Workflow(models.Model):
    """The steps a contact goes through once enrolled in a campaign."""

    campaign = models.OneToOneField(
        "activation.Campaign",
        on_delete=models.CASCADE,
        related_name="workflow",
        verbose_name=_("campaign"),
    )
    goal_event_type = models.CharField(
        _("exit when this event happens"),
        max_length=64,
        blank=True,
        default="",
        help_text=_("Goal, e.g. purchase: a contact who does it leaves the workflow."),
    )
    exit_on_segment_exit = models.BooleanField(
        _("exit when the contact leaves the target segments"), default=False
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("workflow")
        verbose_name_plural = _("workflows")

    def __str__(self) -> str:
        return str(self.campaign)


class StepKind(models.TextChoices):
    SEND = "send", _("Send a message")
    WAIT = "wait", _("Wait")
    BRANCH = "branch", _("Branch on a condition")
    EXIT = "exit", _("Exit")


class BranchCondition(models.TextChoices):
    OPENED = "opened", _("Opened the email of step…")
    CLICKED = "clicked", _("Clicked in the message of step…")
    CONVERTED = "converted", _("Converted since entry")
    IN_SEGMENT = "in_segment", _("Is still in segment…")
    EVENT_SINCE_ENTRY = "event_since_entry", _("Did this event since entry…")


class WorkflowStep(models.Model):
    """One step. After it, a contact goes to the next position (or ``yes``/``no`` targets of a
    branch; an empty target means "the next step"); past the last step the workflow is done."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField(_("position"))
    kind = models.CharField(_("kind"), max_length=8, choices=StepKind.choices)
    # send
    channel = models.CharField(
        _("channel"),
        max_length=8,
        blank=True,
        default="",
        choices=[("email", _("Email")), ("sms", _("SMS")), ("push", _("Push"))],
    )
    template = models.ForeignKey(
        "activation.Template",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("template"),
    )
    step_campaign = models.ForeignKey(
        "activation.Campaign",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
        verbose_name=_("campaign of this step"),
    )
    run = models.ForeignKey(
        "activation.CampaignRun",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
        verbose_name=_("run of this step"),
    )
    # wait
    wait_hours = models.PositiveIntegerField(_("wait (hours)"), null=True, blank=True)
    wait_until = models.TimeField(_("or wait until (contact's local time)"), null=True, blank=True)
    # branch
    condition = models.CharField(
        _("condition"), max_length=20, choices=BranchCondition.choices, blank=True, default=""
    )
    condition_step = models.PositiveSmallIntegerField(
        _("message of step (position)"), null=True, blank=True
    )
    condition_segment = models.ForeignKey(
        "segments.Segment",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("segment"),
    )
    condition_event_type = models.CharField(_("event type"), max_length=64, blank=True, default="")
    yes_goto = models.PositiveSmallIntegerField(_("if yes, go to step"), null=True, blank=True)
    no_goto = models.PositiveSmallIntegerField(_("if no, go to step"), null=True, blank=True)

    class Meta:
        verbose_name = _("workflow step")
        verbose_name_plural = _("workflow steps")
        ordering = ["workflow", "position"]
        constraints = [
            models.UniqueConstraint(fields=["workflow", "position"], name="step_unique_position"),
            models.CheckConstraint(
                condition=Q(position__gte=1, position__lte=MAX_STEPS),
                name="step_position_in_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.position}. {self.get_kind_display()}"


class EnrollmentState(models.TextChoices):
    ACTIVE = "active", _("In progress")
    COMPLETED = "completed", _("Completed")
    EXITED = "exited", _("Exited")


class ExitReason(models.TextChoices):
    GOAL = "goal", _("Goal event")
    LEFT_SEGMENT = "left_segment", _("Left the segment")
    EXIT_STEP = "exit_step", _("Exit step")
    CANCELLED = "cancelled", _("Campaign cancelled")


class WorkflowEnrollment(models.Model):
    """One contact's ``entry``-th way through a workflow: where they are and when the sweep
    looks at them next (``due_at``)."""

    # No database-level foreign keys and no single-column indexes: enrolling a segment inserts
    # up to millions of rows in one statement, and PostgreSQL checks a foreign key row by row
    # at commit (a locking read of the contact and of the workflow per row — most of the time
    # of an enrolment). Both ids come from the referenced tables in that same statement;
    # deletions cascade through Django (on_delete), like the outbox's. The unique
    # (workflow, contact, entry) and the (contact, workflow) index lead with each column.
    workflow = models.ForeignKey(
        Workflow,
        on_delete=models.CASCADE,
        related_name="enrollments",
        db_constraint=False,
        db_index=False,
    )
    contact = models.ForeignKey(
        "contacts.Contact",
        on_delete=models.CASCADE,
        related_name="workflow_enrollments",
        db_constraint=False,
        db_index=False,
    )
    entry = models.PositiveIntegerField(_("entry number"), default=1)
    position = models.PositiveSmallIntegerField(_("at step"))
    state = models.CharField(
        _("state"), max_length=10, choices=EnrollmentState.choices, default=EnrollmentState.ACTIVE
    )
    exit_reason = models.CharField(
        _("exit reason"), max_length=16, choices=ExitReason.choices, blank=True, default=""
    )
    entered_at = models.DateTimeField(_("entered at"))
    due_at = models.DateTimeField(_("next look at"))
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("workflow enrollment")
        verbose_name_plural = _("workflow enrollments")
        constraints = [
            models.UniqueConstraint(
                fields=["workflow", "contact", "entry"], name="enrollment_unique_entry"
            ),
            models.UniqueConstraint(
                fields=["workflow", "contact"],
                condition=Q(state="active"),
                name="enrollment_one_active_per_contact",
            ),
        ]
        indexes = [
            models.Index(
                fields=["workflow", "position", "due_at"],
                condition=Q(state="active"),
                name="enrollment_due",
            ),
            models.Index(fields=["contact", "workflow"], name="enrollment_by_contact"),
        ]

    def __str__(self) -> str:
        return f"#{self.contact_id} in {self.workflow_id} (step {self.position})"


class CampaignApproval(models.Model):
    """A request to approve a large campaign and its answer. The dry-run report shown to the
    approver is kept. Approving needs ``activation.approve_campaign``; the approver cannot be
    the person who asked nor the schedule's author."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting for approval")
        APPROVED = "approved", _("Approved")
        REJECTED = "rejected", _("Rejected")

    campaign = models.ForeignKey(
        "activation.Campaign",
        on_delete=models.CASCADE,
        related_name="approvals",
        verbose_name=_("campaign"),
    )
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.PENDING
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("requested by"),
    )
    requested_at = models.DateTimeField(_("requested at"))
    audience_size = models.PositiveIntegerField(_("audience size"), default=0)
    eligible = models.PositiveIntegerField(_("would receive"), default=0)
    report = models.JSONField(_("dry-run report"), default=dict, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("decided by"),
    )
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    comment = models.TextField(_("comment"), blank=True, default="")

    class Meta:
        verbose_name = _("campaign approval")
        verbose_name_plural = _("campaign approvals")
        ordering = ["-requested_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(decided_by__isnull=True) | ~Q(decided_by=models.F("requested_by")),
                name="approval_not_by_requester",
            )
        ]

    def __str__(self) -> str:
        return f"{self.campaign} — {self.get_status_display()}"
