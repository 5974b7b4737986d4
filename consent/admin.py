"""Admin for the DPO: read-only ledger with a per-contact timeline, suppression list, rights
requests with due dates (erasure/objection carried out from here, access as a ZIP download),
erasures and retention reports. Thin: every change goes through ``consent.services``."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import datetime

from django.contrib import admin, messages
from django.db.models import Q
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import formats, timezone, translation
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy
from unfold import admin as unfold_admin
from unfold.decorators import action

from consent import services
from consent.models import (
    ConsentChannel,
    ConsentEvent,
    ErasedContact,
    LegalBasis,
    Purpose,
    RetentionPurge,
    RightsRequest,
    Suppression,
    SuppressionReason,
)
from consent.selectors import CHANNEL_ADDRESS_FIELD, consent_summary, consent_timeline
from contacts.forms import ContactByIdentifierAdmin
from contacts.models import Contact
from contacts.story import StoryTab, story_page, story_page_number, story_tab_register
from ops.confirm import back_to_object, confirmation_page, confirmed, object_or_404


class ReadOnlyAdmin(unfold_admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Purpose)
class PurposeAdmin(unfold_admin.ModelAdmin):
    list_display = ("code", "name_fr", "legal_basis", "channels", "wording_version", "position")
    list_filter = ("legal_basis",)

    def get_readonly_fields(self, request, obj=None):
        # The code is referenced by the ledger and by other apps: fixed once created.
        return ("code",) if obj else ()

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ConsentEvent)
class ConsentEventAdmin(ReadOnlyAdmin):
    """The ledger: evidence, never edited."""

    list_display = (
        "occurred_at",
        "contact_link",
        "purpose",
        "channel",
        "granted",
        "awaiting_confirmation",
        "source",
        "timeline_link",
    )
    list_filter = ("purpose", "channel", "granted", "awaiting_confirmation", "source")
    search_fields = ("contact__external_id", "contact__email", "contact__phone")
    date_hierarchy = "occurred_at"
    list_select_related = ("contact", "purpose")
    show_full_result_count = False

    @admin.display(description=_("contact"))
    def contact_link(self, obj):
        return obj.contact.external_id

    @admin.display(description=_("timeline"))
    def timeline_link(self, obj):
        url = reverse("admin:consent_timeline", args=[obj.contact_id])
        return format_html('<a href="{}">{}</a>', url, _("timeline"))

    def get_urls(self):
        extra = [
            path(
                "timeline/<int:contact_id>/",
                self.admin_site.admin_view(self.timeline_view),
                name="consent_timeline",
            )
        ]
        return extra + super().get_urls()

    def timeline_view(self, request, contact_id: int):
        if not self.has_view_permission(request):
            return HttpResponse(status=403)
        contact = get_object_or_404(Contact, pk=contact_id)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Consent timeline of %(contact)s") % {"contact": contact.external_id},
            "contact": contact,
            "summary": consent_summary(contact),
            "rows": consent_timeline(contact),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/consent/timeline.html", context)


@admin.register(Suppression)
class SuppressionAdmin(unfold_admin.ModelAdmin):
    list_display = ("channel", "address", "reason", "source", "created_at")
    list_filter = ("channel", "reason")
    search_fields = ("address",)
    fields = ("channel", "address", "reason", "source")

    def get_readonly_fields(self, request, obj=None):
        return self.fields if obj else ()

    def save_model(self, request, obj, form, change):
        services.suppression_add(
            channel=obj.channel,
            address=obj.address,
            reason=obj.reason or SuppressionReason.MANUAL,
            source=obj.source or f"admin:{request.user}",
        )

    def has_delete_permission(self, request, obj=None):
        # An erased person's hash is what keeps them out: it cannot be removed.
        if obj is not None and obj.reason == SuppressionReason.ERASED:
            return False
        return super().has_delete_permission(request, obj)


@admin.register(ErasedContact)
class ErasedContactAdmin(ReadOnlyAdmin):
    list_display = ("contact_id", "erased_at", "actor")
    date_hierarchy = "erased_at"


@admin.register(RetentionPurge)
class RetentionPurgeAdmin(ReadOnlyAdmin):
    list_display = ("started_at", "dry_run", "events_deleted", "contacts_erased")
    list_filter = ("dry_run",)


class OverdueFilter(admin.SimpleListFilter):
    title = _("status")
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("open", _("Open")), ("overdue", _("Overdue")), ("done", pgettext_lazy("rights request", "Completed"))]

    def queryset(self, request, queryset):
        if self.value() == "open":
            return queryset.filter(completed_at__isnull=True)
        if self.value() == "overdue":
            return queryset.filter(completed_at__isnull=True, due_at__lt=timezone.now())
        if self.value() == "done":
            return queryset.filter(completed_at__isnull=False)
        return queryset


@admin.register(RightsRequest)
class RightsRequestAdmin(ContactByIdentifierAdmin, unfold_admin.ModelAdmin):
    list_display = (
        "kind",
        "contact",
        "received_at",
        "due_at",
        "overdue",
        "completed_at",
        "handled_by",
        "export_link",
    )
    list_filter = (OverdueFilter, "kind")
    search_fields = ("contact__external_id", "requester")
    readonly_fields = ("due_at", "completed_at", "handled_by")
    actions = ["carry_out"]
    actions_detail = ["carry_out_button"]

    @action(
        description=_("Carry out this request"),
        permissions=["carry_out"],
        url_path="carry-out",
        icon="gavel",
    )
    def carry_out_button(self, request, object_id):
        """The request's own page: what carrying it out does to this person, then (POST of the
        confirmation) the one service that does it and marks it completed."""
        rights_request = object_or_404(RightsRequest, object_id)
        refusals = []
        if rights_request.completed_at is not None:
            refusals.append(
                _("Already carried out on %(at)s by %(by)s.")
                % {
                    "at": formats.date_format(
                        timezone.localtime(rights_request.completed_at), "SHORT_DATETIME_FORMAT"
                    ),
                    "by": rights_request.handled_by,
                }
            )
        elif rights_request.kind not in ("erasure", "objection"):
            refusals.append(
                _("An access request is answered by downloading its export (the ZIP link).")
            )
        elif rights_request.contact_id is None:
            refusals.append(_("This request names no contact."))
        who = rights_request.contact.external_id if rights_request.contact_id else "—"
        if confirmed(request) and not refusals:
            services.rights_request_complete(
                request=rights_request, actor=str(request.user), at=timezone.now()
            )
            self.message_user(
                request,
                _("The %(kind)s request of %(who)s is carried out.")
                % {
                    "kind": rights_request.get_kind_display().lower(),
                    "who": who,
                },
                messages.SUCCESS,
            )
            return back_to_object(self, rights_request)
        effects = {
            "erasure": _(
                "The personal data of %(who)s (email, phone, names, event details, push "
                "subscriptions) is erased for good; only keyed hashes of the email and phone "
                "stay on the suppression list. Messages not yet sent are cancelled. This cannot "
                "be undone."
            ),
            "objection": _(
                "Consent to profiling is withdrawn for %(who)s (recorded in the consent ledger "
                "with this request as proof)."
            ),
        }
        return confirmation_page(
            self,
            request,
            rights_request,
            title=_("Carry out a rights request"),
            effects=[effects[rights_request.kind] % {"who": who}]
            if rights_request.kind in effects and not refusals
            else [],
            details=[
                (_("Request"), rights_request.get_kind_display()),
                (_("Contact"), who),
                (
                    _("Due"),
                    formats.date_format(rights_request.due_at, "SHORT_DATE_FORMAT")
                    if rights_request.due_at
                    else "—",
                ),
            ],
            refusals=refusals,
            confirm_label=_("Yes, carry it out"),
            danger=rights_request.kind == "erasure",
        )

    @admin.display(description=_("overdue"), boolean=True)
    def overdue(self, obj):
        return obj.completed_at is None and obj.due_at is not None and obj.due_at < timezone.now()

    @admin.display(description=_("export"))
    def export_link(self, obj):
        if obj.kind != "access" or obj.contact_id is None:
            return ""
        url = reverse("admin:consent_rightsrequest_export", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, _("ZIP"))

    def get_urls(self):
        extra = [
            path(
                "<int:pk>/export.zip",
                self.admin_site.admin_view(self.export_view),
                name="consent_rightsrequest_export",
            )
        ]
        return extra + super().get_urls()

    def export_view(self, request, pk: int):
        """GET: what the ZIP holds and that downloading it answers the request; POST: the ZIP
        with contact.json (Art. 15/20), the access request then marked completed."""
        if not self.has_export_permission(request):
            return HttpResponse(status=403)
        rights_request = get_object_or_404(RightsRequest, pk=pk, contact__isnull=False)
        if request.method != "POST":
            context = {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": _("Export a person's data"),
                "rights_request": rights_request,
            }
            return TemplateResponse(
                request, "admin/consent/rightsrequest/export_confirm.html", context
            )
        data = services.rights_request_export(
            request=rights_request, actor=str(request.user), at=timezone.now()
        )
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("contact.json", json.dumps(data, ensure_ascii=False, indent=2))
        response = HttpResponse(buffer.getvalue(), content_type="application/zip")
        response["Content-Disposition"] = (
            f'attachment; filename="contact-{rights_request.contact_id}.zip"'
        )
        return response

    def has_export_permission(self, request) -> bool:
        return request.user.has_perm("consent.export_contact")

    def has_carry_out_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("consent.carry_out_rightsrequest")

    @admin.action(
        description=_("Carry out selected erasure / objection requests"),
        permissions=["carry_out"],
    )
    def carry_out(self, request, queryset):
        """First a page stating what will happen; the requests are carried out only when that
        page is confirmed (POST ``confirm=yes``)."""
        pending = list(
            queryset.filter(
                completed_at__isnull=True, kind__in=("erasure", "objection"), contact__isnull=False
            ).select_related("contact")
        )
        if not pending:
            self.message_user(
                request,
                _("None of the selected requests is an open erasure or objection request."),
                messages.WARNING,
            )
            return None
        if request.POST.get("confirm") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "title": _("Carry out rights requests"),
                "opts": self.model._meta,
                "requests": pending,
                "erasures": sum(r.kind == "erasure" for r in pending),
                "objections": sum(r.kind == "objection" for r in pending),
                "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
                "action": "carry_out",
            }
            return TemplateResponse(
                request, "admin/consent/rightsrequest/carry_out_confirm.html", context
            )
        for rights_request in pending:
            services.rights_request_complete(
                request=rights_request, actor=str(request.user), at=timezone.now()
            )
        self.message_user(
            request,
            _("%(count)d request(s) carried out.") % {"count": len(pending)},
            messages.SUCCESS,
        )
        return None


# --- A contact's story: its consent and its suppressions (contacts/story.py) ------------------


def _story_consent(request, contact: Contact) -> dict:
    """The current state per purpose × channel with the proof of the deciding ledger row, and
    the ledger itself newest first, 25 rows a page (the full timeline page has them all)."""
    summary = consent_summary(contact)
    deciding = [
        state["event_id"]
        for purpose in summary["purposes"]
        for state in purpose["channels"].values()
        if state["event_id"]
    ]
    proofs = dict(ConsentEvent.objects.filter(pk__in=deciding).values_list("pk", "proof"))
    language = (translation.get_language() or "en")[:2]
    rows = [
        {
            "purpose": purpose["name_fr"] if language == "fr" else purpose["name_en"],
            "code": purpose["code"],
            "legal_basis": LegalBasis(purpose["legal_basis"]).label,
            "channel": ConsentChannel(channel).label,
            "state": state,
            "decided_at": datetime.fromisoformat(state["decided_at"])
            if state["decided_at"]
            else None,
            "proof": json.dumps(proofs[state["event_id"]], ensure_ascii=False, default=str)
            if proofs.get(state["event_id"])
            else "",
        }
        for purpose in summary["purposes"]
        for channel, state in purpose["channels"].items()
    ]
    ledger = consent_timeline(contact).order_by("-occurred_at", "-id")
    return {
        "consent_erased": summary["erased"],
        "consent_rows": rows,
        "ledger": story_page(ledger, page=story_page_number(request)),
        "timeline_url": reverse("admin:consent_timeline", args=[contact.pk]),
    }


def _story_suppressions(request, contact: Contact) -> dict:
    """Suppression-list rows of the contact's addresses (the (channel, address) index), and
    whether the contact was erased."""
    addresses = Q(pk__in=[])
    for channel, field in CHANNEL_ADDRESS_FIELD.items():
        if getattr(contact, field):
            addresses |= Q(channel=channel, address=getattr(contact, field))
    return {
        "suppressions": list(Suppression.objects.filter(addresses).order_by("-created_at")[:50]),
        "erasure": ErasedContact.objects.filter(contact=contact).first(),
    }


story_tab_register(
    StoryTab(
        key="consent",
        title=_("Consent"),
        template="admin/consent/story_consent.html",
        permission="consent.view_consentevent",
        context=_story_consent,
        order=10,
    )
)
story_tab_register(
    StoryTab(
        key="suppressions",
        title=_("Suppressions"),
        template="admin/consent/story_suppressions.html",
        permission="consent.view_suppression",
        context=_story_suppressions,
        order=20,
    )
)
