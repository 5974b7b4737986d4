"""Admin: experiments with their variants and decision log, links to the results page."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from unfold import admin as unfold_admin
from unfold.decorators import action

from contacts.story import StoryTab, story_page, story_page_number, story_tab_register
from experiments import services
from experiments.integration import campaign_audience_size
from experiments.models import Assignment, DecisionLog, Experiment, ExperimentStatus, Variant
from experiments.planning import audience_warning, plan_sample
from experiments.wording import number
from ops.confirm import back_to_object, confirmation_page, confirmed, object_or_404, object_pk


class VariantForm(forms.ModelForm):
    """A variant's overrides are checked against the experiment's campaign (channel of the
    template, content for the channel, send time outside quiet hours, template syntax)."""

    class Meta:
        model = Variant
        fields = ("subject", "content", "template", "channel", "send_time")
        widgets = {"content": forms.Textarea(attrs={"rows": 3, "cols": 40})}

    def clean(self):
        data = super().clean()
        # In the experiment's page, "experiment" is the edited (unsaved) experiment.
        experiment = data.get("experiment") or getattr(self.instance, "experiment", None)
        probe = Variant(
            subject=data.get("subject") or "",
            content=data.get("content") or "",
            template=data.get("template"),
            channel=data.get("channel") or "",
            send_time=data.get("send_time"),
        )
        campaign = experiment.campaign if experiment is not None else None
        problems = services.variant_problems(variant=probe, campaign=campaign)
        if problems:
            raise ValidationError(problems)
        return data


class VariantInline(unfold_admin.TabularInline):
    model = Variant
    form = VariantForm
    extra = 0
    fields = (
        "position",
        "key",
        "name",
        "weight",
        "is_control",
        "is_holdout",
        "subject",
        "content",
        "template",
        "channel",
        "send_time",
        "targeting_description",
    )

    def has_change_permission(self, request, obj=None):
        # Weights and keys are frozen once contacts have been assigned.
        if obj is not None and obj.status != ExperimentStatus.DRAFT:
            return False
        return super().has_change_permission(request, obj)

    def has_add_permission(self, request, obj=None):
        if obj is not None and obj.status != ExperimentStatus.DRAFT:
            return False
        return super().has_add_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.status != ExperimentStatus.DRAFT:
            return False
        return super().has_delete_permission(request, obj)


class DecisionInline(unfold_admin.TabularInline):
    model = DecisionLog
    extra = 0
    can_delete = False
    fields = ("decided_at", "kind", "variant", "reason", "decided_by")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Experiment)
class ExperimentAdmin(unfold_admin.ModelAdmin):
    list_display = ("name", "kind", "status", "primary_metric", "started_at", "results_link")
    list_filter = ("status", "kind", "primary_metric")
    search_fields = ("name",)
    readonly_fields = (
        "status",
        "started_at",
        "decided_at",
        "winner",
        "results_link",
        "salt",
        "sample_size_check",
    )
    inlines = [VariantInline, DecisionInline]
    actions = ["start_experiments"]
    fieldsets = (
        (None, {"fields": ("name", "kind", "campaign", "status", "results_link", "salt")}),
        (
            _("Metrics"),
            {
                "fields": (
                    "primary_metric",
                    "conversion_event_type",
                    "conversion_window_days",
                    "guardrail_unsubscribe",
                    "guardrail_complaint",
                )
            },
        ),
        (
            _("Statistics"),
            {
                "fields": (
                    "alpha",
                    "power",
                    "minimum_detectable_effect",
                    "baseline_rate",
                    "sequential",
                    "msprt_tau2",
                    "sample_size_check",
                )
            },
        ),
        (
            _("Auto-winner"),
            {
                "fields": (
                    "auto_winner",
                    "sample_share",
                    "decision_wait_hours",
                    "fallback",
                    "winner",
                    "decided_at",
                )
            },
        ),
        (_("Dates"), {"fields": ("started_at",)}),
    )

    @admin.display(description=_("Results"))
    def results_link(self, obj: Experiment) -> str:
        if obj.pk is None:
            return "—"
        return format_html(
            '<a href="{}">{}</a>', reverse("experiments:results", args=[obj.pk]), _("Open results")
        )

    @admin.display(description=_("Sample size"))
    def sample_size_check(self, obj: Experiment) -> str:
        """Contacts needed per variant, and a warning if the campaign's audience is too small."""
        if obj.pk is None or obj.baseline_rate is None:
            return _("Set an expected baseline rate to plan the sample size.")
        variants = list(obj.variants.all())
        treatments = sum(1 for v in variants if not v.is_control and not v.is_holdout)
        try:
            plan = plan_sample(
                baseline_rate=obj.baseline_rate,
                relative_mde=obj.minimum_detectable_effect,
                alpha=obj.alpha,
                power=obj.power,
                treatments=max(treatments, 1),
                weights=[v.weight for v in variants] or None,
                sample_share=obj.effective_sample_share,
            )
        except ValueError as exc:
            return str(exc)
        text = _("%(per)s contacts per variant; audience needed: %(audience)s.") % {
            "per": number(plan.per_variant),
            "audience": number(plan.audience_needed),
        }
        audience = campaign_audience_size(obj)
        warning = (
            audience_warning(experiment=obj, audience_size=audience)
            if audience is not None
            else None
        )
        return f"{text} {warning}" if warning else text

    actions_detail = ["start_button", "stop_button", "send_winner_button"]

    def has_launch_permission(self, request, obj=None) -> bool:
        """Sending the winner to the remainder sends messages: it is a launch."""
        return request.user.has_perm("activation.launch_campaign")

    def _experiment(self, object_id) -> Experiment:
        return object_or_404(Experiment, object_id)

    @action(
        description=_("Start"),
        permissions=["change"],
        url_path="start",
        icon="play_arrow",
    )
    def start_button(self, request, object_id):
        experiment = self._experiment(object_id)
        if confirmed(request):
            try:
                services.experiment_start(experiment=experiment)
            except services.ExperimentError as exc:
                messages.error(request, str(exc))
            else:
                messages.success(request, _("%(name)s started.") % {"name": experiment})
            return back_to_object(self, experiment)
        refusals = []
        if experiment.status != ExperimentStatus.DRAFT:
            refusals.append(_("Only a draft experiment can be started."))
        else:
            refusals += services.experiment_validate(experiment=experiment)
        variants = list(experiment.variants.order_by("position", "pk"))
        return confirmation_page(
            self,
            request,
            experiment,
            title=_("Start “%(name)s”") % {"name": experiment},
            effects=[
                _(
                    "From now on, each contact the campaign “%(campaign)s” reaches gets one of "
                    "%(n)s variants, and keeps it for the life of the experiment."
                )
                % {"campaign": experiment.campaign, "n": len(variants)}
            ],
            details=[(f"{v.key} — {v.name}", f"{v.weight}") for v in variants],
            refusals=refusals,
            confirm_label=_("Yes, start it"),
        )

    @action(
        description=_("Stop"),
        permissions=["change"],
        url_path="stop",
        icon="stop",
    )
    def stop_button(self, request, object_id):
        experiment = self._experiment(object_id)
        if confirmed(request):
            try:
                services.experiment_stop(experiment=experiment)
            except services.ExperimentError as exc:
                messages.error(request, str(exc))
            else:
                messages.success(request, _("%(name)s stopped.") % {"name": experiment})
            return back_to_object(self, experiment)
        running = experiment.status in (
            ExperimentStatus.RUNNING,
            ExperimentStatus.AWAITING_DECISION,
        )
        return confirmation_page(
            self,
            request,
            experiment,
            title=_("Stop “%(name)s”") % {"name": experiment},
            effects=[
                _(
                    "The experiment ends without sending any variant to the remainder: it is "
                    "marked completed and its results stay readable."
                )
            ],
            refusals=[] if running else [_("Only a running experiment can be stopped.")],
            confirm_label=_("Yes, stop it"),
            danger=True,
        )

    @action(
        description=_("Send the winner"),
        permissions=["launch"],
        url_path="send-winner",
        icon="emoji_events",
    )
    def send_winner_button(self, request, object_id):
        experiment = self._experiment(object_id)
        winner, reason = services.winner_to_send(experiment=experiment)
        if confirmed(request) and winner is not None:
            try:
                services.winner_choose(
                    experiment=experiment, variant=winner, decided_by=request.user.get_username()
                )
            except services.ExperimentError as exc:
                messages.error(request, str(exc))
            else:
                messages.success(
                    request,
                    _("Variant %(key)s will be sent to the remainder.") % {"key": winner.key},
                )
            return back_to_object(self, experiment)
        effects = []
        if winner is not None:
            effects = [
                reason,
                _(
                    "Variant %(key)s (%(name)s) is sent to the contacts of the campaign who "
                    "were not in the test sample."
                )
                % {"key": winner.key, "name": winner.name},
            ]
        return confirmation_page(
            self,
            request,
            experiment,
            title=_("Send the winner of “%(name)s”") % {"name": experiment},
            effects=effects,
            refusals=[] if winner is not None else [reason],
            confirm_label=_("Yes, send the winner"),
        )

    def get_actions_detail(self, request, object_id):
        """The "Send the winner" button says why it cannot be pressed when the experiment is
        not running (the confirmation page gives the statistical reason otherwise)."""
        found = super().get_actions_detail(request, object_id)
        experiment = Experiment.objects.filter(pk=object_pk(object_id)).first()
        if experiment is None:
            return found
        labels = {
            "start_button": experiment.status != ExperimentStatus.DRAFT
            and _("Start (already started)"),
            "stop_button": experiment.status
            not in (ExperimentStatus.RUNNING, ExperimentStatus.AWAITING_DECISION)
            and _("Stop (not running)"),
            "send_winner_button": experiment.status
            not in (ExperimentStatus.RUNNING, ExperimentStatus.AWAITING_DECISION)
            and _("Send the winner (not running)"),
        }
        for found_action in found:
            name = found_action.action_name.rsplit("_experiment_", 1)[-1]
            if labels.get(name):
                found_action.description = labels[name]
        return found

    @admin.action(description=_("Start the selected experiments"), permissions=["change"])
    def start_experiments(self, request, queryset):
        for experiment in queryset:
            try:
                services.experiment_start(experiment=experiment)
            except services.ExperimentError as exc:
                self.message_user(request, f"{experiment}: {exc}", messages.ERROR)
            else:
                self.message_user(request, _("%(name)s started.") % {"name": experiment})


@admin.register(Variant)
class VariantAdmin(unfold_admin.ModelAdmin):
    form = VariantForm
    list_display = ("key", "name", "experiment", "weight", "is_control", "is_holdout")
    list_filter = ("is_control", "is_holdout")
    search_fields = ("key", "name", "experiment__name")
    actions = ["send_to_remainder"]

    def has_launch_permission(self, request) -> bool:
        """Sending the winner to the remainder sends messages: it is a launch."""
        return request.user.has_perm("activation.launch_campaign")

    @admin.action(
        description=_("Send this variant to the remainder (choose the winner)"),
        permissions=["launch"],
    )
    def send_to_remainder(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, _("Select exactly one variant."), messages.ERROR)
            return
        variant = queryset.get()
        try:
            services.winner_choose(
                experiment=variant.experiment,
                variant=variant,
                decided_by=request.user.get_username(),
            )
        except services.ExperimentError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(
                request, _("Variant %(key)s will be sent to the remainder.") % {"key": variant.key}
            )


@admin.register(DecisionLog)
class DecisionLogAdmin(unfold_admin.ModelAdmin):
    list_display = ("experiment", "decided_at", "kind", "variant", "decided_by")
    list_filter = ("kind",)
    readonly_fields = (
        "experiment",
        "decided_at",
        "kind",
        "variant",
        "reason",
        "numbers",
        "decided_by",
    )

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- A contact's story: its experiments and variants (contacts/story.py) ---------------------


def _story_experiments(request, contact) -> dict:
    """The contact's assignments newest first (its contact index), 25 a page, with the
    outcomes recorded for the analysis."""
    assignments = (
        Assignment.objects.filter(contact_id=contact.pk)
        .select_related("experiment", "variant")
        .order_by("-assigned_at", "-id")
    )
    return {"assignments": story_page(assignments, page=story_page_number(request))}


story_tab_register(
    StoryTab(
        key="experiments",
        title=_("Experiments"),
        template="admin/experiments/story_experiments.html",
        permission="experiments.view_assignment",
        context=_story_experiments,
        order=80,
    )
)
