"""Thin Celery tasks (queue ``ml``: every task name starts with ``segments.ml.``)."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="segments.ml.tasks.train_cluster_model")
def train_cluster_model(
    model_id: int, trigger: str = "manual", user_id: int | None = None, run_id: int | None = None
) -> int:
    """Train a model now; returns the new version number (failure recorded on the run).
    With ``run_id`` (a queued run) a redelivered message whose run already started is skipped
    (returns 0)."""
    from django.contrib.auth import get_user_model

    from segments.ml.models import ClusterModel, TrainingRun
    from segments.ml.services import cluster_model_train

    run = None
    if run_id is not None:
        claimed = TrainingRun.objects.filter(pk=run_id, status=TrainingRun.Status.QUEUED).update(
            status=TrainingRun.Status.RUNNING
        )
        if not claimed:
            return 0
        run = TrainingRun.objects.get(pk=run_id)
    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    model = ClusterModel.objects.get(pk=model_id)
    return cluster_model_train(model=model, trigger=trigger, user=user, run=run).number


@shared_task(name="segments.ml.tasks.monitor_cluster_models")
def monitor_cluster_models() -> list[str]:
    """Beat: retrain monthly or on drift, else refresh assignments (see the service)."""
    from segments.ml.services import cluster_models_monitor

    return cluster_models_monitor()
