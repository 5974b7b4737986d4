"""Hypothesis strategies and the "never a 500" property, shared by the SQLite and PostgreSQL passes."""

from __future__ import annotations

import json

from hypothesis import strategies as st

from contacts.models import Event

ANY_TEXT = st.text(alphabet=st.characters(categories=["L", "N", "P", "S", "Z", "C"]), max_size=30)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    ANY_TEXT,
    st.sampled_from(["", "\x00", "x" * 5000, "2026-01-01T00:00:00Z", "+33612345678"]),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(ANY_TEXT, inner, max_size=3)
    ),
    max_leaves=12,
)
FIELD_VALUES = {
    "external_id": st.one_of(st.sampled_from(["C-1", "C-2", "new-1"]), JSON),
    "email": st.one_of(st.sampled_from(["a@example.fr", "bad@", "x@bücher.de"]), JSON),
    "phone": st.one_of(st.sampled_from(["0612345678", "+3247012345", "12"]), JSON),
    "type": st.one_of(st.sampled_from(["purchase", "page_view", "Achat", "9bad"]), JSON),
    "timestamp": st.one_of(
        st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
        st.datetimes().map(lambda d: d.isoformat()),
        JSON,
    ),
    "idempotency_key": st.one_of(st.text(max_size=10), JSON),
    "properties": st.one_of(st.fixed_dictionaries({"amount": JSON, "category": JSON}), JSON),
    "country": st.one_of(st.sampled_from(["France", "DE", "Atlantis"]), JSON),
    "city": JSON,
    "birth_year": JSON,
    "attributes": JSON,
    "timezone": st.one_of(st.sampled_from(["Europe/Paris", "Mars/Base"]), JSON),
}
ITEM = st.one_of(
    st.fixed_dictionaries({}, optional={name: value for name, value in FIELD_VALUES.items()}),
    st.dictionaries(ANY_TEXT, JSON, max_size=3),
    JSON,
)
BODY = st.one_of(
    st.lists(ITEM, max_size=8),
    st.fixed_dictionaries({"items": st.lists(ITEM, max_size=8)}, optional={"source": JSON}),
    JSON,
)


def assert_never_500(client, url: str, payload, *, raw: bool = False) -> None:
    body = payload if raw else json.dumps(payload)
    before = Event.objects.count()
    response = client.post(url, data=body, content_type="application/json")
    assert response.status_code in (200, 207, 400, 413), (
        response.status_code,
        response.content[:500],
    )
    answer = response.json()
    if "results" in answer:
        items = payload if isinstance(payload, list) else payload["items"]
        assert [r["index"] for r in answer["results"]] == list(range(len(items)))
        if url.endswith("events/bulk"):
            assert Event.objects.count() - before == answer["counts"]["created"]
