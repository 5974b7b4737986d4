from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from contacts.models import ApiKey, Contact, Event, PushSubscription


class PushSubscriptionInline(admin.TabularInline):
    model = PushSubscription
    extra = 0
    fields = ("endpoint", "active", "created_at", "deactivated_at")
    readonly_fields = ("created_at", "deactivated_at")


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
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
    readonly_fields = ("created_at", "updated_at")
    date_hierarchy = "created_at"
    show_full_result_count = False
    inlines = [PushSubscriptionInline]


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
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
class PushSubscriptionAdmin(admin.ModelAdmin):
    list_display = ("contact", "endpoint", "active", "created_at")
    list_filter = ("active",)
    search_fields = ("contact__external_id", "endpoint")
    raw_id_fields = ("contact",)
    actions = ["deactivate"]

    @admin.action(description=_("Deactivate selected subscriptions"))
    def deactivate(self, request, queryset):
        from django.utils import timezone

        queryset.update(active=False, deactivated_at=timezone.now())


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("name", "prefix", "scopes", "created_at", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    fields = ("name", "prefix", "scopes", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("name", "prefix", "scopes", "created_at", "last_used_at", "revoked_at")
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False  # keys are created with `manage.py create_api_key` so the secret is shown once

    @admin.action(description=_("Revoke selected API keys"))
    def revoke(self, request, queryset):
        from django.utils import timezone

        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, _("%(count)d key(s) revoked.") % {"count": count})
