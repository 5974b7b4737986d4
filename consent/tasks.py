"""Thin Celery tasks of the consent app."""

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from consent import services


@shared_task(name="consent.tasks.retention_purge")
def retention_purge(dry_run: bool | None = None) -> int:
    """Nightly retention run; dry run unless ``CONSENT_RETENTION_APPLY``. Returns the report id."""
    apply = settings.CONSENT_RETENTION_APPLY if dry_run is None else not dry_run
    return services.retention_purge(now=timezone.now(), dry_run=not apply).pk
