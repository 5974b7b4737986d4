"""Celery tasks of the contacts app (queue ``ingest``): thin wrappers over services."""

from celery import shared_task
from django.utils import timezone

from contacts.services.csv_import import import_job_execute
from contacts.services.merge import duplicate_report_create
from contacts.services.partitions import event_partitions_ahead as partitions_ahead


@shared_task(name="contacts.tasks.import_job_run")
def import_job_run(job_id: int) -> None:
    import_job_execute(job_id=job_id)


@shared_task(name="contacts.tasks.duplicate_report")
def duplicate_report() -> int:
    return duplicate_report_create().pk


@shared_task(name="contacts.tasks.event_partitions_ahead")
def event_partitions_ahead() -> list[str]:
    """Daily (beat): create the coming months' event partitions. Re-running it is safe: months
    that exist are skipped, so a missed or doubled run changes nothing."""
    return partitions_ahead(now=timezone.now())
