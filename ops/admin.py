from django.contrib import admin

from ops.models import WorkerHeartbeat


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin):
    list_display = ("worker", "last_seen_at", "tasks_processed")
    readonly_fields = ("worker", "last_seen_at", "tasks_processed")

    def has_add_permission(self, request):
        return False
