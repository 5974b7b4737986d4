"""Admin: model versions (with their report page), contact scores, cohorts (custom URLs), and
the scores card on the contact's own change page (an inline added to contacts' ContactAdmin)."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from contacts.admin import ContactAdmin
from segments.scoring import views
from segments.scoring.models import ContactScore, ScoringModel
from segments.scoring.selectors import contact_score_card


@admin.register(ScoringModel)
class ScoringModelAdmin(admin.ModelAdmin):
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
            path(
                "<int:model_id>/report/",
                wrap(views.model_report),
                name="scoring_scoringmodel_report",
            ),
            path("cohorts/", wrap(views.cohorts), name="scoring_cohorts"),
            path("cohorts.csv", wrap(views.cohorts_csv), name="scoring_cohorts_csv"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        model = self.get_object(request, unquote(object_id))
        if model is None:  # a missing or malformed id: Django's "doesn't exist" redirect
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        return views.model_report(request, model.pk)


@admin.register(ContactScore)
class ContactScoreAdmin(admin.ModelAdmin):
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


class ContactScoresInline(admin.StackedInline):
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
