import logging
import socket

from celery import shared_task
from django.utils import timezone

from ops.health import heartbeat_name
from ops.services import worker_heartbeat_record

logger = logging.getLogger(__name__)


@shared_task(bind=True, name="ops.tasks.record_worker_heartbeat")
def record_worker_heartbeat(self) -> int:
    """Touch this worker's heartbeat row, named after the queue the task came from (beat sends
    one to the default queue and one to ``send``; /readyz checks each)."""
    queue = (self.request.delivery_info or {}).get("routing_key") or "default"
    worker = heartbeat_name(hostname=socket.gethostname(), queue=queue)
    hb = worker_heartbeat_record(worker=worker, now=timezone.now())
    logger.info("Cible worker heartbeat: %s processed %s heartbeats", hb.worker, hb.tasks_processed)
    return hb.tasks_processed


@shared_task(name="ops.tasks.refresh_dashboard_counts")
def refresh_dashboard_counts() -> dict[str, float]:
    """Recount the home dashboard's audience and send cards into the shared cache (beat, every
    ``CIBLE_DASHBOARD_REFRESH_SECONDS``), so no visit waits for them."""
    from ops.dashboard import dashboard_counts_refresh

    took = dashboard_counts_refresh()
    logger.info("Cible dashboard counts refreshed in %s", {k: round(v, 2) for k, v in took.items()})
    return took
