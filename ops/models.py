from django.db import models
from django.utils.translation import gettext_lazy as _


class WorkerHeartbeat(models.Model):
    """One row per Celery worker host, touched by a beat-scheduled task every minute.

    Lets an operator see in the admin that the worker and beat are alive and processing.
    """

    worker = models.CharField(_("worker"), max_length=200, unique=True)
    last_seen_at = models.DateTimeField(_("last seen at"))
    tasks_processed = models.PositiveBigIntegerField(_("heartbeats processed"), default=0)

    class Meta:
        verbose_name = _("worker heartbeat")
        verbose_name_plural = _("worker heartbeats")
        ordering = ["-last_seen_at"]

    def __str__(self) -> str:
        return self.worker
