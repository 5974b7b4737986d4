"""Admin of ops' own tables, and the third-party tables the workspace shows (users and groups,
periodic tasks, login attempts) re-registered in the workspace's design (django-unfold)."""

import axes.admin  # registers AccessAttempt now, so it can be replaced below
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin as BaseGroupAdmin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.models import Group, User
from django_celery_beat import admin as beat_admin
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)
from unfold import admin as unfold_admin
from unfold.forms import AdminPasswordChangeForm, UserChangeForm, UserCreationForm

from ops.models import WorkerHeartbeat


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(unfold_admin.ModelAdmin):
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


class PeriodicTaskAdmin(beat_admin.PeriodicTaskAdmin, unfold_admin.ModelAdmin):
    """Enabling, disabling and running a periodic task changes it: each action says so."""

    enable_tasks = _changing(beat_admin.PeriodicTaskAdmin.enable_tasks)
    disable_tasks = _changing(beat_admin.PeriodicTaskAdmin.disable_tasks)
    toggle_tasks = _changing(beat_admin.PeriodicTaskAdmin.toggle_tasks)
    run_tasks = _changing(beat_admin.PeriodicTaskAdmin.run_tasks)


admin.site.unregister(PeriodicTask)
admin.site.register(PeriodicTask, PeriodicTaskAdmin)

for _model, _base in (
    (IntervalSchedule, beat_admin.IntervalScheduleAdmin),
    (CrontabSchedule, beat_admin.CrontabScheduleAdmin),
    (SolarSchedule, beat_admin.SolarScheduleAdmin),
    (ClockedSchedule, beat_admin.ClockedScheduleAdmin),
):
    admin.site.unregister(_model)
    admin.site.register(_model, type(_base.__name__, (_base, unfold_admin.ModelAdmin), {}))


class UserAdmin(BaseUserAdmin, unfold_admin.ModelAdmin):
    form = UserChangeForm
    add_form = UserCreationForm
    change_password_form = AdminPasswordChangeForm


class GroupAdmin(BaseGroupAdmin, unfold_admin.ModelAdmin):
    pass


admin.site.unregister(User)
admin.site.register(User, UserAdmin)
admin.site.unregister(Group)
admin.site.register(Group, GroupAdmin)


class AccessAttemptAdmin(axes.admin.AccessAttemptAdmin, unfold_admin.ModelAdmin):
    """django-axes' login attempts; cleaning up expired ones deletes rows."""

    cleanup_expired_attempts = _requiring(
        "delete", axes.admin.AccessAttemptAdmin.cleanup_expired_attempts
    )


admin.site.unregister(AccessAttempt)
admin.site.register(AccessAttempt, AccessAttemptAdmin)

for _model, _base in (
    (AccessLog, axes.admin.AccessLogAdmin),
    (AccessFailureLog, axes.admin.AccessFailureLogAdmin),
):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
        admin.site.register(_model, type(_base.__name__, (_base, unfold_admin.ModelAdmin), {}))
