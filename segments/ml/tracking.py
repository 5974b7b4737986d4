"""Optional MLflow logging of training runs (``MLFLOW_TRACKING_URI`` set and mlflow installed).

mlflow is not a dependency of Cible: without it, a warning is logged and nothing else happens.
"""

from __future__ import annotations

import logging

from django.conf import settings

logger = logging.getLogger(__name__)


def mlflow_log_version(version) -> bool:
    """Log the version's parameters, metrics and artefact as one MLflow run; True if logged."""
    try:
        import mlflow
    except ImportError:
        logger.warning("MLFLOW_TRACKING_URI is set but mlflow is not installed; run not logged")
        return False
    mlflow.set_tracking_uri(settings.ML_MLFLOW_TRACKING_URI)
    mlflow.set_experiment(f"cible-clusters-{version.model.name}")
    with mlflow.start_run(run_name=f"{version.model.name}-v{version.number}"):
        mlflow.log_params({k: str(v) for k, v in version.params.items()})
        mlflow.log_param("features", ",".join(version.feature_names))
        metrics = {k: float(v) for k, v in version.metrics.items() if isinstance(v, int | float)}
        if version.surrogate:
            metrics["tree_fidelity"] = float(version.surrogate.get("fidelity", 0.0))
        mlflow.log_metrics(metrics)
        if version.artefact:
            mlflow.log_artifact(version.artefact.path)
    return True
