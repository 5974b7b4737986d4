"""Celery tasks of the contacts app (queue ``ingest``): thin wrappers over services."""

from celery import shared_task

from contacts.services.csv_import import import_job_execute
from contacts.services.merge import duplicate_report_create


@shared_task(name="contacts.tasks.import_job_run")
def import_job_run(job_id: int) -> None:
    import_job_execute(job_id=job_id)


@shared_task(name="contacts.tasks.duplicate_report")
def duplicate_report() -> int:
    return duplicate_report_create().pk
