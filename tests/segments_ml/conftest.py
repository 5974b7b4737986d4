from __future__ import annotations

import numpy as np
import pytest
from django.core.management import call_command


@pytest.fixture(autouse=True)
def _media_in_tmp(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def seed_population(db):
    """Load a demo population: ``seed_population(contacts, events_per_contact, seed)``."""

    def load(contacts: int, events_per_contact: float, seed: int) -> None:
        call_command(
            "seed_demo",
            contacts=contacts,
            events_per_contact=events_per_contact,
            seed=seed,
            verbosity=0,
        )

    return load


def true_personas(contact_ids) -> np.ndarray:
    """The persona seed_demo drew for each contact (kept in Contact.attributes)."""
    from contacts.models import Contact

    persona = dict(Contact.objects.values_list("id", "attributes__persona"))
    return np.array([persona[int(i)] for i in contact_ids])
