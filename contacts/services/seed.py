"""Demo population seeding (seed_demo)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from contacts.bulk_load import Progress, load_population
from contacts.demo import event_counts, generate_contacts, generate_events
from contacts.models import Contact
from contacts.signals import demo_population_loaded


@dataclass(frozen=True)
class SeedResult:
    contacts: int
    events: int
    first_contact_id: int


def demo_population_seed(
    *,
    contacts: int,
    events_per_contact: float,
    seed: int,
    now: datetime,
    progress: Progress | None = None,
) -> SeedResult:
    """Generate and load a demo population; same arguments and ``now`` → same data.

    Refuses (ValueError) when contacts from the same seed are already loaded, so nothing is doubled.
    Listeners of ``demo_population_loaded`` (consent ledger, …) add their rows afterwards.
    """
    population = generate_contacts(n=contacts, seed=seed, now=now)
    if Contact.objects.filter(external_id=population.external_id[0]).exists():
        raise ValueError(
            f"demo data for seed {seed} is already loaded (contact {population.external_id[0]} exists); "
            "use another --seed"
        )
    expected = int(event_counts(population, events_per_contact=events_per_contact, seed=seed).sum())
    ids = load_population(
        contacts=population,
        events=generate_events(population, events_per_contact=events_per_contact, seed=seed),
        expected_events=expected,
        seed=seed,
        now=now,
        progress=progress,
    )
    demo_population_loaded.send(sender=Contact, contact_ids=ids, population=population, now=now)
    return SeedResult(contacts=len(ids), events=expected, first_contact_id=int(ids[0]))
