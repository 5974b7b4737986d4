"""Thin Celery tasks (queue ``ml``: every task name starts with ``segments.ml.``)."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="segments.ml.tasks.train_cluster_model")
def train_cluster_model(model_id: int, trigger: str = "manual", user_id: int | None = None) -> int:
    """Train a model now; returns the new version number (failure recorded on the run)."""
    from django.contrib.auth import get_user_model

    from segments.ml.models import ClusterModel
    from segments.ml.services import cluster_model_train

    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    model = ClusterModel.objects.get(pk=model_id)
    return cluster_model_train(model=model, trigger=trigger, user=user).number


@shared_task(name="segments.ml.tasks.monitor_cluster_models")
def monitor_cluster_models() -> list[str]:
    """Beat: retrain monthly or on drift, else refresh assignments (see the service)."""
    from segments.ml.services import cluster_models_monitor

    return cluster_models_monitor()
