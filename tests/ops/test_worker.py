"""A real Celery worker picks up a task sent through the broker and its effect is visible in admin."""

from pathlib import Path

import pytest
from celery import Celery
from django.contrib.auth.models import User

from ops.models import WorkerHeartbeat
from tests.workers import celery_worker, filesystem_broker_folder, wait_until


def send_heartbeat(broker_url: str, transport_options: dict) -> None:
    producer = Celery("test-producer", broker=broker_url, set_as_current=False)
    producer.conf.broker_transport_options = transport_options
    producer.send_task("ops.tasks.record_worker_heartbeat", queue="default")


def assert_heartbeat_visible_in_admin(client) -> None:
    client.force_login(User.objects.create_superuser("ops", "ops@example.fr", "x"))
    page = client.get("/admin/ops/workerheartbeat/").content.decode()
    assert WorkerHeartbeat.objects.get().worker in page


@pytest.mark.django_db(transaction=True)
def test_worker_processes_task_on_embedded_filesystem_broker(tmp_path: Path, client):
    folder, options = filesystem_broker_folder(tmp_path)
    with celery_worker(broker_url="filesystem://", broker_folder=folder):
        send_heartbeat("filesystem://", options)
        wait_until(WorkerHeartbeat.objects.exists, what="the worker to record its heartbeat")
    assert WorkerHeartbeat.objects.get().tasks_processed == 1
    assert_heartbeat_visible_in_admin(client)


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_worker_processes_task_on_redis_and_postgresql(redis_url: str, client):
    with celery_worker(broker_url=redis_url):
        send_heartbeat(redis_url, {})
        send_heartbeat(redis_url, {})
        wait_until(
            lambda: WorkerHeartbeat.objects.filter(tasks_processed=2).exists(),
            what="two heartbeats processed through Redis",
        )
    assert_heartbeat_visible_in_admin(client)
