"""Done-when property: memberships computed by the SQL path (full diff, real-time batch and
real-time single contact on reused compiled SQL) equal the slow Python reference evaluator, on
random contacts and random rule trees."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contacts.models import Contact, Event
from segments.models import ContactFeatures, Segment, SegmentMembership
from segments.rules import rule_evaluate_reference, rule_validate
from segments.selectors import reference_contact, segment_members
from segments.services import (
    contacts_reevaluate,
    features_refresh,
    segment_create,
    segments_compute,
)

NOW = datetime(2026, 6, 30, 12, tzinfo=UTC)
TEXT = st.text(alphabet="abAB_é%", min_size=0, max_size=3)
WORDS = st.sampled_from(["", "a", "ab", "Ab", "b_", "x%"])
NUMBERS = st.one_of(st.integers(-1, 4), st.sampled_from([0.5, 1.5, 30, 49.5, 50, 100]))
JSON_VALUES = st.one_of(st.none(), st.booleans(), NUMBERS, WORDS)
DAYS = st.integers(0, 400)

contact_strategy = st.fixed_dictionaries(
    {
        "country": st.sampled_from(["FR", "BE", ""]),
        "city": st.sampled_from(["Paris", "Lyon", "paris", ""]),
        "birth_year": st.one_of(st.none(), st.integers(1950, 2005)),
        "is_anonymous": st.booleans(),
        "created_days_ago": st.integers(0, 500),
        "attributes": st.dictionaries(
            st.sampled_from(["tier", "score", "vip"]), JSON_VALUES, max_size=3
        ),
        "events": st.lists(
            st.fixed_dictionaries(
                {
                    "type": st.sampled_from(["purchase", "email_open", "page_view"]),
                    "days_ago": st.integers(0, 200),
                    "channel": st.sampled_from(["email", "web", ""]),
                    "properties": st.dictionaries(
                        st.sampled_from(["amount", "category"]),
                        st.one_of(NUMBERS, st.sampled_from(["shoes", "books", "Shoes"])),
                        max_size=2,
                    ),
                }
            ),
            min_size=1,
            max_size=6,
        ),
        "in_base": st.booleans(),
    }
)


def _number_operand(draw_op):
    return st.one_of(
        st.tuples(st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte"]), NUMBERS),
        st.tuples(
            st.just("between"),
            st.tuples(st.integers(-1, 60), st.integers(0, 60)).map(lambda t: sorted(t)),
        ),
        st.tuples(st.sampled_from(["in", "not_in"]), st.lists(NUMBERS, min_size=1, max_size=3)),
        st.tuples(st.sampled_from(["is_set", "is_not_set"]), st.none()),
    )


def _string_operand():
    return st.one_of(
        st.tuples(st.sampled_from(["eq", "ne", "contains", "starts_with"]), WORDS),
        st.tuples(st.sampled_from(["in", "not_in"]), st.lists(WORDS, min_size=1, max_size=3)),
        st.tuples(st.sampled_from(["is_set", "is_not_set"]), st.none()),
    )


def _datetime_operand():
    return st.one_of(
        st.tuples(st.sampled_from(["within_last_days", "more_than_days_ago"]), st.integers(0, 400)),
        st.tuples(
            st.sampled_from(["before", "after"]),
            st.sampled_from(["2026-01-01", "2025-06-15T10:00:00+00:00"]),
        ),
        st.tuples(st.sampled_from(["is_set", "is_not_set"]), st.none()),
    )


def _leaf(kind_field: str, name: str, operand) -> st.SearchStrategy[dict]:
    def build(pair):
        op, value = pair
        leaf = {"type": kind_field.split(":")[0], kind_field.split(":")[1]: name, "op": op}
        if value is not None:
            leaf["value"] = value
        return leaf

    return operand.map(build)


field_leaves = st.one_of(
    _leaf("field:field", "country", _string_operand()),
    _leaf("field:field", "city", _string_operand()),
    _leaf("field:field", "birth_year", _number_operand(None)),
    _leaf("field:field", "created_at", _datetime_operand()),
    st.sampled_from(["is_true", "is_false"]).map(
        lambda op: {"type": "field", "field": "is_anonymous", "op": op}
    ),
)
feature_leaves = st.one_of(
    *(
        _leaf("feature:feature", name, _number_operand(None))
        for name in (
            "recency_days",
            "frequency_90d",
            "frequency_365d",
            "monetary_total",
            "avg_basket",
            "engagement_score",
            "days_since_signup",
            "mean_interpurchase_days",
        )
    ),
    _leaf("feature:feature", "last_activity_at", _datetime_operand()),
    _leaf("feature:feature", "preferred_channel", _string_operand()),
)
attribute_leaves = st.one_of(
    _leaf("attribute:key", "tier", _string_operand()),
    _leaf("attribute:key", "score", _number_operand(None)),
    st.sampled_from(["is_true", "is_false", "is_set", "is_not_set"]).map(
        lambda op: {"type": "attribute", "key": "vip", "op": op}
    ),
)


@st.composite
def event_leaves(draw) -> dict:
    leaf: dict = {"type": "event", "event_type": draw(st.sampled_from(["purchase", "email_open"]))}
    aggregate = draw(st.sampled_from(["count", "count", "sum", "avg", "min", "max"]))
    leaf["aggregate"] = aggregate
    if aggregate != "count":
        leaf["property"] = "amount"
    op = draw(st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte", "between"]))
    leaf["op"] = op
    if op == "between":
        leaf["value"] = sorted(draw(st.tuples(st.integers(0, 3), st.integers(0, 120))))
    else:
        leaf["value"] = draw(st.one_of(st.integers(0, 3), NUMBERS))
    window = draw(st.sampled_from(["none", "within", "since"]))
    if window == "within":
        leaf["within_days"] = draw(st.integers(1, 200))
    elif window == "since":
        leaf["since"] = "2026-03-01"
    if draw(st.booleans()):
        leaf["where"] = [
            draw(
                st.one_of(
                    st.tuples(
                        st.sampled_from(["eq", "ne", "contains"]), st.sampled_from(["shoes", "sho"])
                    ).map(lambda p: {"property": "category", "op": p[0], "value": p[1]}),
                    st.tuples(st.sampled_from(["gt", "lte"]), NUMBERS).map(
                        lambda p: {"property": "amount", "op": p[0], "value": p[1]}
                    ),
                    st.sampled_from(["is_set", "is_not_set"]).map(
                        lambda op: {"property": "category", "op": op}
                    ),
                )
            )
        ]
    return leaf


segment_leaves = st.just("BASE")  # replaced by the id of the base segment


def rule_trees() -> st.SearchStrategy:
    leaves = st.one_of(
        field_leaves, feature_leaves, attribute_leaves, event_leaves(), segment_leaves
    )
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, min_size=1, max_size=3).map(lambda c: {"all": c}),
            st.lists(children, min_size=1, max_size=3).map(lambda c: {"any": c}),
            children.map(lambda c: {"not": c}),
        ),
        max_leaves=6,
    )


def _bind_base(rule, base_id: int):
    if rule == "BASE":
        return {"type": "segment", "segment": base_id}
    if isinstance(rule, dict):
        return {
            k: (
                [_bind_base(c, base_id) for c in v]
                if k in ("all", "any")
                else _bind_base(v, base_id)
                if k == "not"
                else v
            )
            for k, v in rule.items()
        }
    return rule


def _load(population: list[dict]) -> list[Contact]:
    SegmentMembership.objects.all().delete()
    Segment.objects.all().delete()
    ContactFeatures.objects.all().delete()
    Event.objects.all().delete()
    Contact.objects.all().delete()
    contacts = []
    for i, spec in enumerate(population):
        contact = Contact.objects.create(
            external_id=f"P{i}",
            country=spec["country"],
            city=spec["city"],
            birth_year=spec["birth_year"],
            is_anonymous=spec["is_anonymous"],
            attributes=spec["attributes"],
            created_at=NOW - timedelta(days=spec["created_days_ago"], hours=i),
        )
        Event.objects.bulk_create(
            Event(
                contact=contact,
                type=e["type"],
                occurred_at=NOW - timedelta(days=e["days_ago"], minutes=j),
                channel=e["channel"],
                properties=e["properties"],
                source="prop",
                idempotency_key=f"{i}-{j}",
            )
            for j, e in enumerate(spec["events"])
        )
        contacts.append(contact)
    return contacts


def _check(population, rule) -> None:
    contacts = _load(population)
    features_refresh(as_of=NOW)
    base = segment_create(
        name="Base",
        rule={
            "type": "field",
            "field": "external_id",
            "op": "in",
            "value": [f"P{i}" for i, s in enumerate(population) if s["in_base"]] or ["none"],
        },
    )
    segments_compute(now=NOW)
    rule = rule_validate(_bind_base(rule, base.pk))
    full = segment_create(name="Full", rule=rule)
    segments_compute(segment_ids=[full.pk], now=NOW)
    expected = {
        c.pk for c in contacts if rule_evaluate_reference(rule, reference_contact(c), now=NOW)
    }
    assert {c.pk for c in segment_members(full)} == expected, rule
    realtime = segment_create(name="Realtime", rule=rule)
    contacts_reevaluate(contact_ids=[c.pk for c in contacts], event_types=None, now=NOW)
    assert {c.pk for c in segment_members(realtime)} == expected, rule
    single = segment_create(name="Single", rule=rule)
    for contact in contacts:  # the one-contact path (compiled SQL reused across contacts)
        contacts_reevaluate(contact_ids=[contact.pk], event_types=None, now=NOW)
    assert {c.pk for c in segment_members(single)} == expected, rule


PROPERTY_SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


@PROPERTY_SETTINGS
@given(population=st.lists(contact_strategy, min_size=3, max_size=10), rule=rule_trees())
def test_sql_memberships_equal_the_reference_evaluator(backend, population, rule):
    _check(population, rule)
