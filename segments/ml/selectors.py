"""Reads of ML clusters reused by the command, the admin and other apps."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import QuerySet

from contacts.models import Contact
from segments.ml.models import ClusterAssignment, ClusterLabel, ClusterModel, ClusterModelVersion


def active_version(model: ClusterModel | str) -> ClusterModelVersion | None:
    """The active version of a model (by instance or name), or None."""
    filters = {"model__name": model} if isinstance(model, str) else {"model": model}
    return ClusterModelVersion.objects.filter(is_active=True, **filters).first()


def cluster_members(model: ClusterModel | str, stable_id: int) -> QuerySet[Contact]:
    """Contacts the active version assigned to ``stable_id`` (one SQL query)."""
    name = model if isinstance(model, str) else model.name
    return Contact.objects.filter(
        pk__in=ClusterAssignment.objects.filter(
            version__model__name=name, version__is_active=True, stable_id=stable_id
        ).values("contact_id")
    )


def cluster_names(model: ClusterModel) -> dict[int, str]:
    """``{stable_id: marketer's name}`` for the named clusters of a model."""
    return dict(ClusterLabel.objects.filter(model=model).values_list("stable_id", "name"))


def active_assignments_rows(*, model: ClusterModel, chunk_size: int = 10_000) -> Iterator[tuple]:
    """``(external_id, stable cluster id)`` of every contact the active version assigned,
    streamed in contact order (for ``train_clusters --export``)."""
    return (
        ClusterAssignment.objects.filter(version__model=model, version__is_active=True)
        .order_by("contact_id")
        .values_list("contact__external_id", "stable_id")
        .iterator(chunk_size=chunk_size)
    )


def version_page_context(version: ClusterModelVersion) -> dict:
    """What the version's admin page shows (in the active language): clusters with names and
    plain-word profiles, surrogate tree paths, migration matrix, sample checks, charts."""
    from segments.ml.charts import version_charts
    from segments.ml.explain import describe_conditions, profile_words

    names = cluster_names(version.model)
    clusters = [
        {
            "stable_id": c.stable_id,
            "name": names.get(c.stable_id, ""),
            "size": c.size,
            "share": 100 * c.share,
            "words": profile_words(c.zscores),
        }
        for c in version.clusters.order_by("stable_id")
    ]
    leaves = [
        {
            **leaf,
            "text": describe_conditions(leaf["conditions"]),
            "purity_pct": 100 * leaf["purity"],
        }
        for leaf in version.surrogate.get("leaves", [])
    ]
    migration = version.migration or {}
    matrix = migration.get("matrix", {})
    to_ids = sorted({int(t) for row in matrix.values() for t in row})
    migration_rows = [
        {"from": int(f), "cells": [row.get(str(t), 0) for t in to_ids]}
        for f, row in sorted(matrix.items(), key=lambda kv: int(kv[0]))
    ]
    fidelity = version.surrogate.get("fidelity")
    return {
        "ml_version": version,
        "ml_clusters": clusters,
        "ml_leaves": leaves,
        "ml_fidelity_pct": 100 * fidelity if fidelity is not None else None,
        "ml_migration": migration,
        "ml_migration_to": to_ids,
        "ml_migration_rows": migration_rows,
        "ml_representativeness": version.representativeness,
        "ml_charts": version_charts(version, names),
    }


def cluster_model_identifier(*, title: str, exclude_pk: int | None = None) -> str:
    """A free identifier (slug) for a cluster model named ``title``: ``slugify(title)`` cut to
    fit, then ``-2``, ``-3``… while another model holds it; "" when the name has no letter or
    digit to build one from."""
    from django.utils.text import slugify

    field = ClusterModel._meta.get_field("name")
    base = slugify(title)[: field.max_length].strip("-_")
    if not base:
        return ""
    taken = set(
        ClusterModel.objects.filter(name__startswith=base[: field.max_length - 4])
        .exclude(pk=exclude_pk)
        .values_list("name", flat=True)
    )
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        suffix = f"-{n}"
        candidate = base[: field.max_length - len(suffix)] + suffix
    return candidate
