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


def _changing(func):
    """django-celery-beat's task action, requiring the change permission (it declares none)."""

    def action(modeladmin, request, queryset):
        return func(modeladmin, request, queryset)

    return admin.action(description=func.short_description, permissions=["change"])(action)


class PeriodicTaskAdmin(BeatPeriodicTaskAdmin):
    """Enabling, disabling and running a periodic task changes it: each action says so."""

    enable_tasks = _changing(BeatPeriodicTaskAdmin.enable_tasks)
    disable_tasks = _changing(BeatPeriodicTaskAdmin.disable_tasks)
    toggle_tasks = _changing(BeatPeriodicTaskAdmin.toggle_tasks)
    run_tasks = _changing(BeatPeriodicTaskAdmin.run_tasks)


admin.site.unregister(PeriodicTask)
admin.site.register(PeriodicTask, PeriodicTaskAdmin)
