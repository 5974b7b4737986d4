"""docker-compose.yml (production layout) points only at things that exist in this repository."""

import importlib
import importlib.util
from pathlib import Path

import yaml
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
APP_SERVICES = {name: svc for name, svc in COMPOSE["services"].items() if "build" in svc}


def test_production_layout_has_every_role():
    services = set(COMPOSE["services"])
    assert {"postgres", "redis", "web", "beat", "mailpit"} <= services
    worker_queues = {
        svc["command"][svc["command"].index("-Q") + 1]
        for name, svc in APP_SERVICES.items()
        if "worker" in svc["command"]
    }
    routed = {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()}
    assert routed | {settings.CELERY_TASK_DEFAULT_QUEUE} <= worker_queues


def test_every_app_command_points_at_something_that_exists():
    assert (ROOT / "Dockerfile").exists()
    for name, service in APP_SERVICES.items():
        command = service["command"]
        program = command[0]
        if program == "python":
            assert (ROOT / command[1]).exists(), name
            from django.core.management import get_commands

            assert command[2] in get_commands(), f"{name}: unknown management command {command[2]}"
        elif program == "gunicorn":
            module, attribute = command[1].split(":")
            assert hasattr(importlib.import_module(module), attribute), name
        elif program == "celery":
            app_module = command[command.index("-A") + 1]
            assert importlib.import_module(app_module).celery_app.main == "cible", name
            assert command[command.index("-A") + 2] in ("worker", "beat"), name
        else:
            raise AssertionError(f"{name}: unexpected program {program}")


def test_env_example_covers_the_settings_compose_relies_on():
    example = (ROOT / ".env.example").read_text()
    for variable in ("SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "CELERY_BROKER_URL"):
        assert f"{variable}=" in example
    assert importlib.util.find_spec("gunicorn") is not None
