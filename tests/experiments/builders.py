"""Fast builders of experiment data with fixed counts (bulk inserts, no Python per-row saves)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from contacts.models import Contact, Event
from experiments.models import Assignment, Experiment, ExperimentStatus, Variant
from tests.factories import ExperimentFactory, VariantFactory

T0 = datetime(2026, 6, 1, 9, tzinfo=UTC)
_serial = itertools.count()


def make_experiment(arms=(("A", 1, True, False), ("B", 1, False, False)), **fields) -> Experiment:
    """An experiment with variants given as (key, weight, is_control, is_holdout)."""
    fields.setdefault("status", ExperimentStatus.RUNNING)
    fields.setdefault("started_at", T0)
    experiment = ExperimentFactory(**fields)
    for position, (key, weight, is_control, is_holdout) in enumerate(arms):
        VariantFactory(
            experiment=experiment,
            key=key,
            weight=weight,
            is_control=is_control,
            is_holdout=is_holdout,
            position=position,
        )
    return experiment


def make_contacts(n: int) -> list[int]:
    batch = next(_serial)
    Contact.objects.bulk_create(
        [
            Contact(
                external_id=f"X{batch}-{i}",
                email=f"x{batch}-{i}@example.fr",
                created_at=T0 - timedelta(days=30),
            )
            for i in range(n)
        ],
        batch_size=1000,
    )
    return list(
        Contact.objects.filter(external_id__startswith=f"X{batch}-")
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def assign(
    experiment: Experiment, key: str, n: int, *, at: datetime = T0, targeted: bool = True
) -> list[int]:
    """n new contacts assigned to variant ``key`` at ``at``; returns their ids."""
    variant = Variant.objects.get(experiment=experiment, key=key)
    ids = make_contacts(n)
    Assignment.objects.bulk_create(
        [
            Assignment(
                experiment=experiment,
                contact_id=cid,
                variant=variant,
                bucket=0,
                targeted=targeted,
                assigned_at=at,
            )
            for cid in ids
        ],
        batch_size=1000,
    )
    return ids


def events(
    contact_ids, type_: str, *, at: datetime = T0 + timedelta(hours=2), **properties
) -> None:
    batch = next(_serial)
    Event.objects.bulk_create(
        [
            Event(
                contact_id=cid,
                type=type_,
                occurred_at=at,
                properties=dict(properties),
                source="test",
                idempotency_key=f"b{batch}-{i}",
            )
            for i, cid in enumerate(contact_ids)
        ],
        batch_size=1000,
    )
