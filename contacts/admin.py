"""Admin of the contacts app: contacts, events (read-only), aliases, CSV imports with column
mapping and preview, merge of duplicates with a preview, merge audit and duplicate reports.
Thin: every write goes through a service."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _
from unfold import admin as unfold_admin

from contacts.forms import ContactByIdentifierAdmin
from contacts.models import (
    Alias,
    ApiKey,
    Contact,
    ContactMerge,
    DuplicateReport,
    Event,
    ImportJob,
    PushSubscription,
)
from contacts.normalisation import InvalidValue, parse_timestamp
from contacts.services.csv_import import (
    CsvImportError,
    CsvLayout,
    column_targets,
    csv_column_report,
    csv_preview,
)
from contacts.services.merge import MergeError, merge_contacts, merge_preview
from contacts.story import (
    PROFILE_TAB,
    PROFILE_TITLE,
    StoryTab,
    story_page,
    story_page_number,
    story_tab,
    story_tab_register,
    story_tabs,
)


class PushSubscriptionInline(unfold_admin.TabularInline):
    model = PushSubscription
    extra = 0
    fields = ("endpoint", "active", "created_at", "deactivated_at")
    readonly_fields = ("created_at", "deactivated_at")


class ContactAdminForm(forms.ModelForm):
    """The contact's sign-up time (``created_at``) is editable: a contact migrated from another
    tool keeps the date it signed up there (same 1970..now + 5 min range as ingestion)."""

    class Meta:
        model = Contact
        fields = (
            "external_id",
            "email",
            "phone",
            "first_name",
            "last_name",
            "locale",
            "timezone",
            "country",
            "city",
            "birth_year",
            "attributes",
            "is_anonymous",
            "created_at",
        )
        labels = {"created_at": _("Signed up at")}
        help_texts = {
            "created_at": _(
                "When the person signed up (for a migrated base, the date in the old tool)."
            )
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "created_at" in self.fields:
            self.fields["created_at"].required = False  # left empty: kept (new contact: now)
            if not self.instance.pk:
                self.fields["created_at"].initial = timezone.now

    def clean_created_at(self):
        moment = self.cleaned_data["created_at"]
        if moment is None:
            return self.instance.created_at or timezone.now()
        try:
            return parse_timestamp(moment.isoformat(), default_zone=None, now=timezone.now())
        except InvalidValue as exc:
            raise forms.ValidationError(str(exc)) from exc


@admin.register(Contact)
class ContactAdmin(unfold_admin.ModelAdmin):
    form = ContactAdminForm
    list_display = (
        "external_id",
        "email",
        "phone",
        "first_name",
        "last_name",
        "country",
        "city",
        "created_at",
    )
    list_filter = ("country", "locale", "is_anonymous", "timezone")
    search_fields = ("external_id", "email", "phone", "last_name", "first_name", "city")
    readonly_fields = ("updated_at",)
    date_hierarchy = "created_at"
    show_full_result_count = False
    inlines = [PushSubscriptionInline]
    actions = ["merge_selected"]
    # The tabs of the contact's story above the profile form (contacts/story.py).
    change_form_outer_before_template = "admin/contacts/contact/story_tabs.html"

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        """``?tab=<key>`` on an existing contact opens that tab of its story instead of the
        profile form; the profile form (the default) gets the row of tabs above it."""
        if object_id is None:
            return super().changeform_view(request, object_id, form_url, extra_context)
        key = request.GET.get("tab") or PROFILE_TAB
        extra_context = {**(extra_context or {}), "story_tabs": story_tabs(request.user)}
        extra_context["story_profile_title"] = PROFILE_TITLE
        extra_context["story_current"] = key
        if key == PROFILE_TAB or request.method != "GET":
            return super().changeform_view(request, object_id, form_url, extra_context)
        contact = self.get_object(request, admin.utils.unquote(object_id))
        if contact is None:  # Django's own "does not exist" answer
            return super().changeform_view(request, object_id, form_url, extra_context)
        if not self.has_view_or_change_permission(request, contact):
            raise PermissionDenied
        tab = story_tab(request.user, key)
        if tab is None:
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            **extra_context,
            "opts": self.model._meta,
            "original": contact,
            "contact": contact,
            "title": contact.external_id,
            "subtitle": tab.title,
            "story_tab": tab,
            **tab.context(request, contact),
        }
        return TemplateResponse(request, "admin/contacts/contact/story.html", context)

    def has_merge_permission(self, request) -> bool:
        """Merging deletes the duplicates: it needs change and delete."""
        return request.user.has_perms(["contacts.change_contact", "contacts.delete_contact"])

    @admin.action(description=_("Merge selected contacts (preview first)"), permissions=["merge"])
    def merge_selected(self, request, queryset):
        if not (
            request.user.has_perm("contacts.change_contact")
            and request.user.has_perm("contacts.delete_contact")
        ):
            raise PermissionDenied
        contacts = list(queryset.order_by("created_at", "pk")[:50])
        if len(contacts) < 2:
            self.message_user(
                request, _("Select at least two contacts to merge."), messages.WARNING
            )
            return None
        chosen = request.POST.get("survivor")
        survivor = next((c for c in contacts if str(c.pk) == chosen), None)
        if survivor is None:
            survivor = next((c for c in contacts if not c.is_anonymous), contacts[0])
        if request.POST.get("confirm") == "yes":
            try:
                merge = merge_contacts(
                    survivor=survivor,
                    duplicates=[c for c in contacts if c.pk != survivor.pk],
                    actor=request.user,
                )
            except MergeError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                return None
            self.message_user(
                request,
                _("%(n)d contact(s) merged into %(survivor)s; %(events)d event(s) moved.")
                % {
                    "n": len(merge.merged_ids),
                    "survivor": merge.survivor_external_id,
                    "events": merge.moved_events,
                },
                messages.SUCCESS,
            )
            return None
        preview = merge_preview(
            survivor=survivor, duplicates=[c for c in contacts if c.pk != survivor.pk]
        )
        context = {
            **self.admin_site.each_context(request),
            "title": _("Merge contacts"),
            "opts": self.model._meta,
            "contacts": contacts,
            "preview": preview,
            "rows": [
                (c, preview.events.get(c.pk, 0), preview.push_subscriptions.get(c.pk, 0))
                for c in contacts
            ],
            "selected": request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME),
            "action": "merge_selected",
        }
        return TemplateResponse(request, "admin/contacts/contact/merge_preview.html", context)


class StoryEventFilter(forms.Form):
    """The events tab's filters: an event type and a date range (days, inclusive)."""

    type = forms.CharField(label=_("Event type"), required=False, max_length=64)
    since = forms.DateField(label=_("From"), required=False)
    until = forms.DateField(label=_("To"), required=False)

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise forms.ValidationError(_("The start date is after the end date."))
        return data


def _story_events(request, contact: Contact) -> dict:
    """Newest first, 25 a page; the filters use the (contact, occurred_at) index."""
    from datetime import UTC, datetime, time

    form = StoryEventFilter(request.GET)
    events = Event.objects.filter(contact_id=contact.pk)
    if form.is_valid():
        data = form.cleaned_data
        if data["type"]:
            events = events.filter(type=data["type"].strip())
        if data["since"]:
            events = events.filter(occurred_at__gte=datetime.combine(data["since"], time.min, UTC))
        if data["until"]:
            events = events.filter(occurred_at__lte=datetime.combine(data["until"], time.max, UTC))
    else:
        events = events.none()
    page = story_page(events.order_by("-occurred_at", "-id"), page=story_page_number(request))
    page["rows"] = [
        (event, json.dumps(event.properties, ensure_ascii=False, default=str)[:300])
        for event in page["rows"]
    ]
    query = request.GET.copy()
    query.pop("page", None)
    return {"filter_form": form, "events": page, "filter_query": query.urlencode()}


def _story_merges(request, contact: Contact) -> dict:
    merges = ContactMerge.objects.filter(survivor_id=contact.pk).select_related("actor")
    return {"merges": story_page(merges.order_by("-created_at", "-id"), page=1, size=50)}


story_tab_register(
    StoryTab(
        key="events",
        title=_("Events"),
        template="admin/contacts/contact/story_events.html",
        permission="contacts.view_event",
        context=_story_events,
        order=60,
    )
)
story_tab_register(
    StoryTab(
        key="merges",
        title=_("Merges"),
        template="admin/contacts/contact/story_merges.html",
        permission="contacts.view_contactmerge",
        context=_story_merges,
        order=90,
    )
)


@admin.register(Event)
class EventAdmin(unfold_admin.ModelAdmin):
    """Events are facts: read-only in the admin."""

    list_display = ("occurred_at", "type", "contact", "channel", "device", "source")
    list_filter = ("type", "channel", "device", "source")
    search_fields = ("contact__external_id", "contact__email", "idempotency_key")
    list_select_related = ("contact",)
    raw_id_fields = ("contact",)
    date_hierarchy = "occurred_at"
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(PushSubscription)
class PushSubscriptionAdmin(ContactByIdentifierAdmin, unfold_admin.ModelAdmin):
    list_display = ("contact", "endpoint", "active", "created_at")
    list_filter = ("active",)
    search_fields = ("contact__external_id", "endpoint")
    actions = ["deactivate"]

    @admin.action(description=_("Deactivate selected subscriptions"), permissions=["change"])
    def deactivate(self, request, queryset):
        from django.utils import timezone

        queryset.update(active=False, deactivated_at=timezone.now())


@admin.register(ApiKey)
class ApiKeyAdmin(unfold_admin.ModelAdmin):
    list_display = ("name", "prefix", "scopes", "created_at", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    fields = ("name", "prefix", "scopes", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("name", "prefix", "scopes", "created_at", "last_used_at", "revoked_at")
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False  # keys are created with `manage.py create_api_key` so the secret is shown once

    @admin.action(description=_("Revoke selected API keys"), permissions=["change"])
    def revoke(self, request, queryset):
        from django.utils import timezone

        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, _("%(count)d key(s) revoked.") % {"count": count})


@admin.register(Alias)
class AliasAdmin(unfold_admin.ModelAdmin):
    list_display = ("kind", "alias", "canonical", "key")
    list_filter = ("kind",)
    search_fields = ("alias", "canonical", "key")
    readonly_fields = ("key",)


class ImportUploadForm(forms.Form):
    kind = forms.ChoiceField(label=_("What the file holds"), choices=ImportJob.Kind.choices)
    file = forms.FileField(label=_("CSV file"))
    source = forms.CharField(
        label=_("Source"),
        max_length=64,
        initial="csv",
        help_text=_("Events are idempotent per source: re-importing the same file adds nothing."),
    )
    delimiter = forms.CharField(
        label=_("Delimiter"), max_length=2, required=False, help_text=_("Empty: detected.")
    )
    encoding = forms.ChoiceField(
        label=_("Encoding"),
        required=False,
        choices=[
            ("", _("Detect")),
            ("utf-8", "UTF-8"),
            ("cp1252", "Windows-1252"),
            ("latin-1", "Latin-1"),
        ],
    )
    default_timezone = forms.CharField(
        label=_("Default time zone"),
        max_length=64,
        required=False,
        help_text=_(
            "For timestamps without offset, e.g. Europe/Paris. Empty: such lines are rejected."
        ),
    )


def _upload_dir() -> Path:
    folder = Path(settings.MEDIA_ROOT) / "imports" / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@admin.register(ImportJob)
class ImportJobAdmin(unfold_admin.ModelAdmin):
    list_display = (
        "created_at",
        "kind",
        "original_name",
        "source",
        "status",
        "progress_bar",
        "created",
        "updated",
        "duplicates",
        "rejected",
    )
    list_filter = ("kind", "status")
    change_form_template = "admin/contacts/importjob/change_form.html"
    change_list_template = "admin/contacts/importjob/change_list.html"
    fields = (
        "kind",
        "status",
        "progress_bar",
        "original_name",
        "source",
        "delimiter",
        "encoding",
        "default_timezone",
        "column_map",
        "column_report",
        "created",
        "updated",
        "duplicates",
        "rejected",
        "rejects_file",
        "error",
        "created_by",
        "created_at",
        "started_at",
        "finished_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request):
        return False  # imports start from the upload page (mapping + preview first)

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description=_("columns not stored as fields"))
    def column_report(self, obj: ImportJob):
        """The import summary's column lines (as ``import_contacts``/``import_events`` print)."""
        mapping = obj.column_map or {}
        ignored, extra = csv_column_report(
            CsvLayout(encoding="", delimiter="", header=list(mapping), column_map=mapping)
        )
        nested = "properties" if obj.kind == "events" else "attributes"
        return format_html(
            "{}<br>{}",
            _("Ignored columns (not stored): %(columns)s") % {"columns": ", ".join(ignored) or "—"},
            _("Columns Cible does not know, stored as %(nested)s.<name>: %(columns)s")
            % {"nested": nested, "columns": ", ".join(extra) or "—"},
        )

    @admin.display(description=_("progress"))
    def progress_bar(self, obj: ImportJob):
        return format_html(
            '<progress value="{}" max="100"></progress> {} % ({} / {})',
            obj.percent,
            obj.percent,
            obj.processed_lines,
            obj.total_lines,
        )

    def get_urls(self):
        return [
            path(
                "upload/",
                self.admin_site.admin_view(self.upload_view),
                name="contacts_importjob_upload",
            ),
            path(
                "upload/<str:token>/",
                self.admin_site.admin_view(self.mapping_view),
                name="contacts_importjob_mapping",
            ),
            *super().get_urls(),
        ]

    def _check(self, request):
        if not request.user.has_perm("contacts.add_importjob"):
            raise PermissionDenied

    def upload_view(self, request):
        """Step 1: the file and how to read it."""
        self._check(request)
        form = ImportUploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            token = uuid.uuid4().hex
            target = _upload_dir() / f"{token}.csv"
            with target.open("wb") as fh:
                for chunk in form.cleaned_data["file"].chunks():
                    fh.write(chunk)
            request.session[f"contacts-import-{token}"] = {
                "kind": form.cleaned_data["kind"],
                "name": form.cleaned_data["file"].name[:255],
                "source": form.cleaned_data["source"].strip(),
                "delimiter": form.cleaned_data["delimiter"].replace("\\t", "\t"),
                "encoding": form.cleaned_data["encoding"],
                "default_timezone": form.cleaned_data["default_timezone"].strip(),
            }
            return HttpResponseRedirect(reverse("admin:contacts_importjob_mapping", args=[token]))
        context = {
            **self.admin_site.each_context(request),
            "title": _("Import a CSV file"),
            "opts": self.model._meta,
            "form": form,
        }
        return TemplateResponse(request, "admin/contacts/importjob/upload.html", context)

    def mapping_view(self, request, token: str):
        """Step 2: map columns, see the first rows as they will be stored, start the import."""
        self._check(request)
        upload = request.session.get(f"contacts-import-{token}")
        path_ = _upload_dir() / f"{token}.csv"
        if not upload or not token.isalnum() or not path_.exists():
            self.message_user(
                request, _("This upload has expired; upload the file again."), messages.ERROR
            )
            return HttpResponseRedirect(reverse("admin:contacts_importjob_upload"))
        column_map = None
        if request.method == "POST":
            column_map = {
                request.POST.get(f"column_{i}", ""): request.POST.get(f"target_{i}", "")
                for i in range(int(request.POST.get("columns", "0") or 0))
            }
            column_map.pop("", None)
        try:
            layout, rows = csv_preview(
                kind=upload["kind"],
                path=path_,
                delimiter=upload["delimiter"],
                encoding=upload["encoding"],
                default_timezone=upload["default_timezone"],
                column_map=column_map,
            )
        except (CsvImportError, ValueError) as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(reverse("admin:contacts_importjob_upload"))
        if request.method == "POST" and request.POST.get("start") == "yes":
            from django.core.files import File

            from contacts.tasks import import_job_run

            with transaction.atomic():
                job = ImportJob(
                    kind=upload["kind"],
                    original_name=upload["name"],
                    source=upload["source"],
                    delimiter=layout.delimiter,
                    encoding=layout.encoding,
                    default_timezone=upload["default_timezone"],
                    column_map=layout.column_map,
                    created_by=request.user,
                )
                with path_.open("rb") as fh:
                    job.file.save(upload["name"] or "import.csv", File(fh), save=True)
                transaction.on_commit(lambda: import_job_run.delay(job.pk))
            path_.unlink(missing_ok=True)
            del request.session[f"contacts-import-{token}"]
            self.message_user(
                request, _("Import queued; this page shows its progress."), messages.SUCCESS
            )
            return HttpResponseRedirect(reverse("admin:contacts_importjob_change", args=[job.pk]))
        prefix = "properties." if upload["kind"] == "events" else "attributes."
        targets = column_targets(upload["kind"])
        columns = []
        for i, column in enumerate(layout.header):
            current = layout.column_map.get(column, "")
            choices = [("", str(_("(ignore)")))] + [(t, t) for t in targets]
            choices.append((prefix + column.strip(), prefix + column.strip()))
            columns.append({"index": i, "name": column, "current": current, "choices": choices})
        context = {
            **self.admin_site.each_context(request),
            "title": _("Map the columns and check the preview"),
            "opts": self.model._meta,
            "upload": upload,
            "layout": layout,
            "columns": columns,
            "rows": rows,
            "delimiter_label": "TAB" if layout.delimiter == "\t" else layout.delimiter,
        }
        return TemplateResponse(request, "admin/contacts/importjob/mapping.html", context)


@admin.register(ContactMerge)
class ContactMergeAdmin(unfold_admin.ModelAdmin):
    list_display = (
        "created_at",
        "survivor_external_id",
        "merged_external_ids",
        "moved_events",
        "actor",
        "actor_label",
    )
    search_fields = ("survivor_external_id",)
    readonly_fields = [f.name for f in ContactMerge._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(DuplicateReport)
class DuplicateReportAdmin(unfold_admin.ModelAdmin):
    list_display = ("created_at", "contacts_involved", "group_counts")
    fields = ("created_at", "contacts_involved", "group_counts", "group_links")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description=_("groups (open one, select all, then “Merge selected contacts”)"))
    def group_links(self, obj: DuplicateReport):
        url = reverse("admin:contacts_contact_changelist")
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                '<li>{} = {} — <a href="{}?id__in={}">{} contacts</a></li>',
                (
                    (
                        g["key"],
                        g["value"],
                        url,
                        ",".join(str(i) for i in g["contact_ids"]),
                        len(g["contact_ids"]),
                    )
                    for g in obj.groups[:200]
                ),
            ),
        )
