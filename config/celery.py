"""The Celery application. Queues: default, ingest, segments, ml, send (see CELERY_TASK_ROUTES)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("cible")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
