"""Realistic consent ledger for the demo population (``seed_demo`` / ``make demo``).

From the population's answers (email_optin, sms_optin, push_optin, profiling_objection) it
writes, vectorised with numpy and loaded in bulk (COPY on PostgreSQL): sign-up form requests
followed by double opt-in confirmations for email, a few requests never confirmed, SMS and push
opt-ins, newsletter unsubscribes, SMS STOPs and objections to profiling. The current state is
then built in one set-based statement. Same population → same ledger.
"""

from __future__ import annotations

import zlib
from contextlib import nullcontext
from datetime import datetime

import numpy as np
import pandas as pd
from django.db import connection, transaction

from consent.models import ConsentEvent, CurrentConsent, Purpose
from consent.services import current_state_rebuild
from contacts.bulk_load import (
    TableWriter,
    _constant_timestamp,
    _timestamps,
    foreign_keys_checked_once,
)
from contacts.demo import DemoContacts

LEDGER_COLUMNS = (
    "contact_id",
    "purpose_id",
    "channel",
    "granted",
    "awaiting_confirmation",
    "occurred_at",
    "recorded_at",
    "source",
    "proof",
    "actor",
)
USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Firefox/131.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14) Chrome/129.0 Mobile",
)
HOUR = 3600
# From this many ledger rows (PostgreSQL), foreign keys are checked once after the load.
LARGE_LEDGER_ROWS = 100_000


def demo_ledger_load(*, contact_ids: np.ndarray, population: DemoContacts, now: datetime) -> int:
    """Write the demo ledger of ``population`` (ids ``contact_ids``, same order) and its current
    state, in one transaction. Returns the number of ledger rows written."""
    n = len(population)
    if n == 0:
        return 0
    ids = np.asarray(contact_ids, dtype=np.int64)
    rng = np.random.default_rng(zlib.crc32(str(population.external_id[0]).encode()))
    now_s = int(now.timestamp())
    purposes = dict(Purpose.objects.values_list("code", "id"))
    created = np.asarray(population.created_at, dtype=np.int64)
    has_email = np.asarray(population.email != "")
    has_phone = np.asarray(population.phone != "")
    parts: list[pd.DataFrame] = []

    def add(mask, purpose, channel, granted, awaiting, at, source, proof_kind):
        idx = np.flatnonzero(mask)
        if len(idx) == 0:
            return
        at = np.minimum(np.asarray(at)[idx] if np.ndim(at) else at, now_s)
        ip = "198.51.100." + pd.Series(rng.integers(1, 255, size=len(idx))).astype(str).to_numpy(
            dtype=object
        )
        agent = np.array(USER_AGENTS, dtype=object)[rng.integers(0, len(USER_AGENTS), len(idx))]
        if proof_kind == "form":
            proof = (
                '{"wording_version": "v1", "form": "signup", "ip": "'
                + ip
                + '", "user_agent": "'
                + agent
                + '"}'
            )
        elif proof_kind == "confirm":
            proof = '{"wording_version": "v1", "confirmed_via": "email_link", "ip": "' + ip + '"}'
        elif proof_kind == "sms":
            proof = np.full(len(idx), '{"wording_version": "v1", "sms_body": "STOP"}', dtype=object)
        else:
            proof = np.full(len(idx), '{"wording_version": "v1"}', dtype=object)
        parts.append(
            pd.DataFrame(
                {
                    "contact_id": ids[idx],
                    "purpose_id": purposes[purpose],
                    "channel": channel,
                    "granted": granted,
                    "awaiting_confirmation": awaiting,
                    "occurred_at": _timestamps(at),
                    "recorded_at": _constant_timestamp(now, len(idx)),
                    "source": source,
                    "proof": proof,
                    "actor": "",
                },
                columns=list(LEDGER_COLUMNS),
            )
        )

    def later(start, *, mean_hours: float):
        return start + rng.exponential(mean_hours * HOUR, size=n).astype(np.int64) + 60

    def between(start):
        span = np.maximum(now_s - start, 1)
        return start + (rng.random(n) * span).astype(np.int64)

    signup = created + rng.integers(0, 600, size=n)
    email_in = population.email_optin & has_email
    # Newsletter: form request, then the double opt-in confirmation.
    confirmed_at = later(signup, mean_hours=2)
    add(email_in, "newsletter", "email", True, True, signup, "form", "form")
    add(email_in, "newsletter", "email", True, False, confirmed_at, "double_opt_in", "confirm")
    # Some never confirmed (no consent).
    unconfirmed = ~population.email_optin & has_email & (rng.random(n) < 0.05)
    add(unconfirmed, "newsletter", "email", True, True, signup, "form", "form")
    # Promotions by email: a second box ticked on the same form.
    promo = email_in & (rng.random(n) < 0.7)
    add(promo, "promotions", "email", True, True, signup, "form", "form")
    add(promo, "promotions", "email", True, False, confirmed_at, "double_opt_in", "confirm")
    # Later newsletter unsubscribes from the link in a message.
    unsubscribed = email_in & (rng.random(n) < 0.06)
    add(
        unsubscribed,
        "newsletter",
        "email",
        False,
        False,
        between(confirmed_at),
        "unsubscribe_link",
        "plain",
    )
    # SMS promotions opt-in, and some STOP replies.
    sms_in = population.sms_optin & has_phone
    add(sms_in, "promotions", "sms", True, False, signup, "form", "form")
    stop = sms_in & (rng.random(n) < 0.08)
    add(stop, "promotions", "sms", False, False, between(signup), "sms_stop", "sms")
    # Push: product updates from the app's prompt.
    add(
        population.push_optin,
        "product_updates",
        "push",
        True,
        False,
        later(signup, mean_hours=48),
        "form",
        "form",
    )
    # Objection to profiling (Art. 21) from the preference centre.
    add(
        population.profiling_objection,
        "profiling",
        "any",
        False,
        False,
        between(signup),
        "preference_centre",
        "plain",
    )

    rows = pd.concat(parts, ignore_index=True)
    large = len(rows) >= LARGE_LEDGER_ROWS
    with transaction.atomic(), connection.cursor() as cursor:
        with (
            foreign_keys_checked_once(cursor, ConsentEvent._meta.db_table)
            if large
            else nullcontext(),
            foreign_keys_checked_once(cursor, CurrentConsent._meta.db_table)
            if large
            else nullcontext(),
        ):
            with TableWriter(cursor, ConsentEvent._meta.db_table, LEDGER_COLUMNS) as writer:
                for start in range(0, len(rows), 500_000):
                    writer.write(rows.iloc[start : start + 500_000].copy())
            current_state_rebuild(contact_id_range=(int(ids.min()), int(ids.max())))
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        # What autovacuum would do soon: statistics and the visibility map (index-only scans).
        with connection.cursor() as cursor:
            for model in (ConsentEvent, CurrentConsent):
                cursor.execute(f"VACUUM ANALYZE {model._meta.db_table}")
    return len(rows)
