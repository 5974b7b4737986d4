"""Delivery: claim outbox rows, re-check consent, render, hand off, record — never twice.

State machine of an outbox row during delivery::

    queued/deferred (due) --claim--> sending --sent--> sent
                                        |--retryable, attempts left--> deferred (backoff)
                                        |--permanent / attempts exhausted--> failed
                                        |--consent withdrawn since the snapshot--> skipped
                                        '--lease expired (worker died)--> queued

A claim sets a random ``claim_token`` and a lease (``ACTIVATION_LEASE_SECONDS``, renewed by a
keeper thread every third of it while the worker holds the batch); every write of a result is
conditioned on that token, and a row leaves ``sending`` only through one of those writes, a
hand-back (breaker open, error before hand-off) or lease recovery. The result of each hand-off
is committed right after it — retried across a lost database connection with the same token —
so a worker killed mid-batch leaves only its unsent rows (and at most the one message in
flight) to be re-queued when the lease expires; a re-sent message keeps its ``Message-ID`` so
receivers can collapse it. Consent and suppression are re-checked right before hand-off, for
small slices of the batch (see ``ACTIVATION_CONSENT_RECHECK_*``).
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parseaddr
from functools import lru_cache, partial

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import Exists, F, OuterRef
from django.template import TemplateSyntaxError
from django.utils import timezone

from activation.breaker import breaker_record, breaker_wait_seconds
from activation.channels import OutgoingMessage, PushTarget, SendResult, channel_backend
from activation.metrics import metrics_outcomes_count
from activation.models import (
    CLAIMABLE_STATES,
    OPEN_STATES,
    AttemptOutcome,
    CampaignRun,
    DeliveryAttempt,
    OutboxMessage,
    OutboxState,
    RunStatus,
    SkipReason,
    TemplateVersion,
)
from activation.ratelimit import rate_limit_acquire
from activation.rendering import ALL_FIELDS, message_render, template_version_for
from activation.sms import with_stop_mention
from activation.tracking import click_url, links_rewrite
from activation.variants import variant_content
from consent.models import LegalBasis
from consent.selectors import contactable
from consent.services import suppression_add
from consent.tokens import list_unsubscribe_headers, preference_centre_url, unsubscribe_url
from contacts.models import Contact, PushSubscription
from segments.models import ContactFeatures

logger = logging.getLogger(__name__)

# A lost or refused database connection (restart, failover, network): reconnect and retry.
DATABASE_CONNECTION_ERRORS = (OperationalError, InterfaceError)


@dataclass
class DeliveryStats:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    skipped: int = 0
    recovered: int = 0
    released: int = 0  # handed back unsent (breaker open, error before hand-off)
    paused_for: float = 0.0  # seconds until the channel's breaker lets claims resume
    errors: list[str] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, other: DeliveryStats) -> None:
        for name in ("claimed", "sent", "retried", "failed", "skipped", "recovered", "released"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.paused_for = max(self.paused_for, other.paused_for)
        self.errors.extend(other.errors[:20])
        for key, count in other.outcomes.items():
            self.outcomes[key] += count


def database_retry(operation, *, what: str, budget_seconds: float | None = None):
    """``operation()``, retried after a lost database connection (closed, then reconnected on
    the next query) with backoff 0.5 s → 5 s for ``ACTIVATION_DB_RETRY_SECONDS``; re-raises
    after that, or at once inside a transaction (the caller's atomic block must unwind)."""
    budget = settings.ACTIVATION_DB_RETRY_SECONDS if budget_seconds is None else budget_seconds
    deadline = time.monotonic() + budget
    delay = 0.5
    while True:
        try:
            return operation()
        except DATABASE_CONNECTION_ERRORS as exc:
            if connection.in_atomic_block or time.monotonic() >= deadline:
                raise
            logger.warning(
                "database unavailable during %s (%s); retrying in %.1f s", what, exc, delay
            )
            database_connection_reset()
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 5.0)


def database_connection_reset() -> None:
    """Drop this thread's (broken) connection; the next query opens a new one."""
    try:
        connection.close()
    except Exception:  # noqa: BLE001 - closing a dead socket may fail; it is gone either way
        connection.connection = None


class LeaseKeeper:
    """Renews the lease of the rows claimed with ``token`` every third of
    ``ACTIVATION_LEASE_SECONDS`` from a thread (its own connection) while the block runs, so a
    slow batch keeps its rows and a dead worker's rows come back within one lease."""

    def __init__(self, token: str):
        self.token = token
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def __enter__(self) -> LeaseKeeper:
        # In a test's transaction the claim is invisible to another connection: nothing to renew.
        if not connection.in_atomic_block:
            self.thread = threading.Thread(target=self._run, name="cible-lease", daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=10)

    def _run(self) -> None:
        interval = max(0.2, settings.ACTIVATION_LEASE_SECONDS / 3)
        try:
            while not self.stop.wait(interval):
                try:
                    outbox_leases_renew(token=self.token, now=timezone.now())
                except Exception as exc:  # noqa: BLE001 - retried at the next interval
                    logger.warning("lease renewal failed (%s); retrying", exc)
                    database_connection_reset()
        finally:
            database_connection_reset()


def outbox_leases_renew(*, token: str, now: datetime) -> int:
    """Push the lease of the rows still held with ``token`` one lease further."""
    return OutboxMessage.objects.filter(claim_token=token, state=OutboxState.SENDING).update(
        lease_expires_at=now + timedelta(seconds=settings.ACTIVATION_LEASE_SECONDS)
    )


def outbox_claims_release(*, token: str, message_pks: list[int], next_attempt_at: datetime) -> int:
    """Hand rows claimed with ``token`` but not handed off back to the queue, their attempt
    not counted (the provider never saw them)."""
    if not message_pks:
        return 0
    return OutboxMessage.objects.filter(
        pk__in=message_pks, claim_token=token, state=OutboxState.SENDING
    ).update(
        state=OutboxState.QUEUED,
        claim_token="",
        lease_expires_at=None,
        next_attempt_at=next_attempt_at,
        attempts=F("attempts") - 1,
    )


def retry_delay_seconds(attempt: int, *, retry_after: float | None = None) -> float:
    """Exponential backoff with full jitter in [½, 1½] × base × 2^(attempt-1), capped;
    a provider's ``Retry-After`` is a floor."""
    base = settings.ACTIVATION_RETRY_BASE_SECONDS * (2 ** max(0, attempt - 1))
    delay = min(settings.ACTIVATION_RETRY_MAX_SECONDS, base) * random.uniform(0.5, 1.5)
    return max(delay, retry_after or 0.0)


def outbox_leases_recover(*, now: datetime) -> int:
    """Re-queue rows whose claim lease expired (their worker died); returns how many."""
    return OutboxMessage.objects.filter(state=OutboxState.SENDING, lease_expires_at__lt=now).update(
        state=OutboxState.QUEUED, claim_token="", lease_expires_at=None, next_attempt_at=now
    )


def outbox_claim(*, channel: str, limit: int, now: datetime) -> str:
    """Claim up to ``limit`` due rows of ``channel`` for this caller; return the claim token.

    PostgreSQL: candidates are locked with ``SELECT … FOR UPDATE SKIP LOCKED`` so concurrent
    workers take disjoint rows. SQLite (one writer at a time): the conditional
    ``UPDATE … WHERE state IN (queued, deferred)`` is the arbiter; rows another worker took
    first are simply not updated, and only rows carrying our token are ours.
    """
    token = uuid.uuid4().hex
    lease = now + timedelta(seconds=settings.ACTIVATION_LEASE_SECONDS)
    due = OutboxMessage.objects.filter(
        channel=channel, state__in=CLAIMABLE_STATES, next_attempt_at__lte=now
    ).order_by("next_attempt_at", "id")
    with transaction.atomic():
        if connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True)
        ids = list(due.values_list("id", flat=True)[:limit])
        if ids:
            OutboxMessage.objects.filter(id__in=ids, state__in=CLAIMABLE_STATES).update(
                state=OutboxState.SENDING,
                claim_token=token,
                lease_expires_at=lease,
                attempts=F("attempts") + 1,
                skip_reason="",
            )
    return token


def _result_write(
    *,
    message_pk: int,
    token: str,
    changes: dict,
    attempt: int,
    outcome: str,
    result: SendResult,
    now,
) -> bool:
    """Apply ``changes`` to the row if this claim still holds it, and log the attempt.

    PostgreSQL: ONE statement (``WITH u AS (UPDATE … RETURNING) INSERT … SELECT FROM u``),
    committed on its own — one round trip per message. Elsewhere: both statements in one
    transaction. Built from model metadata only (no user input in identifiers)."""
    log = {
        "provider_message_id": result.provider_message_id[:255],
        "error": result.error[:2000],
    }
    if connection.vendor != "postgresql":
        with transaction.atomic():
            updated = OutboxMessage.objects.filter(
                pk=message_pk, claim_token=token, state=OutboxState.SENDING
            ).update(**changes)
            if updated:
                DeliveryAttempt.objects.create(
                    message_id=message_pk, attempt=attempt, at=now, outcome=outcome, **log
                )
        return bool(updated)
    quote = connection.ops.quote_name
    outbox, attempts = OutboxMessage._meta, DeliveryAttempt._meta
    sets = ", ".join(f"{quote(outbox.get_field(name).column)} = %s" for name in changes)
    values = [
        outbox.get_field(name).get_db_prep_save(value, connection)
        for name, value in changes.items()
    ]
    # Identifiers come from model metadata; every value is a parameter.
    sql = (
        f"WITH u AS (UPDATE {quote(outbox.db_table)} SET {sets} "  # noqa: S608
        f"WHERE {quote('id')} = %s AND {quote('claim_token')} = %s AND {quote('state')} = %s "
        f"RETURNING {quote('id')}) "
        f"INSERT INTO {quote(attempts.db_table)} ({quote('message_id')}, {quote('attempt')}, "
        f"{quote('at')}, {quote('outcome')}, {quote('provider_message_id')}, {quote('error')}) "
        f"SELECT u.{quote('id')}, %s, %s, %s, %s, %s FROM u"
    )
    params = [
        *values,
        message_pk,
        token,
        OutboxState.SENDING.value,
        attempt,
        now,
        outcome,
        log["provider_message_id"],
        log["error"],
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount > 0


def _record(message: OutboxMessage, token: str, result: SendResult, stats: DeliveryStats) -> None:
    """Write the outcome of one hand-off (its own commit), then its side effects."""
    now = timezone.now()
    release = {"claim_token": "", "lease_expires_at": None, "message_id": message.message_id}
    if result.ok:
        changes = {
            "state": OutboxState.SENT.value,
            "sent_at": now,
            "provider_message_id": result.provider_message_id[:255],
            "error": "",
        }
        outcome = AttemptOutcome.SENT
    elif result.retryable and _retry_allowed(message, now):
        delay = retry_delay_seconds(message.attempts, retry_after=result.retry_after)
        changes = {
            "state": OutboxState.DEFERRED.value,
            "next_attempt_at": now + timedelta(seconds=delay),
            "error": result.error[:2000],
        }
        outcome = AttemptOutcome.RETRYABLE
    else:
        changes = {"state": OutboxState.FAILED.value, "error": result.error[:2000]}
        outcome = AttemptOutcome.GAVE_UP if result.retryable else AttemptOutcome.PERMANENT
    # The provider has the message: its result must land, so a lost connection is retried
    # (same token, conditional write) instead of leaving the row to its lease and a re-send.
    updated = database_retry(
        partial(
            _result_write,
            message_pk=message.pk,
            token=token,
            changes={**changes, **release},
            attempt=message.attempts,
            outcome=outcome.value,
            result=result,
            now=now,
        ),
        what=f"the result write of outbox message {message.pk}",
    )
    if updated:
        stats.outcomes[f"{message.channel}:{outcome.value}"] += 1
        if outcome == AttemptOutcome.SENT:
            stats.sent += 1
        elif outcome == AttemptOutcome.RETRYABLE:
            stats.retried += 1
        else:
            stats.failed += 1
            if result.error and len(stats.errors) < 20:
                stats.errors.append(result.error[:200])
    if updated and result.hard_bounce and message.channel == "email" and message.contact.email:
        suppression_add(
            channel="email",
            address=message.contact.email,
            reason="hard_bounce",
            source="activation.smtp",
        )
    if result.deactivated_subscription_ids:
        PushSubscription.objects.filter(pk__in=result.deactivated_subscription_ids).update(
            active=False, deactivated_at=now
        )


def _retry_allowed(message: OutboxMessage, now: datetime) -> bool:
    """Retryable failures are retried for ``ACTIVATION_RETRY_WINDOW_HOURS`` after the first
    attempt (and within ``ACTIVATION_MAX_ATTEMPTS`` when that is set)."""
    cap = settings.ACTIVATION_MAX_ATTEMPTS
    if cap and message.attempts >= cap:
        return False
    first = (
        DeliveryAttempt.objects.filter(message_id=message.pk)
        .order_by("at")
        .values_list("at", flat=True)
        .first()
    )
    window = timedelta(hours=settings.ACTIVATION_RETRY_WINDOW_HOURS)
    return first is None or now - first < window


@lru_cache(maxsize=4)
def _message_id_domain(from_email: str) -> str:
    return parseaddr(from_email)[1].rpartition("@")[2] or "cible.localhost"


def _message_id_header(message: OutboxMessage) -> str:
    domain = _message_id_domain(settings.DEFAULT_FROM_EMAIL)
    return f"<cible.{message.run_id}.{message.pk}.{message.step}@{domain}>"


def _is_marketing(purpose) -> bool:
    return purpose.legal_basis != LegalBasis.CONTRACT


def _claimed_rows(token: str, stats: DeliveryStats) -> list[OutboxMessage]:
    """The rows claimed with ``token``, with their contact, run, campaign, template and
    purpose — each run (and its campaign) loaded once per batch, not once per row.

    A row whose contact no longer exists (deleted after the snapshot; the outbox has no
    database-level foreign key) is ``cancelled`` here rather than left to be re-claimed."""
    rows = list(
        OutboxMessage.objects.filter(claim_token=token, state=OutboxState.SENDING).order_by("id")
    )
    stats.claimed = len(rows)
    if not rows:
        return rows
    contacts = Contact.objects.in_bulk({row.contact_id for row in rows})
    runs = CampaignRun.objects.select_related("campaign__template", "campaign__purpose").in_bulk(
        {row.run_id for row in rows}
    )
    gone = [row.pk for row in rows if row.contact_id not in contacts or row.run_id not in runs]
    if gone:
        OutboxMessage.objects.filter(pk__in=gone, claim_token=token).update(
            state=OutboxState.CANCELLED, claim_token="", lease_expires_at=None
        )
    kept = []
    for row in rows:
        if row.contact_id in contacts and row.run_id in runs:
            row.contact = contacts[row.contact_id]
            row.run = runs[row.run_id]
            kept.append(row)
    return kept


def _skip_withdrawn(rows: list[OutboxMessage], token: str, stats: DeliveryStats) -> list:
    """Consent (and suppression, erasure) re-checked at the moment of sending, one query per
    run among ``rows``; refused rows are recorded ``skipped``, the others returned."""
    by_run: dict[int, list[OutboxMessage]] = defaultdict(list)
    for row in rows:
        by_run[row.run_id].append(row)
    keep: list[OutboxMessage] = []
    for run_rows in by_run.values():
        campaign = run_rows[0].run.campaign
        ids = [row.contact_id for row in run_rows]
        allowed = set(
            contactable(
                Contact.objects.filter(pk__in=ids),
                purpose=campaign.purpose,
                channel=run_rows[0].channel,
            ).values_list("pk", flat=True)
        )
        refused = [row.pk for row in run_rows if row.contact_id not in allowed]
        if refused:
            skipped = OutboxMessage.objects.filter(
                pk__in=refused, claim_token=token, state=OutboxState.SENDING
            ).update(
                state=OutboxState.SKIPPED,
                skip_reason=SkipReason.CONSENT_WITHDRAWN,
                claim_token="",
                lease_expires_at=None,
            )
            stats.skipped += skipped
            stats.outcomes[f"{run_rows[0].channel}:skipped_consent_withdrawn"] += skipped
        keep.extend(row for row in run_rows if row.contact_id in allowed)
    return keep


def message_build(
    *,
    message: OutboxMessage,
    contact: Contact,
    features,
    push_targets: list[PushTarget],
    versions: dict,
) -> OutgoingMessage:
    """Render ``message`` for ``contact`` into an ``OutgoingMessage`` (tracking links, headers,
    STOP mention). Raises TemplateSyntaxError / ValueError for an unrenderable message."""
    campaign = message.run.campaign
    overrides: dict = {}
    if message.variant:
        key = ("variant", message.run_id, message.variant)
        if key not in versions:
            versions[key] = variant_content(run=message.run, variant=message.variant)
        overrides = versions[key]
    template = overrides.get("template") or campaign.template
    if template.pk not in versions:
        versions[template.pk] = {v.locale: v for v in template.versions.all()}
    version = template_version_for(template, contact.locale, versions[template.pk])
    if version is None:
        raise ValueError(f"template {template} has no version")
    if any(field in overrides for field in ALL_FIELDS):
        version = TemplateVersion(
            template=template,
            locale=version.locale,
            **{field: overrides.get(field, getattr(version, field)) for field in ALL_FIELDS},
        )
    marketing = _is_marketing(campaign.purpose)
    headers: dict[str, str] = {}
    if message.channel == "email" and marketing:
        headers = list_unsubscribe_headers(contact=contact, purpose=campaign.purpose)
    link = headers.get("List-Unsubscribe", "").strip().removeprefix("<").removesuffix(">")
    rendered = message_render(
        version=version,
        contact=contact,
        features=features,
        campaign=campaign,
        # Signed links cost a signature each: the template engine calls these only if used.
        unsubscribe_url=(lambda: link)
        if link
        else partial(
            unsubscribe_url, contact=contact, purpose=campaign.purpose, channel=message.channel
        ),
        preferences_url=partial(preference_centre_url, contact=contact),
    )
    out = OutgoingMessage(outbox_id=message.pk, channel=message.channel)
    if message.channel == "email":
        base = settings.CIBLE_PUBLIC_BASE_URL.rstrip("/")
        out.to = contact.email
        out.subject = rendered.subject
        out.text = rendered.text
        out.html = (
            links_rewrite(rendered.html, message_id=message.pk, skip_prefixes=(base,))
            if rendered.html
            else ""
        )
        out.message_id = message.message_id or _message_id_header(message)
        out.headers.update(headers)
    elif message.channel == "sms":
        out.to = contact.phone
        out.sms_marketing = marketing
        out.sms_body = with_stop_mention(rendered.sms_body, marketing=marketing)
    else:
        out.push_targets = push_targets
        out.push_payload = {
            "title": rendered.push_title,
            "body": rendered.push_body,
            "url": click_url(message.pk, rendered.push_url) if rendered.push_url else "",
            "tag": f"cible-run-{message.run_id}",
        }
    message.message_id = out.message_id
    return out


def outbox_deliver_batch(*, channel: str, limit: int, now: datetime | None = None) -> DeliveryStats:
    """Claim up to ``limit`` due rows of ``channel``, send them, record each result.

    Guarantees: a row is handed off only while claimed by this call (its lease renewed while
    the batch runs); consent (and suppression, erasure) is re-checked set-based right before
    hand-off for the next ``ACTIVATION_CONSENT_RECHECK_SLICE`` rows, and again whenever that
    check is older than ``ACTIVATION_CONSENT_RECHECK_MS`` — refused rows are recorded
    ``skipped`` with reason ``consent_withdrawn``; each result is committed right after its
    hand-off; retryable errors are retried with backoff for ``ACTIVATION_RETRY_WINDOW_HOURS``.
    While the channel's circuit breaker is open nothing is claimed (``stats.paused_for``), and
    a batch that sees it open hands its unsent rows back to the queue.
    """
    now = now or timezone.now()
    stats = DeliveryStats(recovered=outbox_leases_recover(now=now))
    stats.paused_for = breaker_wait_seconds(channel)
    if stats.paused_for:
        return stats
    token = outbox_claim(channel=channel, limit=limit, now=now)
    rows = _claimed_rows(token, stats)
    if rows:
        with LeaseKeeper(token):
            _deliver_claimed(channel, rows, token, stats)
    return stats


def _deliver_claimed(channel: str, rows: list[OutboxMessage], token: str, stats) -> None:
    contact_ids = [row.contact_id for row in rows]
    features = {f.contact_id: f for f in ContactFeatures.objects.filter(contact_id__in=contact_ids)}
    targets: dict[int, list[PushTarget]] = defaultdict(list)
    if channel == "push":
        for sub in PushSubscription.objects.filter(contact_id__in=contact_ids, active=True):
            targets[sub.contact_id].append(PushTarget(sub.pk, sub.endpoint, sub.p256dh, sub.auth))
    versions: dict = {}
    ready: list[tuple[OutboxMessage, OutgoingMessage]] = []
    for row in rows:
        try:
            outgoing = message_build(
                message=row,
                contact=row.contact,
                features=features.get(row.contact_id),
                push_targets=targets.get(row.contact_id, []),
                versions=versions,
            )
        except (TemplateSyntaxError, ValueError) as exc:
            _record(row, token, SendResult.permanent(row.pk, f"rendering failed: {exc}"), stats)
            continue
        ready.append((row, outgoing))
    progress = [0]  # entries of ``ready`` before this index were dealt with
    try:
        with channel_backend(channel) as backend:
            _hand_off(channel, backend, ready, token, stats, progress)
    finally:
        unsent = [row.pk for row, _out in ready[progress[0] :]]
        if unsent:
            # Breaker open or an error before these reached the provider: back to the queue
            # now rather than after the lease (best effort: the lease covers a dead database).
            retry_at = timezone.now() + timedelta(seconds=stats.paused_for)
            try:
                stats.released += outbox_claims_release(
                    token=token, message_pks=unsent, next_attempt_at=retry_at
                )
            except Exception as exc:  # noqa: BLE001
                logger.warning("could not hand back %s claimed rows (%s)", len(unsent), exc)


def _hand_off(
    channel: str, backend, ready: list, token: str, stats: DeliveryStats, progress: list[int]
) -> None:
    """Send ``ready`` in backend-sized chunks, re-checking consent (and the breaker) for small
    slices right before hand-off. ``progress[0]`` counts the entries of ``ready`` dealt with
    (handed off or skipped); the caller hands the rest back if this returns or raises early."""
    size = max(1, backend.batch_size)
    slice_size = max(size, settings.ACTIVATION_CONSENT_RECHECK_SLICE)
    max_age = settings.ACTIVATION_CONSENT_RECHECK_MS / 1000.0
    pos = checked_end = granted = 0
    checked_at = float("-inf")
    fresh = False  # a check just ran: hand off at least one chunk before checking again
    while pos < len(ready):
        wanted = min(size, len(ready) - pos)
        if granted < wanted:  # tokens first: the consent check must not age in the wait
            rate_limit_acquire(channel, wanted - granted)
            granted = wanted
        if pos >= checked_end or (not fresh and time.monotonic() - checked_at > max_age):
            stats.paused_for = breaker_wait_seconds(channel)
            if stats.paused_for:
                return
            window = ready[pos : pos + slice_size]
            allowed = database_retry(
                partial(_skip_withdrawn, [row for row, _out in window], token, stats),
                what="the consent re-check",
            )
            kept = {row.pk for row in allowed}
            ready[pos : pos + slice_size] = [pair for pair in window if pair[0].pk in kept]
            checked_end, checked_at, fresh = pos + len(kept), time.monotonic(), True
            continue
        fresh = False
        chunk = ready[pos : min(pos + size, checked_end)]
        granted = max(0, granted - len(chunk))
        results = {r.outbox_id: r for r in backend.send([out for _row, out in chunk])}
        pos = progress[0] = pos + len(chunk)
        failures = successes = 0
        for row, out in chunk:
            result = results.get(out.outbox_id) or SendResult.retry(
                out.outbox_id, "the channel backend returned no result"
            )
            _record(row, token, result, stats)
            if result.ok or not result.retryable:
                successes += 1
            else:
                failures += 1
        if breaker_record(channel, failures=failures, successes=successes):
            checked_end = pos  # look at the breaker before the next hand-off


def outbox_next_due_in(*, channel: str, now: datetime, horizon: float = 60.0) -> float | None:
    """Seconds until the next row of ``channel`` becomes due (deferred row or expired lease),
    if within ``horizon`` seconds; ``None`` when nothing is pending that soon."""
    # Two index-backed "first row" reads (partial indexes outbox_claim_order and
    # outbox_expired_leases), not an aggregate over the channel's whole history.
    due = (
        OutboxMessage.objects.filter(channel=channel, state__in=CLAIMABLE_STATES)
        .order_by("next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first()
    )
    lease = (
        OutboxMessage.objects.filter(state=OutboxState.SENDING, channel=channel)
        .order_by("lease_expires_at")
        .values_list("lease_expires_at", flat=True)
        .first()
    )
    pending = {"due": due, "lease": lease}
    times = [t for t in (pending["due"], pending["lease"]) if t is not None]
    if not times:
        return None
    wait = max(0.0, (min(times) - now).total_seconds())
    return wait if wait <= horizon else None


def outbox_deliver_pending(*, channel: str, budget_seconds: float | None = None) -> tuple:
    """Deliver due rows of ``channel`` batch after batch until none is due or the time budget
    is spent; returns ``(stats, next_due_in)`` where ``next_due_in`` (seconds, or ``None``)
    tells the caller when to come back for rows deferred or leased a short while."""
    budget = (
        budget_seconds if budget_seconds is not None else settings.ACTIVATION_TASK_BUDGET_SECONDS
    )
    deadline = time.monotonic() + budget
    total = DeliveryStats()
    while time.monotonic() < deadline:
        stats = database_retry(
            partial(outbox_deliver_batch, channel=channel, limit=settings.ACTIVATION_BATCH_SIZE),
            what=f"{channel} delivery",
            budget_seconds=max(0.0, deadline - time.monotonic()),
        )
        total.add(stats)
        if not stats.claimed or stats.paused_for:
            break
    metrics_outcomes_count(total.outcomes)
    database_retry(partial(campaign_runs_finish, now=timezone.now()), what="finishing runs")
    next_due = database_retry(
        partial(outbox_next_due_in, channel=channel, now=timezone.now()), what="the next due row"
    )
    if total.paused_for:
        next_due = min(total.paused_for, next_due) if next_due is not None else total.paused_for
    return total, next_due


def campaign_runs_finish(*, now: datetime) -> int:
    """Mark ``sending`` runs with no open row left as done — "done with failures" when some
    rows failed — storing their final counts."""
    from activation.selectors import run_state_and_reason_counts

    open_rows = OutboxMessage.objects.filter(run=OuterRef("pk"), state__in=OPEN_STATES)
    done = 0
    for run in CampaignRun.objects.filter(status=RunStatus.SENDING).exclude(Exists(open_rows)):
        by_state, by_reason = run_state_and_reason_counts(run)
        run.counts = {**run.counts, "by_state": by_state, "by_reason": by_reason}
        run.status = (
            RunStatus.DONE_WITH_FAILURES if by_state.get(OutboxState.FAILED) else RunStatus.DONE
        )
        run.finished_at = now
        run.save(update_fields=["counts", "status", "finished_at"])
        done += 1
    return done
