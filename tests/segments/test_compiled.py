"""Real-time re-evaluation of one contact on compiled rule SQL reused across instants and
contacts: it must give exactly what a fresh compilation (and the reference evaluator) gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db.models import Q

from segments.demo import demo_segments_create, example_segments
from segments.models import Segment
from segments.rules import register_condition, rule_validate, unregister_condition
from segments.rules.compiled import compiled_rule
from segments.selectors import segment_members
from segments.services import contacts_reevaluate, segment_create, segment_update
from tests.factories import ContactFactory, EventFactory

T0 = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)


def _members(segment: Segment) -> set[int]:
    return {c.pk for c in segment_members(segment)}


def test_edited_rule_is_evaluated_as_edited(backend):
    paris, lyon = ContactFactory(city="Paris"), ContactFactory(city="Lyon")
    segment = segment_create(
        name="City", rule={"type": "field", "field": "city", "op": "eq", "value": "Paris"}
    )
    for contact in (paris, lyon):
        contacts_reevaluate(contact_ids=[contact.pk], now=T0)
    assert _members(segment) == {paris.pk}

    segment_update(
        segment=segment, rule={"type": "field", "field": "city", "op": "eq", "value": "Lyon"}
    )
    for contact in (paris, lyon):
        contacts_reevaluate(contact_ids=[contact.pk], now=T0)
    assert _members(segment) == {lyon.pk}
    segment.refresh_from_db()
    assert segment.size == 1


def test_event_window_moves_with_now(backend):
    contact = ContactFactory()
    EventFactory(contact=contact, type="purchase", occurred_at=T0, properties={"amount": 20})
    recent = segment_create(
        name="Bought in 30 days",
        rule={
            "type": "event",
            "event_type": "purchase",
            "op": "gte",
            "value": 1,
            "within_days": 30,
        },
    )
    february = segment_create(
        name="Bought in March, before the 15th",
        rule={
            "type": "event",
            "event_type": "purchase",
            "op": "gte",
            "value": 1,
            "since": "2026-03-01",
            "until": "2026-03-15",
        },
    )
    verdicts = []
    for now in (
        T0 - timedelta(hours=1),  # the purchase has not happened yet
        T0,  # bounds are inclusive of now
        T0 + timedelta(days=29),
        T0 + timedelta(days=31),  # out of the 30-day window, still before 15 March
        T0 + timedelta(days=2),  # back in time: in the window again
        T0 + timedelta(days=400),
    ):
        contacts_reevaluate(contact_ids=[contact.pk], event_types={"purchase"}, now=now)
        verdicts.append((contact.pk in _members(recent), contact.pk in _members(february)))
    assert verdicts == [
        (False, False),
        (True, True),
        (True, True),
        (False, True),
        (True, True),
        (False, True),
    ]


def test_relative_dates_on_fields_and_features_move_with_now(backend):
    contact = ContactFactory(created_at=T0)
    segment = segment_create(
        name="Signed up in 7 days",
        rule={"type": "field", "field": "created_at", "op": "within_last_days", "value": 7},
    )
    inside = []
    for days in (0, 6, 8, 3):
        contacts_reevaluate(contact_ids=[contact.pk], now=T0 + timedelta(days=days))
        inside.append(contact.pk in _members(segment))
    assert inside == [True, True, False, True]


def test_condition_reading_the_database_at_compile_time_is_compiled_each_time(backend):
    """A type that is not declared cacheable (like consent, which reads the purpose) sees the
    state of the moment on every re-evaluation."""
    chosen = {"city": "Paris"}
    register_condition(
        "city_of_the_day",
        lambda c, ctx: Q(city=chosen["city"]),
        lambda c, ctx: {},
        lambda c: "city of the day",
        lambda c, contact, now: contact.contact.city == chosen["city"],
    )
    try:
        contact = ContactFactory(city="Paris")
        segment = segment_create(name="Of the day", rule={"type": "city_of_the_day"})
        contacts_reevaluate(contact_ids=[contact.pk], now=T0)
        assert _members(segment) == {contact.pk}
        chosen["city"] = "Lyon"
        contacts_reevaluate(contact_ids=[contact.pk], now=T0)
        assert _members(segment) == set()
    finally:
        unregister_condition("city_of_the_day")


def test_type_wrongly_declared_cacheable_is_caught_by_the_probe_check(backend):
    """A compiler deriving a number from now (an age) is not "now ± a duration": the compiled
    form is refused and the rule is compiled afresh, so the answer still follows now."""
    register_condition(
        "adult",
        lambda c, ctx: Q(birth_year__isnull=False, birth_year__lte=ctx.now.year - 18),
        lambda c, ctx: {},
        lambda c: "adult",
        lambda c, contact, now: (contact.contact.birth_year or now.year) <= now.year - 18,
        cacheable=True,
    )
    try:
        rule = rule_validate({"type": "adult"})
        assert compiled_rule(rule) is None
        contact = ContactFactory(birth_year=2010)
        segment = segment_create(name="Adults", rule=rule)
        contacts_reevaluate(contact_ids=[contact.pk], now=datetime(2027, 6, 1, tzinfo=UTC))
        assert _members(segment) == set()
        contacts_reevaluate(contact_ids=[contact.pk], now=datetime(2028, 6, 1, tzinfo=UTC))
        assert _members(segment) == {contact.pk}
    finally:
        unregister_condition("adult")


def test_example_segments_are_evaluated_on_reused_sql(backend):
    """The built-in condition types are all reusable, so the real-time path never rebuilds the
    demo segments' queries through the ORM."""
    demo_segments_create(now=T0)
    names = [spec["name"] for spec in example_segments()]
    rules = Segment.objects.filter(name__in=names).values_list("name", "rule")
    assert len(rules) == 20
    assert [name for name, rule in rules if compiled_rule(rule) is None] == []
