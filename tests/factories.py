"""factory_boy factories shared by the test suite."""

from __future__ import annotations

from datetime import UTC, datetime

import factory

from contacts.models import Contact, Event


class ContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contact

    external_id = factory.Sequence(lambda n: f"C{n:06d}")
    email = factory.Sequence(lambda n: f"contact{n}@example.fr")
    phone = factory.Sequence(lambda n: f"+3361234{n:04d}")
    first_name = "Camille"
    last_name = "Martin"
    country = "FR"
    city = "Paris"
    created_at = factory.LazyFunction(lambda: datetime(2026, 1, 1, tzinfo=UTC))


class EventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Event

    contact = factory.SubFactory(ContactFactory)
    type = "page_view"
    occurred_at = factory.LazyFunction(lambda: datetime(2026, 6, 1, 12, tzinfo=UTC))
    source = "test"
    idempotency_key = factory.Sequence(lambda n: f"evt-{n}")


# --- experiments ---------------------------------------------------------------------------


class ExperimentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "experiments.Experiment"

    name = factory.Sequence(lambda n: f"Experiment {n}")
    salt = factory.Sequence(lambda n: f"salt-{n}")
    primary_metric = "click"
    guardrail_unsubscribe = True
    guardrail_complaint = True


class VariantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "experiments.Variant"

    experiment = factory.SubFactory(ExperimentFactory)
    key = factory.Sequence(lambda n: f"V{n}")
    name = factory.LazyAttribute(lambda o: f"Variant {o.key}")
    weight = 1
    position = factory.Sequence(lambda n: n)
