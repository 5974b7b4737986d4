"""Consent benchmark: the set-based contactability filter (``consent.selectors.contactable``)
over the seeded population on PostgreSQL — target ≤ 1 s for 1,000,000 contacts — compared with
a plain ``COUNT(*)`` of the contacts table, and with the ledger-based variant for a past instant.
"""

from __future__ import annotations

from datetime import timedelta

from benchmarks.harness import Context, Result, timed


def _best_of(fn, runs: int = 3) -> tuple[float, object]:
    times, value = [], None
    for _ in range(runs):
        with timed() as t:
            value = fn()
        times.append(t["seconds"])
    return min(times), value


def run(ctx: Context) -> None:
    from django.db import connection
    from django.db.models import Count, Max, Min
    from django.utils import timezone

    from consent.models import ConsentEvent, CurrentConsent
    from consent.selectors import annotate_exclusion_reason, contactable
    from consent.services import current_state_rebuild
    from contacts.models import Contact

    everyone = Contact.objects.all()
    ledger_rows = ConsentEvent.objects.count()
    state_rows = CurrentConsent.objects.count()
    with connection.cursor() as cursor:  # steady state, as autovacuum would leave it
        for table in ("contacts_contact", "consent_currentconsent", "consent_suppression"):
            cursor.execute(f"VACUUM ANALYZE {table}")

    def raw_count() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT COUNT(*) FROM contacts_contact")
            return cursor.fetchone()[0]

    baseline, total = _best_of(raw_count)
    count_s, eligible = _best_of(
        lambda: contactable(everyone, purpose="newsletter", channel="email").count()
    )
    ids_s, ids = _best_of(
        lambda: list(
            contactable(everyone, purpose="promotions", channel="sms").values_list("pk", flat=True)
        )
    )
    past = timezone.now() - timedelta(days=30)
    past_s, eligible_past = _best_of(
        lambda: contactable(everyone, purpose="newsletter", channel="email", at=past).count(),
        runs=1,
    )
    reasons_s, reasons = _best_of(
        lambda: dict(
            annotate_exclusion_reason(everyone, purpose="newsletter", channel="email")
            .values_list("consent_exclusion_reason")
            .annotate(n=Count("id"))
            .values_list("consent_exclusion_reason", "n")
        ),
        runs=1,
    )
    bounds = Contact.objects.aggregate(lo=Min("pk"), hi=Max("pk"))
    with timed() as rebuild:
        current_state_rebuild(contact_id_range=(bounds["lo"], bounds["hi"]))
    full_scale = ctx.contacts >= 1_000_000
    ctx.record(
        Result(
            benchmark="contactable(newsletter, email).count()",
            value=count_s,
            unit="s",
            target="≤ 1 s for 1M contacts",
            passed=(count_s <= 1.0) if full_scale else None,
            comparison=f"plain COUNT(*) of contacts_contact: {baseline:.3f} s",
            details={
                "contacts": total,
                "contactable": eligible,
                "ledger_rows": ledger_rows,
                "current_state_rows": state_rows,
            },
        )
    )
    ctx.record(
        Result(
            benchmark="contactable(promotions, sms) ids fetched",
            value=ids_s,
            unit="s",
            target="≤ 1 s for 1M contacts",
            passed=(ids_s <= 1.0) if full_scale else None,
            comparison=f"{len(ids):,} ids to Python",
        )
    )
    ctx.record(
        Result(
            benchmark="contactable as of 30 days ago (ledger)",
            value=past_s,
            unit="s",
            comparison=f"current-state table: {count_s:.3f} s; contactable then: {eligible_past:,}",
        )
    )
    ctx.record(
        Result(
            benchmark="exclusion reasons grouped (newsletter, email)",
            value=reasons_s,
            unit="s",
            comparison=", ".join(f"{k or 'contactable'}: {v:,}" for k, v in reasons.items()),
        )
    )
    ctx.record(
        Result(
            benchmark="current-state rebuild from the whole ledger (one statement)",
            value=rebuild["seconds"],
            unit="s",
            comparison=f"{ledger_rows:,} ledger rows -> {state_rows:,} state rows",
        )
    )
