"""Conversion attribution on PostgreSQL, where the converting contacts are first narrowed to
those sent a message lately with one array-parameter query (``_messaged_since``)."""

from __future__ import annotations

import pytest
from django.db import connection

from tests.activation import test_tracking as on_sqlite

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def test_conversion_goes_to_the_last_message_in_the_window_on_postgres(
    consenting, make_campaign, settings
):
    assert connection.vendor == "postgresql"
    on_sqlite.test_conversion_attributed_to_the_last_message_within_the_window(
        consenting, make_campaign, settings
    )


def test_conversion_outside_the_window_is_not_attributed_on_postgres(
    consenting, make_campaign, settings
):
    on_sqlite.test_conversion_outside_the_window_is_not_attributed(
        consenting, make_campaign, settings
    )


def test_ingested_purchase_is_attributed_through_the_events_signal_on_postgres(
    consenting, make_campaign, django_capture_on_commit_callbacks
):
    on_sqlite.test_ingested_purchase_is_attributed_through_the_events_signal(
        consenting, make_campaign, django_capture_on_commit_callbacks
    )
