"""Admin: templates (preview for a sample contact, test send), campaigns (dry run, launch),
runs (progress bar and counts, retry failed, cancel), outbox and delivery log with filters."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import formats, timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext, pgettext
from unfold import admin as unfold_admin
from unfold.decorators import action

from activation import report_views, services
from activation.channels.mailsink import (
    mail_sink_directory,
    mail_sink_file,
    mail_sink_message,
    mail_sink_messages,
)
from activation.models import (
    FINISHED_RUN_STATES,
    Attribution,
    Campaign,
    CampaignRun,
    DeliveryAttempt,
    MessageChannel,
    OutboxMessage,
    OutboxState,
    RunStatus,
    SkipReason,
    Template,
    TemplateVersion,
)
from activation.rendering import (
    ALL_FIELDS,
    CHANNEL_BODY_FIELDS,
    CHANNEL_FIELDS,
    template_source_errors,
)
from activation.reports import message_engagement, message_sent_content
from activation.selectors import (
    campaign_audience,
    contact_message_engagement,
    contact_messages,
    run_progress,
    run_reason_counts,
)
from activation.sms import sms_segments, with_stop_mention
from contacts.forms import ContactIdentifierField
from contacts.models import Contact
from contacts.story import StoryTab, story_page, story_page_number, story_tab_register
from ops.confirm import (
    back_to_object,
    confirmation_page,
    confirmed,
    count_text,
    object_or_404,
)


class TemplateVersionForm(forms.ModelForm):
    class Meta:
        model = TemplateVersion
        fields = (
            "locale",
            "subject",
            "html",
            "text",
            "sms_body",
            "push_title",
            "push_body",
            "push_url",
        )

    def clean(self):
        data = super().clean()
        probe = TemplateVersion(**{name: data.get(name) or "" for name in ALL_FIELDS})
        errors = template_source_errors(probe)
        if errors:
            raise ValidationError({field: message for field, message in errors.items()})
        return data


class TemplateVersionFormSet(forms.BaseInlineFormSet):
    """Each version carries the body of the template's channel (an SMS template without SMS
    text would send an empty SMS)."""

    def clean(self):
        super().clean()
        channel = self.instance.channel
        fields = CHANNEL_BODY_FIELDS.get(channel, ())
        for form in self.forms:
            data = getattr(form, "cleaned_data", None)
            if not data or data.get("DELETE") or not fields:
                continue
            if not any((data.get(name) or "").strip() for name in fields):
                form.add_error(
                    fields[0],
                    _("This %(channel)s template needs this content in every locale.")
                    % {"channel": MessageChannel(channel).label},
                )


def _channel_version_fields(channel: str) -> list[str]:
    """The fields a version of a ``channel`` template shows (CHANNEL_FIELDS, and an SMS's
    length)."""
    return [*CHANNEL_FIELDS[channel], *(["sms_length"] if channel == "sms" else [])]


class TemplateVersionInline(unfold_admin.StackedInline):
    """A template's versions (one per locale) show only their channel's fields: an email
    template its subject, HTML and text; an SMS template its text and length; a push template
    its title, body and link. On the add page, before the channel is saved, the page's script
    (``cible/template_channel.js``) hides the other channels' fields as the channel is picked."""

    model = TemplateVersion
    form = TemplateVersionForm
    formset = TemplateVersionFormSet
    extra = 0
    readonly_fields = ("sms_length",)

    def get_fields(self, request, obj=None):
        # On a save, the channel being saved (a changed channel brings its own fields back with
        # the "needs this content" errors); otherwise the stored one; none yet: every field.
        channel = request.POST.get("channel") if request.method == "POST" else None
        channel = channel or getattr(obj, "channel", None)
        if channel not in CHANNEL_FIELDS:
            return [*TemplateVersionForm.Meta.fields, "sms_length"]
        return ["locale", *_channel_version_fields(channel)]

    @admin.display(description=_("SMS length (with STOP mention)"))
    def sms_length(self, obj):
        if obj is None or not obj.sms_body:
            return "—"
        counted = sms_segments(with_stop_mention(obj.sms_body, marketing=True))
        return _("%(encoding)s, %(units)s characters, %(segments)s SMS") % {
            "encoding": counted.encoding,
            "units": counted.units,
            "segments": counted.segments,
        }


class TestSendForm(forms.Form):
    contact = ContactIdentifierField(label=_("Sample contact (external ID)"))
    locale = forms.ChoiceField(
        label=_("Locale"),
        choices=[("", _("Contact's")), ("fr", "fr"), ("en", "en")],
        required=False,
    )
    to = forms.CharField(
        label=_("Send a test to (email address or phone)"), required=False, max_length=254
    )


@admin.register(Template)
class TemplateAdmin(unfold_admin.ModelAdmin):
    list_display = ("name", "channel", "default_locale", "updated_at", "preview_link")
    list_filter = ("channel",)
    search_fields = ("name",)
    inlines = [TemplateVersionInline]

    class Media:
        js = ("cible/template_channel.js",)

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "channel":
            # The page's script reads which fields each channel shows from here: the same
            # list TemplateVersionInline.get_fields renders.
            shown = {channel: _channel_version_fields(channel) for channel in CHANNEL_FIELDS}
            field.widget.attrs["data-channel-fields"] = json.dumps(shown)
        return field

    @admin.display(description=_("Preview"))
    def preview_link(self, obj):
        url = reverse("admin:activation_template_preview", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, _("Preview / test send"))

    def get_urls(self):
        return [
            path(
                "<int:pk>/preview/",
                self.admin_site.admin_view(self.preview_view),
                name="activation_template_preview",
            )
        ] + super().get_urls()

    def preview_view(self, request, pk: int):
        if not self.has_view_permission(request):
            raise PermissionDenied
        template = get_object_or_404(Template, pk=pk)
        data = request.POST if request.method == "POST" else request.GET
        form = TestSendForm(data or None)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": template,
            "title": _("Preview of %(name)s") % {"name": template.name},
            "form": form,
        }
        if form.is_valid():
            contact = form.cleaned_data["contact"]
            found = services.message_render_test(
                template=template, contact=contact, locale=form.cleaned_data["locale"]
            )
            if found is None:
                messages.error(request, _("This template has no version yet."))
            else:
                version, rendered = found
                context.update(rendered=rendered, version=version, contact=contact)
                if rendered.sms_body:
                    body = with_stop_mention(rendered.sms_body, marketing=True)
                    context.update(sms_body=body, sms_count=sms_segments(body))
                if request.method == "POST" and request.POST.get("action") == "send":
                    if not self.has_change_permission(request, template):
                        raise PermissionDenied
                    result = services.message_send_test(
                        template=template,
                        contact=contact,
                        to=form.cleaned_data["to"],
                        locale=form.cleaned_data["locale"],
                    )
                    if result.ok:
                        messages.success(request, _("Test message sent."))
                    else:
                        messages.error(
                            request,
                            _("The test message was not sent: %(error)s") % {"error": result.error},
                        )
        return TemplateResponse(request, "admin/activation/template/preview.html", context)


class CampaignForm(forms.ModelForm):
    """The campaign's template must be of its channel and have content for it (every
    locale)."""

    class Meta:
        model = Campaign
        # Every editable field of the campaign: the admin builds its page from this list, so a
        # field left out here (segments, status, quiet hours…) disappears from the page.
        fields = (
            "name",
            "purpose",
            "channel",
            "template",
            "segments",
            "exclusion_segments",
            "quiet_hours_policy",
            "quiet_hours_start",
            "quiet_hours_end",
            "frequency_capped",
            "status",
        )

    def clean(self):
        data = super().clean()
        if data.get("channel") and data.get("template"):
            probe = Campaign(channel=data["channel"], template=data["template"])
            problems = services.campaign_problems(campaign=probe)
            if problems:
                raise ValidationError(problems)
        return data


@admin.register(Campaign)
class CampaignAdmin(unfold_admin.ModelAdmin):
    form = CampaignForm
    list_display = ("name", "channel", "purpose", "template", "status", "created_at")
    list_filter = ("channel", "status", "purpose")
    search_fields = ("name",)
    filter_horizontal = ("segments", "exclusion_segments")
    actions = ["dry_run", "launch"]
    readonly_fields = ("report_link",)

    @admin.display(description=_("report"))
    def report_link(self, obj):
        return _report_link(obj, "admin:activation_campaign_report")

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path(
                "<int:pk>/report/",
                wrap(report_views.campaign_report_page),
                name="activation_campaign_report",
            ),
            path(
                "<int:pk>/report.csv",
                wrap(report_views.campaign_report_csv),
                name="activation_campaign_report_csv",
            ),
            *super().get_urls(),
        ]

    actions_detail = [
        "launch_button",
        "dry_run_button",
        "test_send_button",
        "pause_button",
        "resume_button",
        "cancel_button",
    ]

    def has_launch_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("activation.launch_campaign")

    # --- buttons on the campaign's page: a confirmation page, then the service on POST -------

    def _campaign(self, object_id) -> Campaign:
        return object_or_404(Campaign, object_id)

    @action(
        description=_("Launch"),
        permissions=["launch"],
        url_path="launch",
        icon="send",
    )
    def launch_button(self, request, object_id):
        from activation.journeys.services import campaign_launch, campaign_launch_refusal

        campaign = self._campaign(object_id)
        if confirmed(request):
            try:
                campaign_launch(
                    campaign=campaign, user=request.user, now=timezone.now(), background=True
                )
            except ValidationError as exc:
                messages.error(request, "; ".join(exc.messages))
            else:
                messages.success(
                    request,
                    _("“%(name)s” is being launched; follow it in Campaign runs.")
                    % {"name": campaign.name},
                )
            return back_to_object(self, campaign)
        refusal = campaign_launch_refusal(campaign=campaign)
        report = services.eligibility_report(campaign=campaign, now=timezone.now())
        return confirmation_page(
            self,
            request,
            campaign,
            title=_("Launch “%(name)s”") % {"name": campaign.name},
            effects=[_launch_effect(campaign, report)],
            details=_reason_rows(report),
            refusals=[refusal[1]] if refusal else [],
            confirm_label=_("Yes, send it now"),
        )

    @action(
        description=_("Dry run"),
        permissions=["view"],
        url_path="dry-run",
        icon="fact_check",
    )
    def dry_run_button(self, request, object_id):
        campaign = self._campaign(object_id)
        if confirmed(request):
            run = services.campaign_run_launch(campaign=campaign, now=timezone.now(), dry_run=True)
            messages.info(
                request,
                _("Dry run recorded: %(eligible)s of %(audience)s contacts would receive it.")
                % {
                    "eligible": count_text(run.counts["eligible"]),
                    "audience": count_text(run.audience_size),
                },
            )
            return HttpResponseRedirect(
                reverse("admin:activation_campaignrun_change", args=[run.pk])
            )
        return confirmation_page(
            self,
            request,
            campaign,
            title=_("Dry run of “%(name)s”") % {"name": campaign.name},
            effects=[
                _(
                    "A dry run sends nothing: it records who would receive the campaign now, "
                    "who would not and why, with sample contacts per reason."
                ),
                _launch_effect(
                    campaign, services.eligibility_report(campaign=campaign, now=timezone.now())
                ),
            ],
            confirm_label=_("Record the dry run"),
        )

    @action(
        description=_("Test send to myself"),
        permissions=["change"],
        url_path="test-send",
        icon="outgoing_mail",
    )
    def test_send_button(self, request, object_id):
        campaign = self._campaign(object_id)
        to = request.user.email
        refusals = []
        if campaign.channel != MessageChannel.EMAIL:
            refusals.append(
                _("A test to yourself goes by email: this campaign sends %(channel)s.")
                % {"channel": MessageChannel(campaign.channel).label}
            )
        elif not to:
            refusals.append(_("Your user account has no email address: add one in your profile."))
        if campaign.template_id is None:
            refusals.append(_("This campaign has no template yet."))
        sample = campaign_audience(campaign).order_by("pk").first() if not refusals else None
        if not refusals and sample is None:
            sample = Contact.objects.order_by("pk").first()
        if not refusals and sample is None:
            refusals.append(_("There is no contact yet to render the template for."))
        if confirmed(request) and not refusals:
            result = services.message_send_test(template=campaign.template, contact=sample, to=to)
            if result.ok:
                messages.success(request, _("Test message sent to %(to)s.") % {"to": to})
            else:
                messages.error(
                    request,
                    _("The test message was not sent: %(error)s") % {"error": result.error},
                )
            return back_to_object(self, campaign)
        effects = []
        if not refusals:
            effects.append(
                _(
                    "The template “%(template)s”, rendered for the contact %(contact)s, is sent "
                    "now to %(to)s with “[TEST]” before its subject. No contact receives it."
                )
                % {"template": campaign.template, "contact": sample.external_id, "to": to}
            )
        return confirmation_page(
            self,
            request,
            campaign,
            title=_("Test send of “%(name)s”") % {"name": campaign.name},
            effects=effects,
            refusals=refusals,
            confirm_label=_("Send the test"),
        )

    def _state_change(self, request, object_id, *, service: str, title, effect, done, label):
        from activation.journeys import services as journey_services

        campaign = self._campaign(object_id)
        if confirmed(request):
            count = getattr(journey_services, service)(
                campaign=campaign, now=timezone.now(), user=request.user
            )
            messages.success(request, done % {"name": campaign.name, "n": count_text(count)})
            return back_to_object(self, campaign)
        return confirmation_page(
            self,
            request,
            campaign,
            title=title % {"name": campaign.name},
            effects=[effect],
            confirm_label=label,
            danger=service == "campaign_cancel",
        )

    @action(
        description=_("Pause"),
        permissions=["change"],
        url_path="pause",
        icon="pause",
    )
    def pause_button(self, request, object_id):
        return self._state_change(
            request,
            object_id,
            service="campaign_pause",
            title=_("Pause “%(name)s”"),
            effect=_(
                "No scheduled run fires, no trigger enrols, workflows wait, and messages "
                "still waiting in the outbox are held until you resume."
            ),
            done=_("“%(name)s” is paused: %(n)s waiting message(s) held."),
            label=_("Yes, pause it"),
        )

    @action(
        description=_("Resume"),
        permissions=["change"],
        url_path="resume",
        icon="play_arrow",
    )
    def resume_button(self, request, object_id):
        return self._state_change(
            request,
            object_id,
            service="campaign_resume",
            title=_("Resume “%(name)s”"),
            effect=_(
                "Schedules, triggers and workflows run again; held messages get their due "
                "time back (those already due are sent at once)."
            ),
            done=_("“%(name)s” is active again: %(n)s held message(s) released."),
            label=_("Yes, resume it"),
        )

    @action(
        description=_("Cancel"),
        permissions=["change"],
        url_path="cancel",
        icon="cancel",
    )
    def cancel_button(self, request, object_id):
        return self._state_change(
            request,
            object_id,
            service="campaign_cancel",
            title=_("Cancel “%(name)s”"),
            effect=_(
                "For good: schedules stop, workflow enrolments end and every message not "
                "yet sent is withdrawn. The campaign is archived."
            ),
            done=_("“%(name)s” is cancelled: %(n)s message(s) withdrawn."),
            label=_("Yes, cancel it"),
        )

    @admin.action(
        description=_("Dry run: show who would get the message, and why not"),
        permissions=["view"],
    )
    def dry_run(self, request, queryset):
        for campaign in queryset:
            run = services.campaign_run_launch(campaign=campaign, now=timezone.now(), dry_run=True)
            url = reverse("admin:activation_campaignrun_change", args=[run.pk])
            messages.info(
                request,
                format_html(
                    '{}: <a href="{}">{}</a>',
                    campaign.name,
                    url,
                    _("%(eligible)s of %(audience)s contacts would receive it")
                    % {"eligible": run.counts["eligible"], "audience": run.audience_size},
                ),
            )
            for where, names in run.report.get("unknown_variables", {}).items():
                messages.warning(
                    request,
                    _(
                        "%(name)s: the template “%(template)s” (%(where)s) uses unknown "
                        "variables, which would render blank: %(names)s."
                    )
                    % {
                        "name": campaign.name,
                        "template": campaign.template,
                        "where": where,
                        "names": ", ".join(names),
                    },
                )

    @admin.action(description=_("Launch now"), permissions=["launch"])
    def launch(self, request, queryset):
        from activation.journeys.services import campaign_launch

        for campaign in queryset:
            try:
                campaign_launch(
                    campaign=campaign, user=request.user, now=timezone.now(), background=True
                )
            except ValidationError as exc:
                messages.error(request, f"{campaign.name}: " + "; ".join(exc.messages))
                continue
            messages.success(
                request,
                _("“%(name)s” is being launched; follow it in Campaign runs.")
                % {"name": campaign.name},
            )


def _launch_effect(campaign: Campaign, report: services.EligibilityReport) -> str:
    """ "Send to 12 430 contacts — 1 204 excluded: no consent (980), capped (224)" from the
    eligibility report (the dry run's numbers, computed now)."""
    labels = dict(SkipReason.choices)
    excluded = sum(n for r, n in report.by_reason.items() if r != SkipReason.QUIET_HOURS)
    parts = [
        f"{labels.get(reason, reason).lower()} ({count_text(n)})"
        for reason, n in report.by_reason.items()
        if n and reason != SkipReason.QUIET_HOURS
    ]
    text = _("Send to %(eligible)s contacts of %(audience)s") % {
        "eligible": count_text(report.eligible),
        "audience": count_text(report.audience),
    }
    if excluded:
        text += " — " + _("%(n)s excluded: %(reasons)s") % {
            "n": count_text(excluded),
            "reasons": ", ".join(parts),
        }
    quiet = report.by_reason.get(SkipReason.QUIET_HOURS, 0)
    if quiet and report.deferred:
        text += " — " + _("%(n)s held until their quiet hours end") % {"n": count_text(quiet)}
    elif quiet:
        text += " — " + _("%(n)s skipped: quiet hours") % {"n": count_text(quiet)}
    return text + "."


def _reason_rows(report: services.EligibilityReport) -> list[tuple[str, str]]:
    labels = dict(SkipReason.choices)
    rows = [
        (_("Audience"), count_text(report.audience)),
        (_("Would receive it"), count_text(report.eligible)),
    ]
    rows += [(labels.get(r, r), count_text(n)) for r, n in report.by_reason.items() if n]
    return rows


def progress_bar(counts: dict[str, int]) -> str:
    total = sum(counts.values()) or 1
    done = sum(counts.get(s, 0) for s in ("sent", "failed", "skipped", "cancelled"))
    percent = round(100 * done / total)
    return format_html(
        '<div style="width:12em;background:#eee;border-radius:3px">'
        '<div style="width:{}%;background:#417690;color:#fff;padding:0 .3em;'
        'border-radius:3px;white-space:nowrap">{}%</div></div>',
        percent,
        percent,
    )


@admin.register(CampaignRun)
class CampaignRunAdmin(unfold_admin.ModelAdmin):
    list_display = (
        "__str__",
        "status",
        "created_at",
        "audience_size",
        "progress",
        "sent",
        "failed",
    )
    list_filter = ("status", "dry_run", "campaign__channel")
    search_fields = ("campaign__name",)
    list_select_related = ("campaign",)
    readonly_fields = (
        "report_link",
        "campaign",
        "status",
        "dry_run",
        "created_at",
        "started_at",
        "finished_at",
        "audience_size",
        "progress",
        "state_table",
        "reason_table",
        "samples",
        "unknown_variables",
    )
    exclude = ("counts", "report")
    actions = ["retry_failed", "cancel"]

    @admin.display(description=_("report"))
    def report_link(self, obj):
        return _report_link(obj, "admin:activation_campaignrun_report")

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path(
                "<int:pk>/report/",
                wrap(report_views.run_report_page),
                name="activation_campaignrun_report",
            ),
            path(
                "<int:pk>/report.csv",
                wrap(report_views.run_report_csv),
                name="activation_campaignrun_report_csv",
            ),
            *super().get_urls(),
        ]

    def _states(self, obj) -> dict[str, int]:
        if obj.status == RunStatus.SENDING:
            return run_progress(obj)
        return obj.counts.get("by_state", {})

    @admin.display(description=_("progress"))
    def progress(self, obj):
        if obj.dry_run:
            return "—"
        return progress_bar(self._states(obj))

    @admin.display(description=_("sent"))
    def sent(self, obj):
        return self._states(obj).get(OutboxState.SENT, 0)

    @admin.display(description=_("failed"))
    def failed(self, obj):
        return self._states(obj).get(OutboxState.FAILED, 0)

    @admin.display(description=_("messages by state"))
    def state_table(self, obj):
        if obj.dry_run:
            return format_html("{}: {}", _("Would receive"), obj.counts.get("eligible", 0))
        labels = dict(OutboxState.choices)
        rows = [(labels.get(k, k), v) for k, v in self._states(obj).items() if v]
        return _table(rows)

    @admin.display(description=_("not sent, by reason"))
    def reason_table(self, obj):
        reasons = obj.counts.get("by_reason", {}) if obj.dry_run else run_reason_counts(obj)
        labels = dict(SkipReason.choices)
        return _table([(labels.get(k, k), v) for k, v in reasons.items()])

    @admin.display(description=_("samples per reason"))
    def samples(self, obj):
        labels = dict(SkipReason.choices)
        rows = []
        for reason, contacts in obj.report.get("samples", {}).items():
            ids = ", ".join(c.get("external_id", str(c.get("id"))) for c in contacts)
            rows.append((labels.get(reason, reason), ids))
        return _table(rows)

    @admin.display(description=_("unknown template variables (rendered blank)"))
    def unknown_variables(self, obj):
        found = obj.report.get("unknown_variables", {})
        return _table([(where, ", ".join(names)) for where, names in found.items()])

    def has_add_permission(self, request):
        return False

    @admin.action(description=_("Retry failed messages"), permissions=["change"])
    def retry_failed(self, request, queryset):
        count = services.outbox_retry_failed(
            messages=OutboxMessage.objects.filter(run__in=queryset), now=timezone.now()
        )
        _retry_message(request, count)
        for channel in set(queryset.values_list("campaign__channel", flat=True)):
            services.outbox_delivery_start(channel=channel, tasks=1)

    @admin.action(
        description=_("Cancel (messages not yet sent are not sent)"), permissions=["change"]
    )
    def cancel(self, request, queryset):
        total = sum(
            services.campaign_run_cancel(run=run, now=timezone.now())
            for run in queryset.exclude(status__in=[*FINISHED_RUN_STATES, RunStatus.DRY_RUN])
        )
        messages.success(
            request,
            ngettext("%(n)s message cancelled.", "%(n)s messages cancelled.", total) % {"n": total},
        )


def _report_link(obj, url_name: str) -> str:
    """A link to the report of a saved campaign or run ("—" on the add form)."""
    if obj is None or obj.pk is None:
        return "—"
    return format_html(
        '<a class="cible-button" id="report-link" href="{}">{}</a>',
        reverse(url_name, args=[obj.pk]),
        _("Open the report"),
    )


def _table(rows) -> str:
    if not rows:
        return "—"
    body = format_html(
        "".join("<tr><td>{}</td><td style='text-align:right'>{}</td></tr>" for _ in rows),
        *[value for row in rows for value in row],
    )
    return format_html("<table>{}</table>", body)


def _retry_message(request, count: int) -> None:
    messages.success(
        request,
        ngettext("%(n)s failed message queued again.", "%(n)s failed messages queued again.", count)
        % {"n": count},
    )


class DeliveryAttemptInline(unfold_admin.TabularInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    readonly_fields = ("attempt", "at", "outcome", "provider_message_id", "error")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(OutboxMessage)
class OutboxMessageAdmin(unfold_admin.ModelAdmin):
    list_display = (
        "id",
        "run",
        "contact",
        "channel",
        "variant",
        "state",
        "skip_reason",
        "attempts",
        "next_attempt_at",
        "sent_at",
    )
    list_filter = ("state", "channel", "skip_reason", "run__campaign")
    search_fields = ("contact__external_id", "contact__email", "provider_message_id", "message_id")
    list_select_related = ("run__campaign", "contact")
    raw_id_fields = ("run", "contact")
    show_full_result_count = False
    readonly_fields = ["sent_content", "engagement", *(f.name for f in OutboxMessage._meta.fields)]
    inlines = [DeliveryAttemptInline]

    @admin.display(description=_("what was sent"))
    def sent_content(self, obj):
        if obj is None or obj.pk is None:
            return "—"
        content = message_sent_content(obj)
        return render_to_string(
            "admin/activation/outboxmessage/sent_content.html", {"content": content, "message": obj}
        )

    @admin.display(description=_("opens and clicks"))
    def engagement(self, obj):
        if obj is None or obj.pk is None:
            return "—"
        rows = []
        for event in message_engagement(obj):
            props = event.properties if isinstance(event.properties, dict) else {}
            if event.type == "email_open":
                what = _("machine open") if props.get("machine_open") else pgettext("email event", "open")
            else:
                what = format_html("{} {}", _("click on"), props.get("url", ""))
            rows.append((formats.localize(timezone.localtime(event.occurred_at)), what))
        return _table(rows)

    actions = ["retry_failed"]

    def has_add_permission(self, request):
        return False

    # --- embedded mode: the mail sink ("Sent messages") -------------------------------------

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("sent-mail/", view(self.mail_sink_view), name="activation_mail_sink"),
            path(
                "sent-mail/<str:name>/",
                view(self.mail_sink_message_view),
                name="activation_mail_sink_message",
            ),
        ] + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        extra = {"mail_sink": mail_sink_directory() is not None, **(extra_context or {})}
        return super().changelist_view(request, extra_context=extra)

    def _mail_sink_context(self, request, title) -> dict:
        # Staff with view permission on the outbox; only when mail is captured to files.
        if not self.has_view_permission(request):
            raise PermissionDenied
        if mail_sink_directory() is None:
            raise Http404(_("Email is not captured to files here (EMAIL_URL is not filemail://)."))
        return {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": title,
            "folder": mail_sink_directory(),
        }

    def mail_sink_view(self, request):
        context = self._mail_sink_context(request, _("Sent messages (mail sink)"))
        listed, total = mail_sink_messages()
        context.update(sink_messages=listed, total=total)
        return TemplateResponse(request, "admin/activation/outboxmessage/mail_sink.html", context)

    def mail_sink_message_view(self, request, name: str):
        context = self._mail_sink_context(request, _("Sent message"))
        message = mail_sink_message(name)
        if message is None:
            raise Http404(_("No such message in the mail sink."))
        if request.GET.get("download"):
            response = HttpResponse(mail_sink_file(name), content_type="message/rfc822")
            response["Content-Disposition"] = f'attachment; filename="{name}"'
            return response
        html = message.get_body(("html",))
        text = message.get_body(("plain",))
        context.update(
            name=name,
            headers=[(k, str(message.get(k, ""))) for k in ("From", "To", "Date", "Subject")],
            extra_headers=[
                (k, str(v))
                for k, v in message.items()
                if k not in ("From", "To", "Date", "Subject", "Content-Type")
            ],
            html=html.get_content() if html is not None else "",
            text=text.get_content() if text is not None else "",
        )
        return TemplateResponse(
            request, "admin/activation/outboxmessage/mail_sink_message.html", context
        )

    @admin.action(description=_("Retry failed messages"), permissions=["change"])
    def retry_failed(self, request, queryset):
        count = services.outbox_retry_failed(messages=queryset, now=timezone.now())
        _retry_message(request, count)
        for channel in set(queryset.values_list("channel", flat=True)):
            services.outbox_delivery_start(channel=channel, tasks=1)


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(unfold_admin.ModelAdmin):
    """The delivery log is a record of facts: read-only."""

    list_display = ("at", "message", "attempt", "outcome", "provider_message_id", "error")
    list_filter = ("outcome", "message__channel", "message__run__campaign")
    search_fields = ("provider_message_id", "message__contact__email")
    raw_id_fields = ("message",)
    date_hierarchy = "at"
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Attribution)
class AttributionAdmin(unfold_admin.ModelAdmin):
    list_display = ("event", "message", "run", "variant", "value", "attributed_at")
    list_filter = ("run__campaign",)
    raw_id_fields = ("event", "message", "run")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


# --- A contact's story: every message it received (contacts/story.py) -----------------------


def _story_messages(request, contact: Contact) -> dict:
    """The contact's outbox rows newest first, 25 a page (the (contact, created_at) index),
    each with its human and machine opens, clicks and conversions."""
    page = story_page(contact_messages(contact.pk), page=story_page_number(request))
    rows = page["rows"]
    engagement = contact_message_engagement(
        contact_id=contact.pk,
        message_ids=[m.pk for m in rows],
        since=min((m.created_at for m in rows), default=timezone.now()),
    )
    page["rows"] = [{"message": m, **engagement[m.pk]} for m in rows]
    return {"messages_page": page}


story_tab_register(
    StoryTab(
        key="messages",
        title=_("Messages"),
        template="admin/activation/story_messages.html",
        permission="activation.view_outboxmessage",
        context=_story_messages,
        order=70,
    )
)
