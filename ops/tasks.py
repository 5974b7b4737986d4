import logging
import socket

from celery import shared_task
from django.utils import timezone

from ops.services import worker_heartbeat_record

logger = logging.getLogger(__name__)


@shared_task(name="ops.tasks.record_worker_heartbeat")
def record_worker_heartbeat() -> int:
    hb = worker_heartbeat_record(worker=socket.gethostname(), now=timezone.now())
    logger.info("Cible worker heartbeat: %s processed %s heartbeats", hb.worker, hb.tasks_processed)
    return hb.tasks_processed
