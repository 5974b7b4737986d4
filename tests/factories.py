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


# --- activation ---------------------------------------------------------------------------


class TemplateFactory(factory.django.DjangoModelFactory):
    """A template with a French and an English version (email, SMS and push fields set)."""

    class Meta:
        model = "activation.Template"
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Template {n}")
    channel = "email"

    @factory.post_generation
    def versions(self, create, extracted, **kwargs):
        if not create or extracted is False:
            return
        from activation.models import TemplateVersion

        TemplateVersion.objects.create(
            template=self,
            locale="fr",
            subject="Bonjour {{ contact.first_name|default:'' }} !",
            html=(
                "<html><body><p>Bonjour {{ contact.first_name|default:'' }},</p>"
                '<p><a href="https://shop.example.fr/soldes?utm=cible&amp;x=1">Les soldes</a></p>'
                '<p><a href="{{ unsubscribe_url }}">Se désabonner</a></p></body></html>'
            ),
            sms_body="Bonjour {{ contact.first_name|default:'' }}, -20% ce week-end.",
            push_title="Bonjour {{ contact.first_name|default:'' }}",
            push_body="-20% ce week-end",
            push_url="https://shop.example.fr/soldes",
        )
        TemplateVersion.objects.create(
            template=self,
            locale="en",
            subject="Hello {{ contact.first_name|default:'' }}!",
            html="<html><body><p>Hello {{ contact.first_name|default:'' }},</p></body></html>",
            sms_body="Hello {{ contact.first_name|default:'' }}, 20% off this weekend.",
            push_title="Hello",
            push_body="20% off",
        )


class CampaignFactory(factory.django.DjangoModelFactory):
    """A campaign for purpose ``purpose_code`` (default ``newsletter``); add segments after."""

    class Meta:
        model = "activation.Campaign"
        exclude = ("purpose_code",)

    name = factory.Sequence(lambda n: f"Campaign {n}")
    purpose_code = "newsletter"
    purpose = factory.LazyAttribute(
        lambda o: __import__("consent.models", fromlist=["Purpose"]).Purpose.objects.get(
            code=o.purpose_code
        )
    )
    channel = "email"
    template = factory.SubFactory(TemplateFactory, channel=factory.SelfAttribute("..channel"))
    status = "active"
