"""Purchase histories written as real contacts and events (simulated from known parameters)."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest
from django.utils import timezone

from contacts.models import Contact, Event
from tests.scoring.simulate import simulate

TRUE_DAYS = {"r": 0.5, "alpha": 20.0, "a": 0.8, "b": 3.0}


def load_customers(
    *, n: int, seed: int, now: datetime, prefix: str = "sim", **params
) -> tuple[np.ndarray, object]:
    """Write ``n`` simulated customers (first purchase T days before ``now``) and their
    purchases; return the contact ids (simulation order) and the simulation."""
    sim = simulate(n=n, seed=seed, **{**TRUE_DAYS, **params}, T_low=150, T_high=400)
    first = [now - timedelta(days=float(t)) for t in sim.T]
    contacts = Contact.objects.bulk_create(
        [
            Contact(external_id=f"{prefix}-{seed}-{i}", created_at=first[i] - timedelta(hours=1))
            for i in range(n)
        ]
    )
    ids = np.array([c.pk for c in contacts])
    events = [
        Event(
            contact_id=int(ids[i]),
            type="purchase",
            occurred_at=first[i],
            properties={"amount": round(float(sim.first_spend[i]), 2)},
            source="test",
            idempotency_key=f"{prefix}-{seed}-{i}-0",
        )
        for i in range(n)
    ]
    for step, times in enumerate(sim.purchase_times):
        for i in np.flatnonzero(~np.isnan(times)):
            events.append(
                Event(
                    contact_id=int(ids[i]),
                    type="purchase",
                    occurred_at=first[i] + timedelta(days=float(times[i])),
                    properties={"amount": round(float(sim.spends[i, step]), 2)},
                    source="test",
                    idempotency_key=f"{prefix}-{seed}-{i}-{step + 1}",
                )
            )
    Event.objects.bulk_create(events, batch_size=2000)
    return ids, sim


@pytest.fixture
def now() -> datetime:
    return timezone.now().replace(microsecond=0)


@pytest.fixture
def customers(db, now):
    """600 simulated customers with about 3,000 purchases."""
    return load_customers(n=600, seed=11, now=now)
