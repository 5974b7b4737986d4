"""Admin: rule builder with live estimate, priority families, size chart, overlap, explain, CSV.

Views here only parse input, call one service or selector and render.
"""

from __future__ import annotations

import csv
from urllib.parse import quote

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import formats, timezone
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from unfold import admin as unfold_admin
from unfold.decorators import action

from config.api_json import json_loads_bounded
from contacts.forms import ContactIdentifierField
from contacts.models import Contact
from contacts.story import StoryTab, story_page, story_page_number, story_tab_register
from ops.confirm import back_to_object, confirmation_page, confirmed, count_text, object_or_404
from segments.dependencies import SegmentSpec, effective_rule, spec_of
from segments.models import (
    ContactFeatures,
    Segment,
    SegmentComputation,
    SegmentFamily,
    SegmentMembership,
)
from segments.rules import RuleError, condition_types, rule_describe, rule_matches_everyone
from segments.selectors import (
    rule_estimate,
    segment_compute_state,
    segment_explain,
    segment_members,
    segment_overlap,
    segment_size_warnings,
    segment_status,
)
from segments.services import (
    EveryContactNotConfirmed,
    segment_compute_request,
    segment_create,
    segment_rule_check,
    segment_update,
    segments_compute,
)


def _whole_or_none(value: object, name: str) -> int | None:
    """A form value sent by the rule builder (text or number) as an id/priority, or None."""
    if value is None or value == "":
        return None
    text = (
        str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    )
    if not text.isdigit() or len(text) > 9:
        raise ValueError(gettext("“%(name)s” must be a whole number.") % {"name": name})
    return int(text)


class RuleJSONField(forms.JSONField):
    """The rule box: JSON nested too deeply (RecursionError in the decoder) or holding
    NaN/Infinity is a form error, like any other invalid JSON."""

    def to_python(self, value):
        if isinstance(value, str) and value not in self.empty_values:
            try:
                json_loads_bounded(value)
            except ValueError as exc:
                raise ValidationError(
                    gettext("Invalid JSON: %(error)s") % {"error": exc}, code="invalid"
                ) from None
        return super().to_python(value)

    def bound_data(self, data, initial):
        try:
            return super().bound_data(data, initial)
        except RecursionError:
            return forms.fields.InvalidJSONInput(data)


class SegmentAdminForm(forms.ModelForm):
    rule = RuleJSONField(
        label=_("Rule (JSON)"),
        widget=forms.Textarea(attrs={"rows": 8, "cols": 90, "class": "vLargeTextField"}),
        help_text=_("Built by the rule builder above; you may also edit the JSON directly."),
    )

    confirm_every_contact = forms.BooleanField(
        label=_("Yes, this segment contains every contact"),
        required=False,
        help_text=_(
            "Needed only when the rule has no restricting condition (e.g. an empty “all of”)."
        ),
    )

    class Meta:
        model = Segment
        fields = ["name", "description", "family", "priority", "is_active", "rule"]

    def clean(self):
        data = super().clean()
        if "rule" not in data or self.errors:
            return data
        family = data.get("family")
        try:
            data["rule"] = segment_rule_check(
                rule=data["rule"],
                name=data.get("name") or "",
                family_id=family.pk if family else None,
                priority=data.get("priority") or 0,
                segment_id=self.instance.pk,
                is_active=data.get("is_active", True),
                every_contact_confirmed=bool(data.get("confirm_every_contact")),
                previous_rule=self.instance.rule if self.instance.pk else None,
            )
        except EveryContactNotConfirmed as exc:
            raise ValidationError(
                {
                    "rule": str(exc),
                    "confirm_every_contact": gettext(
                        "Tick this box to save a segment that contains every contact."
                    ),
                }
            ) from exc
        except RuleError as exc:
            raise ValidationError({"rule": str(exc)}) from exc
        return data


class FamilySegmentInline(unfold_admin.TabularInline):
    model = Segment
    fields = ("name", "priority", "is_active", "size")
    readonly_fields = ("name", "size")
    extra = 0
    can_delete = False
    ordering = ("priority", "id")
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(SegmentFamily)
class SegmentFamilyAdmin(unfold_admin.ModelAdmin):
    list_display = ("name", "description")
    inlines = [FamilySegmentInline]


def _builder_schema() -> dict:
    from django.utils.translation import gettext

    from segments.rules.operators import OP_LABELS, OPERATORS

    types = [
        {"name": t.name, "label": str(t.label), "builder": t.builder} for t in condition_types()
    ]
    schema = {
        "types": types,
        "operators": OPERATORS,
        "op_labels": {k: str(v) for k, v in OP_LABELS.items()},
        "segments": list(Segment.objects.order_by("name").values("id", "name")),
        "labels": {
            "all": gettext("all of"),
            "any": gettext("any of"),
            "none": gettext("none of"),
            "add_condition": gettext("+ condition"),
            "add_group": gettext("+ group"),
            "remove": gettext("remove"),
            "value": gettext("value"),
            "days": gettext("in the last … days (empty: ever)"),
            "where": gettext("where property"),
        },
    }
    try:
        from consent.models import ConsentChannel, Purpose

        schema["purposes"] = list(Purpose.objects.values_list("code", flat=True))
        schema["channels"] = list(ConsentChannel.values)
    except ImportError:  # pragma: no cover - consent is installed in Cible
        pass
    return schema


class ExplainForm(forms.Form):
    contact = ContactIdentifierField()


@admin.register(Segment)
class SegmentAdmin(unfold_admin.ModelAdmin):
    form = SegmentAdminForm
    change_form_template = "admin/segments/segment/change_form.html"
    change_list_template = "admin/segments/segment/change_list.html"
    list_display = (
        "name",
        "family",
        "priority",
        "is_active",
        "size",
        "size_warning",
        "last_computed_at",
        "last_compute_ms",
    )
    list_editable = ("priority", "is_active")
    list_filter = ("family", "is_active", "kind")
    search_fields = ("name", "description")
    ordering = ("family__name", "priority", "id")
    readonly_fields = (
        "rule_text",
        "computation_state",
        "size",
        "last_computed_at",
        "last_compute_ms",
    )
    fieldsets = (
        (None, {"fields": ("name", "description", "family", "priority", "is_active")}),
        (_("Rule"), {"fields": ("rule_text", "rule", "confirm_every_contact")}),
        (
            _("Computation"),
            {"fields": ("computation_state", "size", "last_computed_at", "last_compute_ms")},
        ),
    )
    actions = ["recompute_now"]

    @admin.display(description=_("rule in plain language"))
    def rule_text(self, obj: Segment) -> str:
        return rule_describe(obj.rule) if obj and obj.rule else "—"

    @admin.display(description=_("state"))
    def computation_state(self, obj: Segment) -> str:
        if obj is None or obj.pk is None:
            return "—"
        state = segment_compute_state(obj)
        if state == "failed":
            return format_html(
                '<strong style="color:#b91c1c">{}</strong><br><code>{}</code>',
                gettext("This segment could not be computed (%(at)s):")
                % {"at": obj.compute_failed_at.strftime("%Y-%m-%d %H:%M UTC")},
                obj.compute_error,
            )
        if state == "computing":
            return format_html(
                '<span class="segment-compute-state">{}</span>', gettext("Computing…")
            )
        if state == "never":
            return gettext("Not computed yet.")
        return gettext("Up to date.")

    @admin.display(description=_("warning"))
    def size_warning(self, obj: Segment) -> str:
        state = segment_compute_state(obj)
        if state == "computing":
            return gettext("computing…")
        if state == "failed":
            return format_html(
                '<span style="color:#b91c1c" title="{}">{}</span>',
                obj.compute_error,
                gettext("computation failed"),
            )
        if obj.last_computed_at is None:
            return ""
        total = self._total_contacts()
        found = segment_size_warnings(size=obj.size, total=total)
        return format_html(
            '<span style="color:#b45309">{}</span>', " ".join(w.message for w in found)
        )

    def _total_contacts(self) -> int:
        if not hasattr(self, "_total_cache"):
            self._total_cache = Contact.objects.count()
        return self._total_cache

    def changelist_view(self, request, extra_context=None):
        self.__dict__.pop("_total_cache", None)
        return super().changelist_view(request, extra_context)

    actions_detail = ["recompute_button"]

    @action(
        description=_("Recompute now"),
        permissions=["change"],
        url_path="recompute",
        icon="refresh",
    )
    def recompute_button(self, request, object_id):
        segment = object_or_404(Segment, object_id)
        if confirmed(request):
            before = segment.size
            started = timezone.now()
            segments_compute(segment_ids=[segment.pk], trigger=SegmentComputation.Trigger.MANUAL)
            segment.refresh_from_db()
            if segment.compute_failed_at and segment.compute_failed_at >= started:
                messages.error(
                    request,
                    gettext("“%(name)s” could not be computed: %(error)s")
                    % {"name": segment.name, "error": segment.compute_error},
                )
            else:
                messages.success(
                    request,
                    gettext("“%(name)s” recomputed: %(size)s contacts (before: %(before)s).")
                    % {
                        "name": segment.name,
                        "size": count_text(segment.size),
                        "before": count_text(before),
                    },
                )
            return back_to_object(self, segment)
        if segment.last_computed_at is None:
            now_text = gettext("It has not been computed yet.")
        else:
            now_text = gettext("Today it holds %(size)s contacts (computed %(at)s).") % {
                "size": count_text(segment.size),
                "at": formats.date_format(
                    timezone.localtime(segment.last_computed_at), "SHORT_DATETIME_FORMAT"
                ),
            }
        return confirmation_page(
            self,
            request,
            segment,
            title=gettext("Recompute “%(name)s”") % {"name": segment.name},
            effects=[
                gettext(
                    "Its members are computed again from its rule now: contacts who entered "
                    "or left are recorded in its history, and campaigns triggered by entering "
                    "it react."
                ),
                now_text,
            ],
            refusals=[]
            if segment.is_active
            else [gettext("This segment is inactive: activate it to compute it.")],
            confirm_label=gettext("Yes, recompute it"),
        )

    @admin.action(description=_("Recompute the selected segments now"), permissions=["change"])
    def recompute_now(self, request, queryset):
        started = timezone.now()
        ids = list(queryset.values_list("pk", flat=True))
        rows = segments_compute(segment_ids=ids, trigger=SegmentComputation.Trigger.MANUAL)
        self.message_user(
            request,
            gettext("%(n)s segment(s) recomputed.") % {"n": len(rows)},
            messages.SUCCESS,
        )
        for name, error in Segment.objects.filter(
            pk__in=ids, compute_failed_at__gte=started
        ).values_list("name", "compute_error"):
            self.message_user(
                request,
                gettext("“%(name)s” could not be computed: %(error)s")
                % {"name": name, "error": error},
                messages.ERROR,
            )

    def save_model(self, request, obj, form, change):
        fields = ("name", "description", "family", "priority", "is_active", "rule")
        data = {f: form.cleaned_data[f] for f in fields if f in form.cleaned_data}
        # The form's clean() asked for the every-contact confirmation; the rule is validated
        # again by the service.
        if change:
            saved = segment_update(segment=obj, every_contact_confirmed=True, **data)
        else:
            saved = segment_create(every_contact_confirmed=True, **data)
            obj.pk = saved.pk
        if rule_matches_everyone(saved.rule):
            self.message_user(
                request,
                gettext("“%(name)s” contains every contact: its rule has no restricting condition.")
                % {"name": saved.name},
                messages.WARNING,
            )
        segment_compute_request(segment_ids=[saved.pk])

    def get_urls(self):
        own = [
            path(
                "estimate/",
                self.admin_site.admin_view(self.estimate_view),
                name="segments_segment_estimate",
            ),
            path(
                "overlap/",
                self.admin_site.admin_view(self.overlap_view),
                name="segments_segment_overlap",
            ),
            path(
                "<int:pk>/explain/",
                self.admin_site.admin_view(self.explain_view),
                name="segments_segment_explain",
            ),
            path(
                "<int:pk>/status/",
                self.admin_site.admin_view(self.status_view),
                name="segments_segment_status",
            ),
            path(
                "<int:pk>/export.csv",
                self.admin_site.admin_view(self.export_view),
                name="segments_segment_export",
            ),
        ]
        return own + super().get_urls()

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        extra_context = extra_context or {}
        extra_context["builder_schema"] = _builder_schema()
        extra_context["estimate_url"] = reverse("admin:segments_segment_estimate")
        segment = self.get_object(request, unquote(object_id)) if object_id else None
        if segment is not None:  # a missing or malformed id: Django's "doesn't exist" redirect
            status = segment_status(segment)
            extra_context["chart"] = {**status["chart"], "title": gettext("Size over time")}
            extra_context["compute_state"] = status["state"]
            extra_context["status_url"] = reverse(
                "admin:segments_segment_status", args=[segment.pk]
            )
            extra_context["export_url"] = reverse(
                "admin:segments_segment_export", args=[segment.pk]
            )
            extra_context["explain_url"] = reverse(
                "admin:segments_segment_explain", args=[segment.pk]
            )
            extra_context["warnings"] = (
                segment_size_warnings(size=segment.size, total=Contact.objects.count())
                if segment.last_computed_at
                else []
            )
        return super().changeform_view(request, object_id, form_url, extra_context)

    # --- admin views --------------------------------------------------------------------------

    def estimate_view(self, request: HttpRequest) -> JsonResponse:
        """POST {rule, segment_id?, family?, priority?} → live size, share, warnings, sample."""
        if not self.has_view_permission(request) or request.method != "POST":
            raise PermissionDenied
        try:
            payload = json_loads_bounded(request.body or b"{}")
            if not isinstance(payload, dict) or "rule" not in payload:
                raise ValueError(gettext("The body must be a JSON object with a “rule”."))
            segment_id = _whole_or_none(payload.get("segment_id"), "segment_id")
            family_id = _whole_or_none(payload.get("family"), "family")
            priority = _whole_or_none(payload.get("priority"), "priority") or 0
            rule = segment_rule_check(
                rule=payload["rule"],
                name=str(payload.get("name") or gettext("(this segment)"))[:120],
                family_id=family_id,
                priority=priority,
                segment_id=segment_id,
            )
        except (ValueError, TypeError) as exc:
            return JsonResponse({"ok": False, "error": str(exc)}, status=400)
        specs = [spec_of(s) for s in Segment.objects.exclude(pk=segment_id)]
        candidate = SegmentSpec(
            id=segment_id if segment_id else -1,
            name="",
            rule=rule,
            family_id=family_id,
            priority=priority,
        )
        estimate = rule_estimate(effective_rule(candidate, [*specs, candidate]))
        warnings = [
            w.message for w in segment_size_warnings(size=estimate.size, total=estimate.total)
        ]
        if rule_matches_everyone(rule):
            warnings.insert(
                0,
                gettext(
                    "This rule has no restricting condition: the segment contains every contact."
                ),
            )
        return JsonResponse(
            {
                "ok": True,
                "description": rule_describe(rule),
                "size": estimate.size,
                "total": estimate.total,
                "share": (estimate.size / estimate.total) if estimate.total else 0.0,
                "warnings": warnings,
                "sample": [
                    {
                        "external_id": c.external_id,
                        "name": f"{c.first_name} {c.last_name}".strip(),
                        "email": c.email if self._sees_pii(request) else "",
                        "url": reverse("admin:contacts_contact_change", args=[c.pk]),
                    }
                    for c in estimate.sample
                ],
            }
        )

    def status_view(self, request: HttpRequest, pk: int) -> JsonResponse:
        """GET → the segment's computation state, size and size history (polled by its page
        while a computation runs)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        segment = get_object_or_404(Segment, pk=pk)
        return JsonResponse(segment_status(segment))

    def _sees_pii(self, request: HttpRequest) -> bool:
        return request.user.has_perm("contacts.view_contact")

    def explain_view(self, request: HttpRequest, pk: int):
        """ "Why is this contact in this segment?" — each condition with the contact's value."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        segment = get_object_or_404(Segment, pk=pk)
        form = ExplainForm(request.GET if request.GET.get("contact") else None)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "segment": segment,
            "form": form,
            "title": gettext("Why is a contact in “%(segment)s”?") % {"segment": segment.name},
        }
        if form.is_valid():
            contact = form.cleaned_data["contact"]
            matches, lines = segment_explain(segment, contact)
            context.update(
                contact=contact,
                matches=matches,
                lines=lines,
                is_member=segment_members(segment).filter(pk=contact.pk).exists(),
            )
        return TemplateResponse(request, "admin/segments/segment/explain.html", context)

    def overlap_view(self, request: HttpRequest):
        """Pairwise overlap (contacts in both, Jaccard) of the active segments."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        segments = list(
            Segment.objects.filter(is_active=True).order_by("family__name", "priority", "id")[:30]
        )
        cells = segment_overlap(segments)
        rows = [{"segment": a, "cells": [cells[(a.pk, b.pk)] for b in segments]} for a in segments]
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "segments": segments,
            "rows": rows,
            "title": gettext("Overlap between segments"),
        }
        return TemplateResponse(request, "admin/segments/segment/overlap.html", context)

    def export_view(self, request: HttpRequest, pk: int):
        """Members as CSV. Everyone who may view segments gets external ids and entry dates;
        names, emails and phones only for users allowed to view contacts."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        segment = get_object_or_404(Segment, pk=pk)
        pii = self._sees_pii(request)
        header = ["external_id", "entered_at"] + (
            ["email", "phone", "first_name", "last_name"] if pii else []
        )
        rows = (
            SegmentMembership.objects.filter(segment=segment, exited_at__isnull=True)
            .order_by("contact_id")
            .values_list(
                "contact__external_id",
                "entered_at",
                *(
                    [
                        "contact__email",
                        "contact__phone",
                        "contact__first_name",
                        "contact__last_name",
                    ]
                    if pii
                    else []
                ),
            )
        )

        class Echo:
            def write(self, value):
                return value

        writer = csv.writer(Echo())

        def stream():
            yield writer.writerow(header)
            for row in rows.iterator(chunk_size=5000):
                yield writer.writerow([row[0], row[1].isoformat(), *row[2:]])

        response = StreamingHttpResponse(stream(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="segment-{segment.pk}.csv"'
        return response


@admin.register(ContactFeatures)
class ContactFeaturesAdmin(unfold_admin.ModelAdmin):
    list_display = (
        "contact",
        "recency_days",
        "frequency_90d",
        "frequency_365d",
        "monetary_total",
        "engagement_score",
        "preferred_channel",
        "as_of",
    )
    list_filter = ("preferred_channel",)
    search_fields = ("contact__external_id", "contact__email")
    raw_id_fields = ("contact",)
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(SegmentMembership)
class SegmentMembershipAdmin(unfold_admin.ModelAdmin):
    """Memberships are computed: read-only history."""

    list_display = ("segment", "contact", "entered_at", "exited_at")
    list_filter = ("segment",)
    search_fields = ("contact__external_id",)
    raw_id_fields = ("contact",)
    list_select_related = ("segment", "contact")
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- A contact's story: its segments (contacts/story.py) -------------------------------------


def _story_segments(request, contact: Contact) -> dict:
    """Current memberships (the open-membership index) with their family and priority, each
    with its "why" link, then the past stays newest first, 25 a page."""
    current = (
        SegmentMembership.objects.filter(contact_id=contact.pk, exited_at__isnull=True)
        .select_related("segment__family")
        .order_by("segment__family__name", "segment__priority", "segment__name")[:200]
    )
    past = (
        SegmentMembership.objects.filter(contact_id=contact.pk, exited_at__isnull=False)
        .select_related("segment")
        .order_by("-exited_at", "-id")
    )
    why = "?contact=" + quote(contact.external_id)
    return {
        "memberships": [
            {
                "membership": m,
                "why_url": reverse("admin:segments_segment_explain", args=[m.segment_id]) + why,
            }
            for m in current
        ],
        "past_memberships": story_page(past, page=story_page_number(request)),
    }


story_tab_register(
    StoryTab(
        key="segments",
        title=_("Segments"),
        template="admin/segments/story_segments.html",
        permission="segments.view_segment",
        context=_story_segments,
        order=30,
    )
)
