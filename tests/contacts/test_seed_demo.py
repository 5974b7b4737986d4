from collections import Counter
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from contacts.demo import PERSONAS
from contacts.models import Contact, Event

pytestmark = pytest.mark.django_db(transaction=True)


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def test_seed_demo_loads_a_persona_population_with_progress():
    output = seed("--contacts", "600", "--events-per-contact", "12", "--seed", "7")
    assert "contacts: 600/600 (100 %)" in output
    assert "Loaded 600 contacts" in output
    assert Contact.objects.count() == 600
    events = Event.objects.count()
    assert 600 * 12 * 0.85 < events < 600 * 12 * 1.15
    personas = Counter(Contact.objects.values_list("attributes__persona", flat=True))
    assert set(personas) == {p.name for p in PERSONAS}
    # French population with some contacts abroad, E.164 phones, lower-case emails
    countries = Counter(Contact.objects.values_list("country", flat=True))
    assert countries["FR"] > 400 and len(countries) > 2
    assert all(
        p.startswith("+") for p in Contact.objects.exclude(phone="").values_list("phone", flat=True)
    )
    assert all(e == e.lower() for e in Contact.objects.values_list("email", flat=True))
    purchases = Event.objects.filter(type="purchase")
    assert purchases.exists()
    assert all(p["amount"] > 0 for p in purchases.values_list("properties", flat=True)[:200])

    # Loyal big spenders buy bigger baskets than bargain hunters
    def mean_basket(persona: str) -> float:
        amounts = [
            p["amount"]
            for p in purchases.filter(contact__attributes__persona=persona).values_list(
                "properties", flat=True
            )
        ]
        return sum(amounts) / len(amounts)

    assert mean_basket("loyal_big_spender") > 3 * mean_basket("bargain_hunter")


def test_seed_demo_is_reproducible_and_never_doubles():
    seed("--contacts", "50", "--events-per-contact", "3", "--seed", "11")
    first = list(Contact.objects.order_by("id").values_list("email", "phone", "city"))
    Contact.objects.all().delete()
    seed("--contacts", "50", "--events-per-contact", "3", "--seed", "11")
    assert list(Contact.objects.order_by("id").values_list("email", "phone", "city")) == first
    with pytest.raises(CommandError, match="already loaded"):
        seed("--contacts", "50", "--seed", "11")
    assert Contact.objects.count() == 50


def test_seed_demo_if_empty_leaves_existing_data_alone():
    seed("--contacts", "20", "--events-per-contact", "2", "--seed", "3")
    output = seed("--contacts", "20", "--seed", "4", "--if-empty")
    assert "not reloaded" in output
    assert Contact.objects.count() == 20


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--contacts", "0"], "--contacts must be between"),
        (
            ["--contacts", "10", "--events-per-contact", "-1"],
            "--events-per-contact must be between",
        ),
        (["--contacts", "10", "--seed", "-5"], "--seed must be"),
    ],
)
def test_seed_demo_refuses_nonsense_arguments(args, message):
    with pytest.raises(CommandError, match=message):
        seed(*args)
    assert Contact.objects.count() == 0
