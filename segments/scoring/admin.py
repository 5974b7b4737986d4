"""Admin: model versions (with their report page), contact scores, cohorts (custom URLs), and
the scores card on the contact's own change page (an inline added to contacts' ContactAdmin)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseRedirect, JsonResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST
from unfold import admin as unfold_admin

from contacts.admin import ContactAdmin
from segments.scoring import views
from segments.scoring.jobs import scoring_job_request
from segments.scoring.models import ContactScore, ModelKind, ScoringJob, ScoringModel
from segments.scoring.selectors import (
    contact_score_card,
    scoring_jobs_pending_exist,
    scoring_jobs_recent,
)

# Training a model is an Analyst's act (ops/roles.py gives Analysts "add" on scoring models).
TRAIN_PERMISSION = "scoring.add_scoringjob"


@admin.register(ScoringModel)
class ScoringModelAdmin(unfold_admin.ModelAdmin):
    """Model versions are facts produced by fits: read-only; the change page is the report."""

    list_display = (
        "__str__",
        "kind",
        "active",
        "created_at",
        "reference_date",
        "auc",
        "brier",
        "training_rows",
        "scored_contacts",
        "report_link",
    )
    list_filter = ("kind", "active")
    change_list_template = "scoring/scoringmodel_changelist.html"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description=_("report"))
    def report_link(self, obj: ScoringModel) -> str:
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:scoring_scoringmodel_report", args=[obj.pk]),
            _("open"),
        )

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("train/", wrap(require_POST(self.train_view)), name="scoring_train"),
            path("train/status/", wrap(self.train_status_view), name="scoring_train_status"),
            path(
                "<int:model_id>/report/",
                wrap(views.model_report),
                name="scoring_scoringmodel_report",
            ),
            path("cohorts/", wrap(views.cohorts), name="scoring_cohorts"),
            path("cohorts.csv", wrap(views.cohorts_csv), name="scoring_cohorts_csv"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        context = {
            **(extra_context or {}),
            "training_jobs": scoring_jobs_recent(),
            "training_pending": scoring_jobs_pending_exist(),
            "can_train": request.user.has_perm(TRAIN_PERMISSION),
            "train_kinds": ModelKind.choices,
        }
        return super().changelist_view(request, context)

    def train_view(self, request: HttpRequest) -> HttpResponseRedirect:
        """POST kind=clv|churn|purchase → queue its training (Analyst: ``add_scoringjob``)."""
        if not request.user.has_perm(TRAIN_PERMISSION):
            raise PermissionDenied
        kind = request.POST.get("kind")
        if kind not in ModelKind.values:
            self.message_user(request, gettext("Unknown model kind."), messages.ERROR)
        else:
            job = scoring_job_request(kind=kind, user=request.user)
            self.message_user(
                request,
                gettext(
                    "Training of “%(kind)s” queued: the state below updates by itself and the "
                    "new version appears in the list when it has finished."
                )
                % {"kind": job.get_kind_display()},
                messages.SUCCESS,
            )
        return HttpResponseRedirect(reverse("admin:scoring_scoringmodel_changelist"))

    def train_status_view(self, request: HttpRequest) -> JsonResponse:
        """GET → the latest training jobs (polled by the list page while one is pending)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        return JsonResponse(
            {
                "pending": scoring_jobs_pending_exist(),
                "jobs": [
                    {"id": j.pk, "kind": j.kind, "status": j.status, "message": j.message}
                    for j in scoring_jobs_recent()
                ],
            }
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        model = self.get_object(request, unquote(object_id))
        if model is None:  # a missing or malformed id: Django's "doesn't exist" redirect
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        return views.model_report(request, model.pk)


@admin.register(ScoringJob)
class ScoringJobAdmin(unfold_admin.ModelAdmin):
    """Training jobs are facts recorded by workers: read-only history."""

    list_display = ("kind", "status", "requested_by", "requested_at", "finished_at", "message")
    list_filter = ("kind", "status")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ContactScore)
class ContactScoreAdmin(unfold_admin.ModelAdmin):
    list_display = (
        "contact_link",
        "p_alive",
        "expected_purchases",
        "clv",
        "churn",
        "purchase_30d",
        "updated_at",
    )
    search_fields = ("contact__external_id", "contact__email")
    list_select_related = ("contact",)
    raw_id_fields = ("contact",)
    show_full_result_count = False
    readonly_fields = (
        "contact_link",
        "p_alive",
        "expected_purchases",
        "clv",
        "churn",
        "purchase_30d",
        "clv_top",
        "churn_top",
        "clv_model",
        "churn_model",
        "purchase_model",
        "updated_at",
    )
    fields = readonly_fields

    @admin.display(description=_("contact"), ordering="contact__external_id")
    def contact_link(self, obj: ContactScore) -> str:
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:contacts_contact_change", args=[obj.contact_id]),
            obj.contact,
        )

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ContactScoresInline(unfold_admin.StackedInline):
    """Read-only score card on the contact's change page: every stored score with its top rank,
    the model versions, when it was scored and the contact's cohorts; "not scored yet" when the
    contact has no score row. Shown to users who may view contact scores."""

    model = ContactScore
    fk_name = "contact"
    template = "scoring/contact_scores_inline.html"
    verbose_name = _("predictive scores")
    verbose_name_plural = _("Predictive scores")
    extra = 0
    max_num = 0
    can_delete = False
    fields = ()

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        # A fresh class per call: the card belongs to this request's contact only.
        formset.score_card = contact_score_card(obj) if obj is not None else None
        return formset

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# contacts sits below scoring and cannot know about it: scoring adds its card to the contact
# page the way Django admin is extended, by appending an inline to the registered ModelAdmin.
if ContactScoresInline not in ContactAdmin.inlines:
    ContactAdmin.inlines = [*ContactAdmin.inlines, ContactScoresInline]
