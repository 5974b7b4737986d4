"""/healthz is liveness only; /readyz reports every dependency as JSON and answers 503 when
one is down or stalled — including when the database itself is unreachable."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from ops.models import WorkerHeartbeat
from tests.activation.test_resilience import unreachable_broker  # noqa: F401 - fixture
from tests.services import free_port


@pytest.fixture(autouse=True)
def _empty_cache():
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def alive(now=None, *, queues=("default", "send")):
    now = now or timezone.now()
    WorkerHeartbeat.objects.create(worker="beat@host", last_seen_at=now)
    for queue in queues:
        name = "host" if queue == "default" else f"host/{queue}"
        WorkerHeartbeat.objects.create(worker=name, last_seen_at=now)


@pytest.mark.django_db
def test_liveness_is_trivial(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_ready_when_every_dependency_answers(client):
    alive()
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert set(body["checks"]) == {
        "database",
        "broker",
        "cache",
        "beat",
        "workers",
        "outbox",
        "providers",
    }
    assert body["checks"]["providers"]["channels"]["email"]["state"] == "closed"


@pytest.mark.django_db
def test_dead_beat_and_silent_send_worker_make_it_not_ready(client):
    old = timezone.now() - timedelta(minutes=10)
    WorkerHeartbeat.objects.create(worker="beat@host", last_seen_at=old)
    WorkerHeartbeat.objects.create(worker="host", last_seen_at=timezone.now())

    response = client.get("/readyz")

    body = response.json()
    assert response.status_code == 503 and body["status"] == "degraded"
    assert body["checks"]["beat"]["ok"] is False and body["checks"]["beat"]["age_seconds"] >= 590
    assert body["checks"]["workers"]["queues"]["default"]["ok"] is True
    assert body["checks"]["workers"]["queues"]["send"] == {"ok": False, "age_seconds": None}


@pytest.mark.django_db
def test_broker_down_is_reported(client, unreachable_broker):  # noqa: F811
    alive()
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 503
    assert body["checks"]["broker"]["ok"] is False and body["checks"]["broker"]["error"]
    assert body["checks"]["database"]["ok"] is True


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_database_down_gives_json_503_not_an_html_500(client):
    alive()
    port = connection.settings_dict["PORT"]
    connection.close()
    connection.settings_dict["PORT"] = str(free_port())  # nothing listens: PostgreSQL is down
    try:
        response = client.get("/readyz")
        liveness = client.get("/healthz")
    finally:
        connection.close()
        connection.settings_dict["PORT"] = port
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["checks"]["database"]["ok"] is False
    assert "error" in body["checks"]["database"]
    assert body["checks"]["beat"]["error"] == "unknown: the database is unreachable"
    assert liveness.status_code == 200


@pytest.mark.django_db
def test_readiness_command_for_container_healthchecks(capsys):
    from django.core.management import call_command

    call_command("readiness", "--check", "database", "--check", "cache")  # exit 0
    assert '"database": {"ok": true' in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        call_command("readiness", "--check", "beat")  # beat never seen
    assert exit_info.value.code == 1


def test_compose_healthchecks_use_readiness():
    from tests.ops.test_docker_compose import COMPOSE

    services = COMPOSE["services"]
    assert "/readyz" in " ".join(services["web"]["healthcheck"]["test"])
    assert "beat" in services["beat"]["healthcheck"]["test"]
