from __future__ import annotations

from datetime import UTC, datetime

import pytest

AS_OF = datetime(2026, 6, 30, 12, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request, db) -> str:
    """Runs a test once per database pass: SQLite in the first, PostgreSQL in the second."""
    from django.db import connection

    if connection.vendor != request.param:
        pytest.skip(f"this copy runs in the {request.param} pass of `make test`")
    return request.param


@pytest.fixture
def received():
    """Collects entered/exited signals as (kind, segment_id, contact_ids)."""
    from segments.signals import contact_entered_segment, contact_exited_segment

    log: list[tuple[str, int, list[int]]] = []

    def on_enter(sender, *, segment_id, contact_ids, at, **kw):
        log.append(("entered", segment_id, sorted(contact_ids)))

    def on_exit(sender, *, segment_id, contact_ids, at, **kw):
        log.append(("exited", segment_id, sorted(contact_ids)))

    contact_entered_segment.connect(on_enter, dispatch_uid="test-enter")
    contact_exited_segment.connect(on_exit, dispatch_uid="test-exit")
    yield log
    contact_entered_segment.disconnect(dispatch_uid="test-enter")
    contact_exited_segment.disconnect(dispatch_uid="test-exit")
