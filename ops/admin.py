import axes.admin  # registers AccessAttempt now, so it can be replaced below
from axes.models import AccessAttempt
from django.contrib import admin
from django_celery_beat.admin import PeriodicTaskAdmin as BeatPeriodicTaskAdmin
from django_celery_beat.models import PeriodicTask

from ops.models import WorkerHeartbeat


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    list_display = ("worker", "last_seen_at", "tasks_processed")
    readonly_fields = ("worker", "last_seen_at", "tasks_processed")

    def has_add_permission(self, request):
        return False


def _requiring(permission: str, func):
    """A third-party admin action that declares no permission, requiring ``permission``."""

    def action(modeladmin, request, queryset):
        return func(modeladmin, request, queryset)

    return admin.action(description=func.short_description, permissions=[permission])(action)


def _changing(func):
    return _requiring("change", func)


class PeriodicTaskAdmin(BeatPeriodicTaskAdmin):
    """Enabling, disabling and running a periodic task changes it: each action says so."""

    enable_tasks = _changing(BeatPeriodicTaskAdmin.enable_tasks)
    disable_tasks = _changing(BeatPeriodicTaskAdmin.disable_tasks)
    toggle_tasks = _changing(BeatPeriodicTaskAdmin.toggle_tasks)
    run_tasks = _changing(BeatPeriodicTaskAdmin.run_tasks)


admin.site.unregister(PeriodicTask)
admin.site.register(PeriodicTask, PeriodicTaskAdmin)


class AccessAttemptAdmin(axes.admin.AccessAttemptAdmin):
    """django-axes' login attempts; cleaning up expired ones deletes rows."""

    cleanup_expired_attempts = _requiring(
        "delete", axes.admin.AccessAttemptAdmin.cleanup_expired_attempts
    )


admin.site.unregister(AccessAttempt)
admin.site.register(AccessAttempt, AccessAttemptAdmin)
