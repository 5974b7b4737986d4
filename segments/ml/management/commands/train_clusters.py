"""``manage.py train_clusters [--model NAME] [--algorithm kmeans|minibatch|agglomerative|dbscan]
[--k K | --auto-k MIN:MAX] [--seed S] [--export FILE.csv]``."""

from __future__ import annotations

import csv
import time

from django.core.management.base import BaseCommand, CommandError, CommandParser

from segments.ml.models import Algorithm, TrainingRun
from segments.ml.pipeline import TrainingError


def _auto_k(value: str) -> tuple[int, int]:
    try:
        lo, hi = (int(part) for part in value.split(":"))
    except ValueError as exc:
        raise CommandError(f"--auto-k expects MIN:MAX, e.g. 2:10 (got {value!r})") from exc
    if lo < 2 or hi < lo:
        raise CommandError(f"--auto-k needs 2 ≤ MIN ≤ MAX (got {value!r})")
    return lo, hi


class Command(BaseCommand):
    help = (
        "Train a cluster model on every contact eligible for profiling, activate the new version, "
        "assign every eligible contact to a stable cluster and print the metrics."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--model", default="default", help="model name (created if missing)")
        parser.add_argument("--algorithm", choices=Algorithm.values)
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--k", type=int, help="number of clusters")
        group.add_argument("--auto-k", help="choose k in MIN:MAX by silhouette, e.g. 2:10")
        parser.add_argument("--seed", type=int)
        parser.add_argument("--sample-size", type=int, help="contacts the clusters are fitted on")
        parser.add_argument(
            "--export", metavar="FILE.csv", help="write external_id,cluster for every contact"
        )

    def handle(self, *args, **options) -> None:
        from segments.ml.selectors import active_assignments_rows
        from segments.ml.services import (
            cluster_model_configure,
            cluster_model_get_or_create,
            cluster_model_train,
        )

        model = cluster_model_get_or_create(name=options["model"])
        changes: dict[str, object] = {}
        if options["algorithm"]:
            changes["algorithm"] = options["algorithm"]
        if options["k"] is not None:
            changes["k"] = options["k"]
        if options["auto_k"]:
            changes["k"] = None
            changes["auto_k_min"], changes["auto_k_max"] = _auto_k(options["auto_k"])
        if options["seed"] is not None:
            changes["seed"] = options["seed"]
        if options["sample_size"] is not None:
            if options["sample_size"] < 1:
                raise CommandError("--sample-size must be ≥ 1")
            changes["sample_size"] = options["sample_size"]
        started = time.perf_counter()
        try:
            if changes:
                model = cluster_model_configure(model=model, **changes)
            version = cluster_model_train(model=model, trigger=TrainingRun.Trigger.COMMAND)
        except TrainingError as exc:
            active = model.active_version
            serving = f" Version v{active.number} keeps serving." if active else ""
            raise CommandError(f"{exc}{serving}") from exc
        m = version.metrics
        self.stdout.write(
            self.style.SUCCESS(
                f"{model.name} v{version.number} active: {m['k']} clusters, "
                f"{version.contacts_assigned:,} contacts assigned "
                f"({version.sample_size:,} in the training sample) "
                f"in {time.perf_counter() - started:.1f} s."
            )
        )
        for key in ("silhouette", "davies_bouldin", "calinski_harabasz", "noise_share"):
            if m.get(key) is not None:
                self.stdout.write(f"  {key}: {m[key]:.4f}")
        self.stdout.write(f"  surrogate tree fidelity: {version.surrogate['fidelity']:.4f}")
        if version.migration:
            share = version.migration.get("stayed_share")
            if share is not None:
                self.stdout.write(
                    f"  kept their cluster since v{version.migration['previous_version']}: "
                    f"{share:.4f}"
                )
        for cluster in version.clusters.order_by("stable_id"):
            self.stdout.write(
                f"  cluster {cluster.stable_id}: {cluster.size:,} ({cluster.share:.1%})"
            )
        if options["export"]:
            with open(options["export"], "w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                writer.writerow(["external_id", "cluster"])
                rows = 0
                for row in active_assignments_rows(model=model):
                    writer.writerow(row)
                    rows += 1
            self.stdout.write(f"Exported {rows:,} rows to {options['export']}.")
