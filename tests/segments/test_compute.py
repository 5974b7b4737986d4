from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command

from segments.models import Segment, SegmentComputation, SegmentFamily, SegmentMembership
from segments.rules import RuleError
from segments.selectors import segment_members, segment_size
from segments.services import (
    features_refresh,
    segment_create,
    segment_update,
    segments_compute,
)
from tests.factories import ContactFactory, EventFactory
from tests.segments.conftest import AS_OF

BUYERS = {"type": "event", "event_type": "purchase", "within_days": 30}


def _buy(contact, *, days_ago: float, amount: float = 50.0):
    return EventFactory(
        contact=contact,
        type="purchase",
        occurred_at=AS_OF - timedelta(days=days_ago),
        properties={"amount": amount},
    )


def test_compute_materialises_entered_and_exited_with_history(
    backend, received, django_capture_on_commit_callbacks
):
    alice, bob, carol = ContactFactory(), ContactFactory(), ContactFactory()
    _buy(alice, days_ago=3)
    _buy(bob, days_ago=10)
    _buy(carol, days_ago=90)
    segment = segment_create(name="Recent buyers", rule=BUYERS)

    with django_capture_on_commit_callbacks(execute=True):
        (first,) = segments_compute(now=AS_OF)

    assert set(segment_members(segment)) == {alice, bob}
    assert (first.size, first.entered, first.exited) == (2, 2, 0)
    assert received == [("entered", segment.pk, sorted([alice.pk, bob.pk]))]

    received.clear()
    with django_capture_on_commit_callbacks(execute=True):
        (second,) = segments_compute(now=AS_OF + timedelta(days=25))  # bob's purchase: 35 days

    assert set(segment_members(segment)) == {alice}
    assert (second.size, second.entered, second.exited) == (1, 0, 1)
    assert received == [("exited", segment.pk, [bob.pk])]
    closed = SegmentMembership.objects.get(segment=segment, contact=bob)
    assert closed.exited_at == AS_OF + timedelta(days=25)
    assert set(segment_members(segment, at=AS_OF + timedelta(days=1))) == {alice, bob}
    segment.refresh_from_db()
    assert segment.size == 1 == segment_size(segment)
    assert segment.last_computed_at == AS_OF + timedelta(days=25)
    assert SegmentComputation.objects.filter(segment=segment).count() == 2


def test_recomputing_without_change_enters_nobody_twice(
    backend, received, django_capture_on_commit_callbacks
):
    alice = ContactFactory()
    _buy(alice, days_ago=1)
    segment = segment_create(name="Buyers", rule=BUYERS)
    with django_capture_on_commit_callbacks(execute=True):
        segments_compute(now=AS_OF)
        segments_compute(now=AS_OF + timedelta(minutes=5))
    assert SegmentMembership.objects.filter(segment=segment).count() == 1
    assert received == [("entered", segment.pk, [alice.pk])]


def test_priority_family_puts_each_contact_in_its_first_matching_segment(backend):
    vip, active, idle = ContactFactory(), ContactFactory(), ContactFactory()
    _buy(vip, days_ago=2, amount=500)
    _buy(active, days_ago=2, amount=20)
    features_refresh(as_of=AS_OF)
    family = SegmentFamily.objects.create(name="Lifecycle")
    others = segment_create(name="Others", rule={"all": []}, family=family, priority=30)
    buyers = segment_create(
        name="Active",
        rule={"type": "feature", "feature": "frequency_90d", "op": "gte", "value": 1},
        family=family,
        priority=20,
    )
    vips = segment_create(
        name="VIP",
        rule={"type": "feature", "feature": "monetary_total", "op": "gte", "value": 100},
        family=family,
        priority=10,
    )
    outside = segment_create(name="Everyone", rule={"all": []})

    segments_compute(now=AS_OF)

    assert set(segment_members(vips)) == {vip}
    assert set(segment_members(buyers)) == {active}
    assert set(segment_members(others)) == {idle}
    assert set(segment_members(outside)) == {vip, active, idle}  # outside families: all kept

    segment_update(segment=others, priority=5)  # "Others" now wins over everything
    segments_compute(now=AS_OF + timedelta(minutes=1))
    assert set(segment_members(others)) == {vip, active, idle}
    assert segment_size(vips) == 0


def test_segment_condition_reads_the_other_segment_computed_first(backend):
    fr, be = ContactFactory(country="FR"), ContactFactory(country="BE")
    _buy(fr, days_ago=1)
    _buy(be, days_ago=1)
    # Created first, so it has the lower id, yet it depends on "Buyers": order follows the graph.
    french = segment_create(
        name="French", rule={"type": "field", "field": "country", "op": "eq", "value": "FR"}
    )
    buyers = segment_create(name="Buyers", rule=BUYERS)
    segment_update(
        segment=french,
        rule={"all": [french.rule, {"type": "segment", "segment": buyers.pk}]},
    )
    segments_compute(now=AS_OF)
    assert set(segment_members(french)) == {fr}


def test_cycles_between_segments_are_refused_with_their_names(db):
    a = segment_create(name="A", rule={"all": []})
    b = segment_create(name="B", rule={"type": "segment", "segment": a.pk})
    with pytest.raises(RuleError, match="cycle: A → B → A"):
        segment_update(segment=a, rule={"type": "segment", "segment": b.pk})
    with pytest.raises(RuleError, match="cannot refer to itself"):
        segment_update(segment=a, rule={"not": {"type": "segment", "segment": a.pk}})


def test_family_precedence_cycle_is_refused(db):
    family = SegmentFamily.objects.create(name="F")
    low = segment_create(name="Low", rule={"all": []}, family=family, priority=2)
    with pytest.raises(RuleError, match="cycle"):
        # "High" takes precedence over "Low", so Low's effective rule reads High's rule, which
        # reads Low's memberships.
        segment_create(
            name="High", rule={"type": "segment", "segment": low.pk}, family=family, priority=1
        )


def test_inactive_segments_are_not_computed(backend):
    ContactFactory()
    segment = segment_create(name="Everyone", rule={"all": []}, is_active=False)
    assert segments_compute(now=AS_OF) == []
    assert segment_size(segment) == 0


def test_two_workers_never_double_an_open_membership(backend):
    from django.db import IntegrityError, transaction

    alice = ContactFactory()
    segment = segment_create(name="Everyone", rule={"all": []})
    segments_compute(now=AS_OF)
    with pytest.raises(IntegrityError), transaction.atomic():
        SegmentMembership.objects.create(segment=segment, contact=alice, entered_at=AS_OF)


def test_compute_segments_command_prints_sizes(backend, capsys):
    ContactFactory()
    segment = segment_create(name="Everyone", rule={"all": []})
    call_command("compute_segments", "--segment", str(segment.pk))
    out = capsys.readouterr().out
    assert "Everyone: 1 contacts (+1 / -0)" in out
    assert SegmentComputation.objects.get(segment=segment).trigger == "manual"


def test_segment_is_listed_in_admin_order(db):
    family = SegmentFamily.objects.create(name="Lifecycle")
    second = segment_create(name="Second", rule={"all": []}, family=family, priority=2)
    first = segment_create(name="First", rule={"all": []}, family=family, priority=1)
    assert list(Segment.objects.filter(family=family)) == [first, second]


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"op": "gte", "value": 1.5}, {"two", "three"}),
        ({"op": "gt", "value": 2.0}, {"three"}),
        ({"op": "lt", "value": 2.5}, {"none", "one", "two"}),
        ({"op": "lte", "value": 0.9}, {"none"}),
        ({"op": "eq", "value": 2.5}, set()),
        ({"op": "eq", "value": 2.0}, {"two"}),
        ({"op": "ne", "value": 2.5}, {"none", "one", "two", "three"}),
        ({"op": "between", "value": [0.5, 2.5]}, {"one", "two"}),
        ({"op": "in", "value": [1, 2.5, 3.0]}, {"one", "three"}),
        ({"op": "not_in", "value": [1, 2.5]}, {"none", "two", "three"}),
        ({"op": "gte", "value": 1e15}, set()),  # the largest number a rule accepts
        ({"op": "lte", "value": 1e15}, {"none", "one", "two", "three"}),
    ],
)
def test_fractional_thresholds_on_whole_number_features_keep_their_exact_meaning(
    backend, condition, expected
):
    buyers = {name: ContactFactory(first_name=name) for name in ("none", "one", "two", "three")}
    for name, count in (("one", 1), ("two", 2), ("three", 3)):
        for i in range(count):
            _buy(buyers[name], days_ago=5 + i)
    stranger = ContactFactory(first_name="no features row")
    features_refresh(as_of=AS_OF, contact_ids=[c.pk for c in buyers.values()])
    segment = segment_create(
        name="Purchases in 90 days",
        rule={"type": "feature", "feature": "frequency_90d", **condition},
    )

    segments_compute(now=AS_OF)

    members = {c.first_name for c in segment_members(segment)}
    assert members == expected
    assert stranger.first_name not in members


def test_segments_computed_together_each_get_their_own_diff_and_history(backend):
    """On PostgreSQL the segments of one dependency level share one evaluation pass; each still
    gets exactly its own entries, exits, size and history row (constant rules included)."""
    paris, lyon, nice = (ContactFactory(city=c) for c in ("Paris", "Lyon", "Nice"))
    _buy(lyon, days_ago=2)
    city = segment_create(
        name="Paris", rule={"type": "field", "field": "city", "op": "eq", "value": "Paris"}
    )
    buyers = segment_create(name="Buyers", rule=BUYERS)
    everyone = segment_create(name="Everyone", rule={"all": []})
    nobody = segment_create(name="Nobody", rule={"any": []})
    segments_compute(now=AS_OF)
    paris.city, nice.city = "Lyon", "Paris"
    paris.save(), nice.save()
    _buy(paris, days_ago=1)

    rows = {row.segment_id: row for row in segments_compute(now=AS_OF)}

    assert (rows[city.pk].size, rows[city.pk].entered, rows[city.pk].exited) == (1, 1, 1)
    assert (rows[buyers.pk].size, rows[buyers.pk].entered, rows[buyers.pk].exited) == (2, 1, 0)
    assert (rows[everyone.pk].size, rows[everyone.pk].entered) == (3, 0)
    assert (rows[nobody.pk].size, rows[nobody.pk].entered) == (0, 0)
    assert set(segment_members(city)) == {nice}
    assert set(segment_members(buyers)) == {paris, lyon}
    assert SegmentMembership.objects.filter(segment=city, contact=paris).count() == 1
    assert SegmentMembership.objects.get(segment=city, contact=paris).exited_at == AS_OF
    assert Segment.objects.get(pk=everyone.pk).size == 3


def _event_rule(event_type: str, **kw) -> dict:
    return {"type": "event", "event_type": event_type, **kw}


@pytest.mark.parametrize("dense_span", [4096, 1])
def test_event_conditions_of_segments_computed_together_each_keep_their_meaning(
    backend, monkeypatch, dense_span
):
    """On PostgreSQL the event conditions of one level are computed from one shared scan of the
    events; each segment still gets exactly the contacts its own condition selects (counts,
    sums, ranges, negations, property filters, windows), on either form of the open-membership
    masks (``dense_span`` 1 forces the wide-id form)."""
    from segments import memberships

    monkeypatch.setattr(memberships, "DENSE_SPAN", dense_span)
    ann, bob, cleo, dan = (ContactFactory(first_name=n) for n in ("Ann", "Bob", "Cleo", "Dan"))
    _buy(ann, days_ago=2, amount=120)
    _buy(ann, days_ago=5, amount=200)
    _buy(bob, days_ago=3, amount=40)
    _buy(bob, days_ago=60, amount=500)  # outside the 30-day windows
    EventFactory(
        contact=cleo, type="email_open", occurred_at=AS_OF - timedelta(days=1), properties={}
    )
    _buy(cleo, days_ago=10, amount=80)
    EventFactory(
        contact=dan,
        type="purchase",
        occurred_at=AS_OF - timedelta(days=4),
        properties={"amount": 20, "category": "shoes"},
    )
    rules = {
        "Twice in 30 days": _event_rule("purchase", op="gte", value=2, within_days=30),
        "Spent 100 to 400 in 30 days": _event_rule(
            "purchase",
            aggregate="sum",
            property="amount",
            op="between",
            value=[100, 400],
            within_days=30,
        ),
        "Fewer than 2 purchases": _event_rule("purchase", op="lt", value=2, within_days=30),
        "Average basket not 80": _event_rule(
            "purchase", aggregate="avg", property="amount", op="ne", value=80, within_days=30
        ),
        "Small spenders": _event_rule(  # a contact without purchases spent 0 (holds)
            "purchase", aggregate="sum", property="amount", op="lte", value=100, within_days=30
        ),
        "Shoes buyers": _event_rule(
            "purchase",
            within_days=30,
            where=[{"property": "category", "op": "eq", "value": "shoes"}],
        ),
        "Openers who did not buy": {
            "all": [
                _event_rule("email_open", within_days=7),
                {"not": _event_rule("purchase", within_days=7)},
            ]
        },
        "Biggest basket outside 50 to 200": {
            "not": _event_rule(
                "purchase",
                aggregate="max",
                property="amount",
                op="between",
                value=[50, 200],
                within_days=90,
            )
        },
    }
    segments = {name: segment_create(name=name, rule=rule) for name, rule in rules.items()}

    segments_compute(now=AS_OF)

    members = {
        name: {c.first_name for c in segment_members(segment)} for name, segment in segments.items()
    }
    assert members == {
        "Twice in 30 days": {"Ann"},
        "Spent 100 to 400 in 30 days": {"Ann"},
        "Fewer than 2 purchases": {"Bob", "Cleo", "Dan"},
        "Average basket not 80": {"Ann", "Bob", "Dan"},
        "Small spenders": {"Bob", "Cleo", "Dan"},
        "Shoes buyers": {"Dan"},
        "Openers who did not buy": {"Cleo"},
        "Biggest basket outside 50 to 200": {"Bob", "Dan"},
    }


def test_a_level_of_plain_event_counts_only_is_computed_from_the_type_index(backend):
    """Counts of one event type in a window, with no property filter, are answered from the
    events' (type, occurred_at) index alone on PostgreSQL (no heap pass at all when a level has
    only such conditions); members are still exactly those of each rule."""
    ann, bob, cleo = (ContactFactory(first_name=n) for n in ("Ann", "Bob", "Cleo"))
    _buy(ann, days_ago=1)
    _buy(ann, days_ago=20)
    _buy(bob, days_ago=3)
    _buy(cleo, days_ago=45)  # outside the 30-day window
    EventFactory(contact=cleo, type="email_open", occurred_at=AS_OF - timedelta(days=2))
    rules = {
        "Twice in 30 days": _event_rule("purchase", op="gte", value=2, within_days=30),
        "Exactly one in 30 days": _event_rule("purchase", op="eq", value=1, within_days=30),
        "No purchase in 30 days": _event_rule("purchase", op="eq", value=0, within_days=30),
        "Opened, bought nothing in 7 days": {
            "all": [
                _event_rule("email_open", within_days=7),
                {"not": _event_rule("purchase", within_days=7)},
            ]
        },
    }
    segments = {name: segment_create(name=name, rule=rule) for name, rule in rules.items()}

    segments_compute(now=AS_OF)

    members = {
        name: {c.first_name for c in segment_members(segment)} for name, segment in segments.items()
    }
    assert members == {
        "Twice in 30 days": {"Ann"},
        "Exactly one in 30 days": {"Bob"},
        "No purchase in 30 days": {"Cleo"},
        "Opened, bought nothing in 7 days": {"Cleo"},
    }
