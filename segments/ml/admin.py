"""Admin: cluster models (configure, name clusters, train), versions (charts, explanations,
one-click rule segments, activation), training runs and drift reports (read-only)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import NoReverseMatch, path, reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST
from unfold import admin as unfold_admin
from unfold.decorators import action
from unfold.widgets import UnfoldAdminCheckboxSelectMultipleWidget

from contacts.story import StoryTab, story_tab_register
from ops.confirm import back_to_object, confirmation_page, confirmed, count_text, object_or_404
from segments.ml.catalogue import default_feature_names
from segments.ml.models import (
    ClusterLabel,
    ClusterModel,
    ClusterModelVersion,
    DriftReport,
    TrainingRun,
)
from segments.ml.selectors import cluster_model_identifier


class ClusterLabelInline(unfold_admin.TabularInline):
    model = ClusterLabel
    extra = 0
    fields = ("stable_id", "name")


def _feature_choices() -> list[tuple[str, str]]:
    """Each catalogue feature as a checkbox: its name and, in words, what a high and a low
    value mean."""
    from segments.ml.catalogue import FEATURES

    return [
        (
            f.name,
            format_html(
                '<strong>{}</strong> <span class="help">— {}</span>',
                capfirst(f.label),
                _("high: %(high)s; low: %(low)s") % {"high": f.high, "low": f.low},
            ),
        )
        for f in FEATURES
    ]


class ClusterModelForm(forms.ModelForm):
    """A cluster model for people: a name (its identifier for segment rules is derived from it,
    unique, and may be typed instead when creating), and the features picked as checkboxes,
    each with what it means."""

    features = forms.MultipleChoiceField(
        label=_("features"),
        choices=_feature_choices,
        widget=UnfoldAdminCheckboxSelectMultipleWidget,
        help_text=_("The behaviours the clusters are built on."),
        error_messages={
            "required": _("Pick at least one feature."),
            "invalid_choice": _("Unknown feature: %(value)s. Pick features from the list."),
        },
    )

    class Meta:
        model = ClusterModel
        fields = (
            "title",
            "name",
            "description",
            "features",
            "algorithm",
            "k",
            "auto_k_min",
            "auto_k_max",
            "imputer",
            "reduction",
            "sample_size",
            "seed",
            "dbscan_eps",
            "dbscan_min_samples",
            "auto_retrain",
        )
        error_messages = {
            "name": {
                "unique": _("Another cluster model already has this identifier; pick another."),
                "invalid": _(
                    "The identifier may hold only letters, digits, hyphens and underscores."
                ),
            },
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["title"].required = True
        self.fields["title"].error_messages["required"] = _("Give the model a name.")
        if "name" in self.fields:
            self.fields["name"].required = False
        if not self.is_bound:
            self.initial["features"] = list(
                self.instance.features if self.instance.pk else default_feature_names()
            )

    def clean_features(self):
        from segments.ml.catalogue import FEATURE_NAMES

        picked = set(self.cleaned_data["features"])
        return [name for name in FEATURE_NAMES if name in picked]  # the catalogue's order

    def clean(self):
        data = super().clean()
        if "name" in self.fields and not data.get("name") and data.get("title"):
            data["name"] = cluster_model_identifier(title=data["title"])
            if not data["name"]:
                self.add_error(
                    "name", _("The name gives no identifier: type one (letters and digits).")
                )
        return data


class TrainingRunInline(unfold_admin.TabularInline):
    """The model's training runs (queued, running, succeeded or failed, and why), newest first."""

    model = TrainingRun
    fields = ("started_at", "status", "trigger", "requested_by", "finished_at", "message")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    ordering = ("-started_at", "-id")
    verbose_name_plural = _("Training runs")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ClusterModel)
class ClusterModelAdmin(unfold_admin.ModelAdmin):
    form = ClusterModelForm
    list_display = (
        "__str__",
        "name",
        "algorithm",
        "k",
        "active_version_number",
        "last_training",
        "auto_retrain",
    )
    search_fields = ("title", "name")
    inlines = [ClusterLabelInline, TrainingRunInline]
    actions = ["train_now"]
    actions_detail = ["train_button"]
    readonly_fields = ("training_progress",)
    change_form_after_template = "admin/segments_ml/clustermodel/training_progress.html"

    @admin.display(description=_("training"))
    def training_progress(self, obj: ClusterModel) -> str:
        """The latest training's state as the worker reports it (queued → running →
        succeeded / failed); the page reloads itself while it is queued or running."""
        if obj is None or obj.pk is None:
            return "—"
        run = obj.runs.order_by("-started_at", "-id").first()
        if run is None:
            return _("Never trained.")
        pending = run.status in (TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING)
        return format_html(
            '<span id="training-progress" data-status="{}"{}>{}{}</span>',
            run.status,
            mark_safe(" data-pending") if pending else "",
            "⏳ " if pending else "",
            f"{run.get_status_display()}" + (f" — {run.message}" if run.message else ""),
        )

    @action(
        description=_("Train now"),
        permissions=["change"],
        url_path="train",
        icon="model_training",
    )
    def train_button(self, request: HttpRequest, object_id):
        from segments.ml.services import cluster_model_train_request

        model = object_or_404(ClusterModel, object_id)
        if confirmed(request):
            run = cluster_model_train_request(model=model, user=request.user)
            self.message_user(
                request,
                _("Training of “%(name)s”: %(status)s. This page follows its progress.")
                % {"name": model.name, "status": run.get_status_display()},
                messages.SUCCESS,
            )
            return back_to_object(self, model)
        pending = model.runs.filter(
            status__in=[TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING]
        ).exists()
        return confirmation_page(
            self,
            request,
            model,
            title=_("Train “%(name)s”") % {"name": model.name},
            effects=[
                _(
                    "A worker fits %(k)s clusters on up to %(n)s contacts' features, then "
                    "assigns every eligible contact: the result becomes the model's new active "
                    "version (the current one keeps serving if the training fails)."
                )
                % {
                    "k": model.k or f"{model.auto_k_min}–{model.auto_k_max}",
                    "n": count_text(model.sample_size),
                },
            ],
            refusals=[_("A training of this model is already queued or running.")]
            if pending
            else [],
            confirm_label=_("Yes, train it"),
        )

    def get_readonly_fields(self, request, obj=None):
        # Segment rules name the model by its identifier: it is set once, at creation.
        return (*self.readonly_fields, "name") if obj is not None else self.readonly_fields

    @admin.display(description=_("active version"))
    def active_version_number(self, obj: ClusterModel) -> str:
        version = obj.active_version
        return f"v{version.number}" if version else "—"

    @admin.display(description=_("last training"))
    def last_training(self, obj: ClusterModel) -> str:
        run = obj.runs.order_by("-started_at", "-id").first()
        if run is None:
            return "—"
        if run.status in (TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING):
            return f"⏳ {run.get_status_display()}"
        return f"{run.get_status_display()} — {run.message}"[:200]

    @admin.action(description=_("Train now (in the background)"), permissions=["change"])
    def train_now(self, request: HttpRequest, queryset) -> None:
        from segments.ml.services import cluster_model_train_request

        for model in queryset:
            cluster_model_train_request(model=model, user=request.user)
        self.message_user(
            request,
            _(
                "Training queued for %(n)d model(s): “last training” shows its progress; new "
                "versions appear when they finish."
            )
            % {"n": queryset.count()},
            messages.SUCCESS,
        )


@admin.register(ClusterModelVersion)
class ClusterModelVersionAdmin(unfold_admin.ModelAdmin):
    list_display = ("__str__", "is_active", "trained_at", "trigger", "contacts_assigned")
    list_filter = ("model", "is_active")
    fields = (
        "model",
        "number",
        "is_active",
        "trained_at",
        "trained_by",
        "trigger",
        "reason",
        "sample_size",
        "contacts_assigned",
        "duration_ms",
        "params",
        "metrics",
        "artefact",
    )
    readonly_fields = fields
    actions = ["activate"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_activate_permission(self, request: HttpRequest) -> bool:
        """Versions are read-only; choosing the active one changes the model."""
        return request.user.has_perm("segments_ml.change_clustermodel")

    @admin.action(description=_("Make this version the active one"), permissions=["activate"])
    def activate(self, request: HttpRequest, queryset) -> None:
        from segments.ml.pipeline import TrainingError
        from segments.ml.services import cluster_version_activate

        if queryset.count() != 1:
            self.message_user(request, _("Select exactly one version."), messages.ERROR)
            return
        try:
            version = cluster_version_activate(version=queryset.get())
        except TrainingError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(request, _("%(v)s is now active.") % {"v": version}, messages.SUCCESS)

    def get_urls(self):
        return [
            path(
                "<int:version_id>/segment-from-leaf/<int:leaf>/",
                self.admin_site.admin_view(require_POST(self.segment_from_leaf_view)),
                name="segments_ml_version_segment_from_leaf",
            ),
            *super().get_urls(),
        ]

    def segment_from_leaf_view(self, request: HttpRequest, version_id: int, leaf: int):
        from segments.ml.services import segment_from_surrogate_leaf
        from segments.rules.registry import RuleError

        if not request.user.has_perm("segments.add_segment"):
            raise PermissionDenied
        version = get_object_or_404(ClusterModelVersion, pk=version_id)
        try:
            segment = segment_from_surrogate_leaf(version=version, leaf=leaf)
        except (KeyError, RuleError) as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(
                reverse("admin:segments_ml_clustermodelversion_change", args=[version_id])
            )
        self.message_user(
            request,
            _("Rule segment “%(name)s” created from the tree path; edit it as you like.")
            % {"name": segment.name},
            messages.SUCCESS,
        )
        try:
            target = reverse("admin:segments_segment_change", args=[segment.pk])
        except NoReverseMatch:  # segments' admin not installed: back to the version page
            target = reverse("admin:segments_ml_clustermodelversion_change", args=[version_id])
        return HttpResponseRedirect(target)

    def change_view(self, request: HttpRequest, object_id: str, form_url="", extra_context=None):
        from segments.ml.selectors import version_page_context

        version = self.get_object(request, unquote(object_id))
        if version is None:  # a missing or malformed id: Django's "doesn't exist" redirect
            return super().change_view(request, object_id, form_url, extra_context)
        context = {**(extra_context or {}), **version_page_context(version)}
        return super().change_view(request, object_id, form_url, extra_context=context)


@admin.register(TrainingRun)
class TrainingRunAdmin(unfold_admin.ModelAdmin):
    list_display = ("model", "started_at", "status", "trigger", "reason", "message")
    list_filter = ("model", "status", "trigger")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(DriftReport)
class DriftReportAdmin(unfold_admin.ModelAdmin):
    list_display = (
        "model",
        "version",
        "computed_at",
        "max_psi",
        "max_share_shift",
        "drifted",
        "action",
    )
    list_filter = ("model", "drifted")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


# --- A contact's story: its clusters and scores (contacts/story.py) --------------------------


def _story_clusters(request, contact) -> dict:
    """The cluster each active model version gave the contact (the (contact, version) unique
    index), with the marketer's name of that cluster, and the contact's predictive scores
    with their ranks (the score card of the contact page, when the user may see scores)."""
    from segments.ml.models import ClusterAssignment, ClusterLabel

    versions = {
        v.pk: v
        for v in ClusterModelVersion.objects.filter(is_active=True).select_related("model")[:50]
    }
    assigned = dict(
        ClusterAssignment.objects.filter(
            contact_id=contact.pk, version_id__in=list(versions)
        ).values_list("version_id", "stable_id")
    )
    labels = {
        (model_id, stable_id): name
        for model_id, stable_id, name in ClusterLabel.objects.filter(
            model_id__in=[v.model_id for v in versions.values()]
        ).values_list("model_id", "stable_id", "name")
    }
    rows = [
        {
            "version": version,
            "stable_id": assigned.get(pk),
            "label": labels.get((version.model_id, assigned.get(pk)), ""),
        }
        for pk, version in sorted(versions.items(), key=lambda item: item[1].model.name)
    ]
    card = None
    if request.user.has_perm("scoring.view_contactscore"):
        from segments.scoring.selectors import contact_score_card

        card = contact_score_card(contact)
    return {"cluster_rows": rows, "score_card": card}


story_tab_register(
    StoryTab(
        key="clusters",
        title=_("Clusters and scores"),
        template="admin/segments_ml/story_clusters.html",
        permission="segments_ml.view_clustermodel",
        context=_story_clusters,
        order=40,
    )
)
