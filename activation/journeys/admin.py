"""Admin: schedules (validated at save; pause / resume / cancel / launch now; calendar page),
workflows with inline ordered steps (validated at save; per-step funnel page), approvals
(the dry-run report shown to the approver), enrolments and fired occurrences (read-only)."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.forms.models import BaseInlineFormSet
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from unfold import admin as unfold_admin

from activation.journeys import selectors, services
from activation.journeys.models import (
    CampaignApproval,
    CampaignSchedule,
    ScheduledOccurrence,
    Workflow,
    WorkflowEnrollment,
    WorkflowStep,
)
from activation.journeys.validation import StepSpec, template_problems, workflow_problems
from activation.models import SkipReason


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


class CampaignScheduleForm(forms.ModelForm):
    """``run_at`` is typed in the schedule's own time zone (the marketer's), whatever the
    admin's zone; the UTC instant is shown next to it after saving."""

    class Meta:
        model = CampaignSchedule
        fields = (
            "campaign",
            "kind",
            "state",
            "timezone",
            "run_at",
            "cron_minute",
            "cron_hour",
            "cron_day_of_week",
            "cron_day_of_month",
            "cron_month_of_year",
            "local_send_time",
            "trigger_segment",
            "trigger_event_type",
            "unless_event_type",
            "delay_hours",
            "reentry",
            "reentry_days",
        )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        instance = self.instance
        if instance.pk and instance.run_at:
            local = instance.run_at.astimezone(_zone(instance.timezone)).replace(tzinfo=None)
            self.initial["run_at"] = timezone.make_aware(local, timezone.get_current_timezone())

    def clean(self):
        data = super().clean()
        run_at = data.get("run_at")
        zone_name = data.get("timezone") or "UTC"
        if run_at is not None:
            naive = timezone.make_naive(run_at, timezone.get_current_timezone())
            data["run_at"] = naive.replace(tzinfo=_zone(zone_name))
        probe = self.instance
        for name, value in data.items():
            if hasattr(probe, name) and name != "id":
                setattr(probe, name, value)
        from activation.journeys.validation import schedule_problems

        for field, message in schedule_problems(probe, now=timezone.now()).items():
            self.add_error(None if field == "__all__" else field, message)
        campaign = data.get("campaign")
        if campaign is not None:
            for message in template_problems(
                campaign.template, channel=campaign.channel, campaign=campaign
            ):
                self.add_error("campaign", message)
        return data


class OccurrenceInline(unfold_admin.TabularInline):
    model = ScheduledOccurrence
    extra = 0
    can_delete = False
    fields = ("occurrence_at", "fired_at", "outcome", "run", "enrolled")
    readonly_fields = fields
    ordering = ("-occurrence_at",)

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(CampaignSchedule)
class CampaignScheduleAdmin(unfold_admin.ModelAdmin):
    form = CampaignScheduleForm
    list_display = ("campaign", "kind", "state", "next_run", "audience", "approval")
    list_filter = ("kind", "state")
    search_fields = ("campaign__name",)
    list_select_related = ("campaign", "periodic_task__crontab")
    readonly_fields = ("when_utc", "beat_task", "created_by")
    autocomplete_fields = ()
    inlines = [OccurrenceInline]
    actions = ["launch_now", "pause", "resume", "cancel"]
    fieldsets = (
        (None, {"fields": ("campaign", "kind", "state", "timezone")}),
        (_("Once"), {"fields": ("run_at", "when_utc")}),
        (
            _("Recurring (crontab, in the schedule's time zone)"),
            {
                "fields": (
                    ("cron_minute", "cron_hour", "cron_day_of_week"),
                    ("cron_day_of_month", "cron_month_of_year"),
                    "beat_task",
                )
            },
        ),
        (_("Contact's local time"), {"fields": ("local_send_time",)}),
        (
            _("Trigger"),
            {
                "fields": (
                    "trigger_segment",
                    "trigger_event_type",
                    "unless_event_type",
                    "delay_hours",
                    ("reentry", "reentry_days"),
                )
            },
        ),
        (None, {"fields": ("created_by",)}),
    )

    @admin.display(description=_("next run"))
    def next_run(self, obj):
        now = timezone.now()
        upcoming = selectors.schedule_occurrences(
            obj, start=now, end=now + timezone.timedelta(days=366)
        )
        if not upcoming:
            return "—"
        return services.local_and_utc(upcoming[0], obj.timezone)

    @admin.display(description=_("when (UTC)"))
    def when_utc(self, obj):
        if obj is None or obj.run_at is None:
            return "—"
        return services.local_and_utc(obj.run_at, obj.timezone)

    @admin.display(description=_("beat task"))
    def beat_task(self, obj):
        if obj is None or obj.periodic_task_id is None:
            return "—"
        url = reverse("admin:django_celery_beat_periodictask_change", args=[obj.periodic_task_id])
        return format_html('<a href="{}">{}</a>', url, obj.periodic_task.name)

    @admin.display(description=_("audience now"))
    def audience(self, obj):
        return services.approval_audience(obj.campaign)

    @admin.display(description=_("approval"))
    def approval(self, obj):
        return _("needed") if services.approval_needed(campaign=obj.campaign) else "—"

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        try:
            services.schedule_save(schedule=obj, now=timezone.now())
        except ValidationError as exc:  # the form checked already; a race is still refused
            messages.error(request, "; ".join(exc.messages))
            return
        if obj.kind in ("one_off", "recurring") and not selectors.audience_size(obj.campaign):
            messages.warning(
                request,
                _("The audience of “%(name)s” is empty right now: nobody would receive it.")
                % {"name": obj.campaign},
            )
        if services.approval_needed(campaign=obj.campaign):
            messages.warning(
                request,
                _("“%(name)s” needs an approval before its first run (Campaign approvals).")
                % {"name": obj.campaign},
            )

    def get_urls(self):
        return [
            path(
                "calendar/",
                self.admin_site.admin_view(self.calendar_view),
                name="journeys_calendar",
            )
        ] + super().get_urls()

    def calendar_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        zone = timezone.get_current_timezone()
        days = selectors.calendar(now=timezone.now(), days=30, zone=zone)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Campaign calendar — next 30 days"),
            "days": days,
            "zone": str(zone),
        }
        return TemplateResponse(request, "admin/journeys/calendar.html", context)

    def has_launch_permission(self, request) -> bool:
        return request.user.has_perm("activation.launch_campaign")

    @admin.action(description=_("Launch now"), permissions=["launch"])
    def launch_now(self, request, queryset):
        for schedule in queryset.select_related("campaign"):
            try:
                services.campaign_launch(
                    campaign=schedule.campaign,
                    user=request.user,
                    now=timezone.now(),
                    background=True,
                )
            except ValidationError as exc:
                messages.error(request, f"{schedule.campaign}: " + "; ".join(exc.messages))
                continue
            messages.success(
                request,
                _("“%(name)s” is being launched; follow it in Campaign runs.")
                % {"name": schedule.campaign},
            )

    @admin.action(description=_("Pause (hold waiting messages)"), permissions=["change"])
    def pause(self, request, queryset):
        held = sum(
            services.campaign_pause(campaign=s.campaign, now=timezone.now(), user=request.user)
            for s in queryset.select_related("campaign")
        )
        messages.success(
            request,
            ngettext("Paused; %(n)s message held.", "Paused; %(n)s messages held.", held)
            % {"n": held},
        )

    @admin.action(description=_("Resume"), permissions=["change"])
    def resume(self, request, queryset):
        released = sum(
            services.campaign_resume(campaign=s.campaign, now=timezone.now(), user=request.user)
            for s in queryset.select_related("campaign")
        )
        messages.success(
            request,
            ngettext(
                "Resumed; %(n)s message released.", "Resumed; %(n)s messages released.", released
            )
            % {"n": released},
        )

    @admin.action(description=_("Cancel (withdraw messages not yet sent)"), permissions=["change"])
    def cancel(self, request, queryset):
        withdrawn = sum(
            services.campaign_cancel(campaign=s.campaign, now=timezone.now(), user=request.user)
            for s in queryset.select_related("campaign")
        )
        messages.success(
            request,
            ngettext(
                "Cancelled; %(n)s message withdrawn.",
                "Cancelled; %(n)s messages withdrawn.",
                withdrawn,
            )
            % {"n": withdrawn},
        )


class StepFormSet(BaseInlineFormSet):
    """Refuses, at save, a workflow that could not run: see ``workflow_problems``."""

    def clean(self):
        super().clean()
        if any(self.errors):
            return
        specs = []
        for form in self.forms:
            data = getattr(form, "cleaned_data", None)
            if not data or data.get("DELETE"):
                continue
            specs.append(
                StepSpec(
                    **{
                        name: data.get(name, StepSpec.__dataclass_fields__[name].default)
                        for name in StepSpec.__dataclass_fields__
                    }
                )
            )
        campaign = self.instance.campaign if self.instance.campaign_id else None
        problems = workflow_problems(specs, campaign=campaign)
        if problems:
            raise ValidationError(problems)


class WorkflowStepInline(unfold_admin.TabularInline):
    model = WorkflowStep
    formset = StepFormSet
    extra = 1
    ordering = ("position",)
    fields = (
        "position",
        "kind",
        "channel",
        "template",
        "wait_hours",
        "wait_until",
        "condition",
        "condition_step",
        "condition_segment",
        "condition_event_type",
        "yes_goto",
        "no_goto",
    )


@admin.register(Workflow)
class WorkflowAdmin(unfold_admin.ModelAdmin):
    list_display = ("campaign", "goal_event_type", "steps_count", "active_now", "funnel_link")
    search_fields = ("campaign__name",)
    inlines = [WorkflowStepInline]

    @admin.display(description=_("steps"))
    def steps_count(self, obj):
        return obj.steps.count()

    @admin.display(description=_("contacts in progress"))
    def active_now(self, obj):
        return obj.enrollments.filter(state="active").count()

    @admin.display(description=_("funnel"))
    def funnel_link(self, obj):
        url = reverse("admin:journeys_workflow_funnel", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, _("Funnel"))

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        services.workflow_steps_sync(workflow=form.instance, now=timezone.now())

    def get_urls(self):
        return [
            path(
                "<int:pk>/funnel/",
                self.admin_site.admin_view(self.funnel_view),
                name="journeys_workflow_funnel",
            )
        ] + super().get_urls()

    def funnel_view(self, request, pk: int):
        if not self.has_view_permission(request):
            raise PermissionDenied
        workflow = get_object_or_404(Workflow, pk=pk)
        funnel = selectors.workflow_funnel(workflow)
        state_labels = {
            ("active", ""): _("In progress"),
            ("completed", ""): _("Completed"),
            ("completed", "exit_step"): _("Completed (exit step)"),
            ("exited", "goal"): _("Exited: goal reached"),
            ("exited", "left_segment"): _("Exited: left the segment"),
            ("exited", "cancelled"): _("Exited: campaign cancelled"),
        }
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": workflow,
            "title": _("Funnel of %(name)s") % {"name": workflow},
            "rows": funnel["steps"],
            "states": [(state_labels.get(k, k), v) for k, v in sorted(funnel["states"].items())],
            "total": funnel["total"],
        }
        return TemplateResponse(request, "admin/journeys/funnel.html", context)


class ApprovalRequestForm(forms.ModelForm):
    class Meta:
        model = CampaignApproval
        fields = ("campaign",)


@admin.register(CampaignApproval)
class CampaignApprovalAdmin(unfold_admin.ModelAdmin):
    list_display = ("campaign", "status", "audience_size", "eligible", "requested_by", "decided_by")
    list_filter = ("status",)
    actions = ["approve", "reject"]
    readonly_fields = (
        "campaign",
        "status",
        "requested_by",
        "requested_at",
        "audience_size",
        "eligible",
        "report_table",
        "decided_by",
        "decided_at",
    )
    fields = readonly_fields + ("comment",)

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = ApprovalRequestForm
            kwargs["fields"] = ("campaign",)
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        return ("campaign",) if obj is None else self.fields

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    @admin.display(description=_("dry-run report (who would receive it, who not and why)"))
    def report_table(self, obj):
        labels = dict(SkipReason.choices)
        samples = obj.report.get("samples", {})
        rows = [(_("Would receive"), obj.report.get("eligible", 0), "")] + [
            (
                labels.get(reason, reason),
                count,
                ", ".join(c.get("external_id", "") for c in samples.get(reason, [])),
            )
            for reason, count in obj.report.get("by_reason", {}).items()
        ]
        body = format_html(
            "".join(
                "<tr><td>{}</td><td style='text-align:right'>{}</td><td>{}</td></tr>" for _ in rows
            ),
            *[part for row in rows for part in row],
        )
        return format_html("<table class='approval-report'>{}</table>", body)

    change_form_template = "admin/journeys/campaignapproval/change_form.html"

    def response_change(self, request, obj):
        for key, approve in (("_approve", True), ("_reject", False)):
            if key in request.POST:
                self._decide(request, CampaignApproval.objects.filter(pk=obj.pk), approve)
                return self.response_post_save_change(request, obj)
        return super().response_change(request, obj)

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["comment"])
            return
        created = services.approval_request(
            campaign=obj.campaign, user=request.user, now=timezone.now()
        )
        obj.pk = created.pk

    def _decide(self, request, queryset, approve: bool):
        for approval in queryset:
            try:
                services.approval_decide(
                    approval=approval, user=request.user, approve=approve, now=timezone.now()
                )
            except (PermissionDenied, ValidationError) as exc:
                text = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
                messages.error(request, f"{approval.campaign}: {text}")
            else:
                messages.success(
                    request,
                    (_("%(name)s approved.") if approve else _("%(name)s rejected."))
                    % {"name": approval.campaign},
                )

    def has_approve_permission(self, request) -> bool:
        return request.user.has_perm("activation.approve_campaign")

    @admin.action(
        description=_("Approve (after reading the dry-run report)"), permissions=["approve"]
    )
    def approve(self, request, queryset):
        self._decide(request, queryset, True)

    @admin.action(description=_("Reject"), permissions=["approve"])
    def reject(self, request, queryset):
        self._decide(request, queryset, False)


@admin.register(WorkflowEnrollment)
class WorkflowEnrollmentAdmin(unfold_admin.ModelAdmin):
    list_display = (
        "contact",
        "workflow",
        "entry",
        "position",
        "state",
        "exit_reason",
        "entered_at",
        "due_at",
    )
    list_filter = ("state", "exit_reason", "workflow")
    search_fields = ("contact__external_id", "contact__email")
    raw_id_fields = ("contact", "workflow")
    list_select_related = ("contact", "workflow__campaign")
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
