"""Services of activation: launching runs (eligibility + outbox), delivery, test sends,
operator actions, tracking and attribution, and the contact lifecycle hooks.

Delivery itself lives in ``activation.delivery`` (re-exported here).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import partial
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction
from django.db.models import (
    Case,
    CharField,
    Count,
    DateTimeField,
    ExpressionWrapper,
    F,
    OuterRef,
    Subquery,
    Value,
    When,
)
from django.utils import timezone

from activation.breaker import breaker_wait_seconds
from activation.broker import BROKER_ERRORS
from activation.channels import PushTarget, SendResult, channel_backend
from activation.delivery import (
    DeliveryStats,
    campaign_runs_finish,
    outbox_deliver_batch,
    outbox_deliver_pending,
    outbox_leases_recover,
)
from activation.models import (
    CLAIMABLE_STATES,
    FINISHED_RUN_STATES,
    OPEN_STATES,
    Attribution,
    Campaign,
    CampaignRun,
    DeliveryAttempt,
    MessageChannel,
    OutboxMessage,
    OutboxState,
    QuietHoursPolicy,
    RunStatus,
    SkipReason,
    Template,
)
from activation.rendering import template_lacks_content_for, template_unknown_variables
from activation.selectors import (
    eligibility_queryset,
    next_local_time,
    run_channels,
    run_progress,
    run_state_and_reason_counts,
)
from activation.variants import (
    VARIANT_CHUNK,
    assign_variants,
    has_variant_assigner,
    variant_content,
)
from contacts.models import Contact, Event, PushSubscription
from contacts.signals import events_ingested

__all__ = [
    "DeliveryStats",
    "EligibilityReport",
    "campaign_problems",
    "campaign_run_cancel",
    "campaign_run_create",
    "campaign_run_launch",
    "campaign_run_prepare",
    "campaign_run_prepare_and_deliver",
    "campaign_runs_finish",
    "conversions_attribute",
    "eligibility_report",
    "message_render_test",
    "message_send_test",
    "outbox_deliver_batch",
    "outbox_defer_to_local_time",
    "outbox_deliver_pending",
    "delivery_enqueues_recorded",
    "delivery_tasks_enqueue",
    "outbox_delivery_start",
    "outbox_retry_failed",
    "outbox_sweep",
    "tracking_click_record",
    "tracking_open_record",
]

SAMPLES_PER_REASON = 5

logger = logging.getLogger(__name__)


@dataclass
class EligibilityReport:
    """What a launch would do now: audience size, eligible count, excluded counts per reason
    (``quiet_hours`` counts are deferred or skipped per the campaign), samples per reason."""

    audience: int
    eligible: int
    by_reason: dict[str, int]
    samples: dict[str, list[dict]] = field(default_factory=dict)
    quiet_hours_policy: str = QuietHoursPolicy.DEFER

    @property
    def deferred(self) -> int:
        if self.quiet_hours_policy == QuietHoursPolicy.DEFER:
            return self.by_reason.get(SkipReason.QUIET_HOURS, 0)
        return 0

    def as_dict(self) -> dict:
        return {
            "audience": self.audience,
            "eligible": self.eligible,
            "deferred": self.deferred,
            "by_reason": self.by_reason,
            "samples": self.samples,
        }


def campaign_problems(*, campaign: Campaign) -> dict[str, str]:
    """Per-field reasons (translated) why ``campaign`` cannot send what it says: its template
    is for another channel, or some locale of it has no content for the campaign's channel.
    Checked when the campaign is saved and again at launch."""
    from django.utils.translation import gettext as _

    template = campaign.template if campaign.template_id is not None else None
    if template is None or not campaign.channel:
        return {}
    channel = MessageChannel(campaign.channel).label
    if template.channel != campaign.channel:
        return {
            "template": _(
                "The template “%(template)s” is for %(template_channel)s; this campaign "
                "sends %(channel)s. Choose a template of that channel."
            )
            % {
                "template": template,
                "template_channel": MessageChannel(template.channel).label,
                "channel": channel,
            }
        }
    missing = template_lacks_content_for(template, campaign.channel)
    if missing == ["*"]:
        return {
            "template": _("The template “%(template)s” has no version yet: write its content.")
            % {"template": template}
        }
    if missing:
        return {
            "template": _(
                "The template “%(template)s” has no %(channel)s content in: %(locales)s. "
                "Write it in the template, or choose another template."
            )
            % {"template": template, "channel": channel, "locales": ", ".join(missing)}
        }
    return {}


def eligibility_report(*, campaign: Campaign, now: datetime) -> EligibilityReport:
    """Counts by reason (one GROUP BY over the eligibility statement) and up to
    ``SAMPLES_PER_REASON`` sample contacts per reason. Writes nothing."""
    qs = eligibility_queryset(campaign=campaign, now=now)
    by_reason: dict[str, int] = {}
    for row in qs.order_by().values("exclusion_reason").annotate(n=Count("pk")):
        by_reason[row["exclusion_reason"]] = row["n"]
    eligible = by_reason.pop("", 0)
    samples = {
        reason: [
            {
                "id": c["pk"],
                "external_id": c["external_id"],
                "email": c["email"],
                "phone": c["phone"],
            }
            for c in qs.filter(exclusion_reason=reason)
            .order_by("pk")
            .values("pk", "external_id", "email", "phone")[:SAMPLES_PER_REASON]
        ]
        for reason in sorted(by_reason)
    }
    return EligibilityReport(
        audience=eligible + sum(by_reason.values()),
        eligible=eligible,
        by_reason=dict(sorted(by_reason.items())),
        samples=samples,
        quiet_hours_policy=campaign.quiet_hours_policy,
    )


def outbox_state_expression(*, campaign: Campaign) -> Case:
    """The outbox state of a row from the eligibility queryset's ``exclusion_reason``: queued
    when eligible, deferred or skipped in quiet hours (per the campaign's policy), else skipped."""
    defer = campaign.quiet_hours_policy == QuietHoursPolicy.DEFER
    return Case(
        When(exclusion_reason="", then=Value(OutboxState.QUEUED.value)),
        When(
            exclusion_reason=SkipReason.QUIET_HOURS.value,
            then=Value(OutboxState.DEFERRED.value if defer else OutboxState.SKIPPED.value),
        ),
        default=Value(OutboxState.SKIPPED.value),
        output_field=CharField(),
    )


def _outbox_insert_snapshot(*, run: CampaignRun, campaign: Campaign, now: datetime) -> None:
    """INSERT … SELECT of the whole audience into the outbox: ONE SQL statement around the
    eligibility queryset compiled by the ORM (identifiers come from model metadata only, every
    value is a parameter).

    The eligibility SELECT sits in a derived table fenced with ``OFFSET 0`` on PostgreSQL, so
    each contact's exclusion reason is computed once and then read by the ``state``,
    ``skip_reason`` and ``next_attempt_at`` columns (without the fence the planner would inline
    the reason's CASE — and its subplans — into each of them)."""
    eligibility = (
        eligibility_queryset(campaign=campaign, now=now)
        .annotate(out_contact=F("pk"), out_reason=F("exclusion_reason"), out_due=F("due_at"))
        .order_by()
        .values_list("out_contact", "out_reason", "out_due")
    )
    inner, inner_params = eligibility.query.sql_with_params()
    fence = " OFFSET 0" if connection.vendor == "postgresql" else ""
    defer = campaign.quiet_hours_policy == QuietHoursPolicy.DEFER
    quiet_state = OutboxState.DEFERRED if defer else OutboxState.SKIPPED
    meta = OutboxMessage._meta
    quote = connection.ops.quote_name

    def col(name: str) -> str:
        return quote(meta.get_field(name).column)

    e_contact, e_reason, e_due = (f"e.{quote(a)}" for a in ("out_contact", "out_reason", "out_due"))
    columns = {
        "run": ("%s", [run.pk]),
        "contact": (e_contact, []),
        "step": ("0", []),
        "channel": ("%s", [campaign.channel]),
        "variant": ("''", []),
        "state": (
            f"CASE {e_reason} WHEN '' THEN %s WHEN %s THEN %s ELSE %s END",
            [
                OutboxState.QUEUED.value,
                SkipReason.QUIET_HOURS.value,
                quiet_state.value,
                OutboxState.SKIPPED.value,
            ],
        ),
        "skip_reason": (e_reason, []),
        "attempts": ("0", []),
        "next_attempt_at": (e_due, []),
        "claim_token": ("''", []),
        "provider_message_id": ("''", []),
        "message_id": ("''", []),
        "error": ("''", []),
        "created_at": ("%s", [now]),
    }
    names = ", ".join(col(name) for name in columns)
    values = ", ".join(expr for expr, _ in columns.values())
    head_params = [p for _, params in columns.values() for p in params]
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({names}) "  # noqa: S608 (identifiers from metadata)
        f"SELECT {values} FROM ({inner}{fence}) e"
    )
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # A one-statement bulk write: JIT compilation of its many expressions costs more
            # than it saves here.
            cursor.execute("SET LOCAL jit = off")
        cursor.execute(sql, [*head_params, *inner_params])


def _outbox_state_for(reason: str, campaign: Campaign) -> str:
    """The outbox state of an eligibility ``reason`` (Python twin of
    ``outbox_state_expression``, for rows re-checked after the snapshot)."""
    if reason == "":
        return OutboxState.QUEUED
    if reason == SkipReason.QUIET_HOURS and campaign.quiet_hours_policy == QuietHoursPolicy.DEFER:
        return OutboxState.DEFERRED
    return OutboxState.SKIPPED


def _outbox_switch_channel(
    *, run: CampaignRun, campaign: Campaign, variant: str, channel: str, now: datetime
) -> None:
    """Move the waiting rows of ``variant`` to ``channel`` and re-check each contact's
    eligibility there (consent, address, caps, quiet hours): one eligibility statement per
    chunk of contacts, one UPDATE per distinct (reason, due time)."""
    rows = OutboxMessage.objects.filter(
        run=run, step=0, variant=variant, state__in=CLAIMABLE_STATES
    )
    contact_ids = list(rows.order_by("contact_id").values_list("contact_id", flat=True))
    for start in range(0, len(contact_ids), VARIANT_CHUNK):
        ids = contact_ids[start : start + VARIANT_CHUNK]
        checked = eligibility_queryset(
            campaign=campaign,
            now=now,
            audience=Contact.objects.filter(pk__in=ids),
            channel=channel,
            exclude_run=run.pk,
        ).values_list("pk", "exclusion_reason", "due_at")
        groups: dict[tuple, list[int]] = {}
        for contact_id, reason, due in checked:
            groups.setdefault((reason, due), []).append(contact_id)
        for (reason, due), members in groups.items():
            OutboxMessage.objects.filter(run=run, step=0, contact_id__in=members).update(
                channel=channel,
                state=_outbox_state_for(reason, campaign),
                skip_reason=reason,
                next_attempt_at=due,
            )


def outbox_defer_to_local_time(
    *, run: CampaignRun, local_time, now: datetime, variant: str | None = None
) -> int:
    """Every waiting message of ``run`` (of ``variant`` only, if given) becomes due at the
    next ``local_time`` in its contact's zone (zones read once; one UPDATE per zone).
    Returns rows updated."""
    waiting = OutboxMessage.objects.filter(run=run, state__in=CLAIMABLE_STATES)
    if variant is not None:
        waiting = waiting.filter(variant=variant)
    zones = set(waiting.values_list("contact__timezone", flat=True).distinct())
    updated = 0
    for name in sorted(zones):
        try:
            zone = ZoneInfo(name)
        except (KeyError, ValueError):
            zone = ZoneInfo(settings.TIME_ZONE)
        due = next_local_time(now, local_time, zone)
        updated += OutboxMessage.objects.filter(
            pk__in=waiting.filter(contact__timezone=name).values("pk")
        ).update(state=OutboxState.QUEUED, skip_reason="", next_attempt_at=due)
    return updated


def _variants_delivery_apply(*, run: CampaignRun, campaign: Campaign, now: datetime) -> None:
    """A variant's channel and send-time overrides (``activation.variants``): its rows move
    to that channel (eligibility re-checked there) and wait for that local time."""
    keys = (
        OutboxMessage.objects.filter(run=run, step=0, state__in=CLAIMABLE_STATES)
        .exclude(variant="")
        .order_by("variant")
        .values_list("variant", flat=True)
        .distinct()
    )
    for key in list(keys):
        overrides = variant_content(run=run, variant=key)
        channel = overrides.get("channel")
        if channel and channel != campaign.channel:
            _outbox_switch_channel(
                run=run, campaign=campaign, variant=key, channel=channel, now=now
            )
        if overrides.get("send_time") is not None:
            outbox_defer_to_local_time(
                run=run, local_time=overrides["send_time"], now=now, variant=key
            )


def _variants_assign(*, run: CampaignRun) -> None:
    """Ask the registered assigner (experiments) for each eligible contact's variant, in
    chunks of contact ids (read by one query); holdouts become ``skipped``/``holdout``."""
    if not has_variant_assigner():
        return
    rows = OutboxMessage.objects.filter(run=run, step=0, state__in=CLAIMABLE_STATES)
    # Read once (not one query per chunk); the chunks' updates below never meet an open cursor.
    contact_ids = list(rows.order_by("contact_id").values_list("contact_id", flat=True))
    for start in range(0, len(contact_ids), VARIANT_CHUNK):
        ids = contact_ids[start : start + VARIANT_CHUNK]
        assigned = assign_variants(run=run, contact_ids=ids)
        by_variant: dict[str | None, list[int]] = {}
        for contact_id, variant in assigned.items():
            if variant != "":
                by_variant.setdefault(variant, []).append(contact_id)
        for variant, members in by_variant.items():
            chunk = rows.filter(contact_id__in=members)
            if variant is None:
                chunk.update(state=OutboxState.SKIPPED, skip_reason=SkipReason.HOLDOUT)
            else:
                chunk.update(variant=variant[:64])


def campaign_run_create(*, campaign: Campaign, now: datetime) -> CampaignRun:
    """A run in status ``preparing``; ``campaign_run_prepare`` fills it (idempotently)."""
    return CampaignRun.objects.create(campaign=campaign, status=RunStatus.PREPARING, created_at=now)


def campaign_run_prepare(*, run: CampaignRun, now: datetime) -> CampaignRun:
    """Snapshot the audience of ``run.campaign`` into the outbox, once.

    In one transaction: every audience contact gets exactly one outbox row (unique
    ``(run, contact, step)``) — ``queued``, ``deferred`` until quiet hours end, or ``skipped``
    with its reason — variants are assigned (holdouts skipped) and the counts stored. A run
    that is no longer ``preparing`` is returned unchanged, so a redelivered task is harmless.
    """
    campaign = run.campaign
    with transaction.atomic():
        locked = CampaignRun.objects.select_for_update().get(pk=run.pk)
        if locked.status != RunStatus.PREPARING:
            return locked
        run = locked
        _outbox_insert_snapshot(run=run, campaign=campaign, now=now)
        _variants_assign(run=run)
        _variants_delivery_apply(run=run, campaign=campaign, now=now)
        by_state, by_reason = run_state_and_reason_counts(run)
        run.audience_size = sum(by_state.values())
        run.counts = {"audience": run.audience_size, "by_state": by_state, "by_reason": by_reason}
        run.status = RunStatus.SENDING
        run.started_at = now
        if not by_state[OutboxState.QUEUED] and not by_state[OutboxState.DEFERRED]:
            run.status = RunStatus.DONE
            run.finished_at = now
        run.save(update_fields=["audience_size", "counts", "status", "started_at", "finished_at"])
    return run


def campaign_run_launch(*, campaign: Campaign, now: datetime, dry_run: bool = False) -> CampaignRun:
    """Snapshot the audience of ``campaign`` as of ``now`` and decide each contact's fate.

    Dry run: writes only a ``CampaignRun`` (status ``dry_run``) whose ``counts``/``report`` hold
    the eligibility report (counts and samples per reason, and the template's unknown
    variables per ``locale.field``); no outbox row. Otherwise creates
    the run and prepares it (see ``campaign_run_prepare``). Nothing is sent here: call
    ``outbox_delivery_start`` (or let the sweep do it) afterwards.
    """
    if dry_run:
        report = eligibility_report(campaign=campaign, now=now)
        unknown = template_unknown_variables(campaign.template, campaign=campaign)
        return CampaignRun.objects.create(
            campaign=campaign,
            status=RunStatus.DRY_RUN,
            dry_run=True,
            created_at=now,
            audience_size=report.audience,
            counts={
                "audience": report.audience,
                "eligible": report.eligible,
                "by_reason": report.by_reason,
            },
            report={**report.as_dict(), "unknown_variables": unknown},
        )
    with transaction.atomic():
        run = campaign_run_create(campaign=campaign, now=now)
        return campaign_run_prepare(run=run, now=now)


def campaign_run_prepare_and_deliver(*, run_id: int, now: datetime) -> CampaignRun:
    """Task body: prepare the run (idempotent) and start delivery of its channel."""
    run = campaign_run_prepare(
        run=CampaignRun.objects.select_related("campaign").get(pk=run_id), now=now
    )
    if run.status == RunStatus.SENDING:
        for channel in run_channels(run):
            outbox_delivery_start(channel=channel)
    return run


def outbox_delivery_start(
    *, channel: str, tasks: int | None = None, countdown: float | None = None
) -> int:
    """Enqueue ``tasks`` delivery tasks for ``channel``; each claims rows until none is due, so
    more tasks = more parallel workers. Inside a transaction they are enqueued after it commits.
    Never raises for an unreachable broker (the rows are in the outbox; the sweep or a worker
    start picks them up): returns how many tasks the broker took (inside a transaction: how
    many will be sent at commit)."""
    count = tasks if tasks is not None else settings.ACTIVATION_DELIVERY_TASKS
    if connection.in_atomic_block:
        transaction.on_commit(
            lambda: delivery_tasks_enqueue(channel=channel, count=count, countdown=countdown)
        )
        return count
    return delivery_tasks_enqueue(channel=channel, count=count, countdown=countdown)


_enqueue_log: contextvars.ContextVar[list | None] = contextvars.ContextVar(
    "cible_delivery_enqueue_log", default=None
)


@contextlib.contextmanager
def delivery_enqueues_recorded():
    """Collect ``(channel, requested, enqueued)`` for every ``delivery_tasks_enqueue`` call
    made inside the block (e.g. by a launch service), so a caller can report what happened
    without enqueueing again."""
    log: list[tuple[str, int, int]] = []
    token = _enqueue_log.set(log)
    try:
        yield log
    finally:
        _enqueue_log.reset(token)


def delivery_tasks_enqueue(*, channel: str, count: int, countdown: float | None = None) -> int:
    """Send ``count`` ``deliver`` tasks now; returns how many the broker took (logs and stops
    at the first refusal)."""
    from activation.tasks import deliver

    sent = 0
    for _ in range(count):
        try:
            deliver.apply_async((channel,), countdown=countdown)
        except BROKER_ERRORS as exc:
            logger.warning("broker unreachable, %s delivery task(s) not enqueued: %s", count, exc)
            break
        sent += 1
    log = _enqueue_log.get()
    if log is not None:
        log.append((channel, count, sent))
    return sent


def outbox_sweep(*, now: datetime) -> dict[str, int]:
    """Periodic upkeep (beat): recover expired leases, finish drained runs, and start delivery
    for each channel with due rows (not while its breaker is open). Returns what it did."""
    recovered = outbox_leases_recover(now=now)
    finished = campaign_runs_finish(now=now)
    started = 0
    for channel in ("email", "sms", "push"):
        if breaker_wait_seconds(channel):
            continue  # paused: its delivery tasks come back when the breaker closes
        if OutboxMessage.objects.filter(
            channel=channel, state__in=CLAIMABLE_STATES, next_attempt_at__lte=now
        ).exists():
            started += outbox_delivery_start(channel=channel, tasks=1)
    return {"recovered": recovered, "finished": finished, "started": started}


def outbox_retry_failed(*, messages, now: datetime) -> int:
    """Put ``failed`` rows of ``messages`` (a queryset) back in the queue, attempts reset,
    and reopen their runs. Other states are left alone. Returns how many were re-queued."""
    with transaction.atomic():
        failed = messages.filter(state=OutboxState.FAILED)
        run_ids = set(failed.values_list("run_id", flat=True))
        count = failed.update(
            state=OutboxState.QUEUED, attempts=0, next_attempt_at=now, error="", claim_token=""
        )
        CampaignRun.objects.filter(pk__in=run_ids, status__in=FINISHED_RUN_STATES).update(
            status=RunStatus.SENDING, finished_at=None
        )
    return count


def campaign_run_cancel(*, run: CampaignRun, now: datetime) -> int:
    """Cancel a run: rows not yet handed off become ``cancelled`` (rows being sent right now
    finish their hand-off). Returns how many rows were cancelled."""
    with transaction.atomic():
        count = OutboxMessage.objects.filter(run=run, state__in=CLAIMABLE_STATES).update(
            state=OutboxState.CANCELLED, skip_reason=""
        )
        run.status = RunStatus.CANCELLED
        run.finished_at = now
        run.counts = {**run.counts, "by_state": run_progress(run)}
        run.save(update_fields=["status", "finished_at", "counts"])
    return count


def _test_send_purpose(template: Template):
    """The purpose a test message's unsubscribe link withdraws: that of the latest campaign
    sending ``template``, else the first marketing purpose (None when there is none)."""
    from consent.models import LegalBasis, Purpose

    campaign = template.campaigns.select_related("purpose").order_by("-created_at").first()
    if campaign is not None:
        return campaign.purpose
    return Purpose.objects.exclude(legal_basis=LegalBasis.CONTRACT).order_by("pk").first()


def message_render_test(*, template: Template, contact: Contact, locale: str = ""):
    """``(version, RenderedMessage)`` of ``template`` for ``contact`` (in ``locale`` or the
    contact's) as a test shows and sends it — with working ``unsubscribe_url`` (withdraws the
    purpose of :func:`_test_send_purpose` on the template's channel, for that contact) and
    ``preferences_url``; None when the template has no version."""
    from activation.rendering import message_render, template_version_for
    from consent.tokens import preference_centre_url, unsubscribe_url
    from segments.models import ContactFeatures

    version = template_version_for(template, locale or contact.locale)
    if version is None:
        return None
    purpose = _test_send_purpose(template)
    preferences = partial(preference_centre_url, contact=contact)
    rendered = message_render(
        version=version,
        contact=contact,
        features=ContactFeatures.objects.filter(contact=contact).first(),
        campaign=None,
        unsubscribe_url=partial(
            unsubscribe_url, contact=contact, purpose=purpose, channel=template.channel
        )
        if purpose is not None
        else preferences,
        preferences_url=preferences,
    )
    return version, rendered


def message_send_test(
    *, template: Template, contact: Contact, to: str = "", locale: str = ""
) -> SendResult:
    """Render ``template`` for ``contact`` (in ``locale`` or the contact's; see
    :func:`message_render_test`) and send it now to ``to`` (an email address or E.164 phone;
    push goes to the contact's active subscriptions), subject prefixed ``[TEST]``. No outbox
    row, no tracking; returns the channel's result."""
    from activation.channels import OutgoingMessage
    from activation.sms import with_stop_mention

    found = message_render_test(template=template, contact=contact, locale=locale)
    if found is None:
        return SendResult.permanent(0, "template has no version")
    _version, rendered = found
    out = OutgoingMessage(outbox_id=0, channel=template.channel)
    if template.channel == MessageChannel.EMAIL:
        domain = settings.DEFAULT_FROM_EMAIL.rpartition("@")[2].rstrip(">") or "cible.localhost"
        out.to = to or contact.email
        out.subject = f"[TEST] {rendered.subject}"
        out.html, out.text = rendered.html, rendered.text
        out.message_id = f"<cible.test.{timezone.now().timestamp():.6f}@{domain}>"
    elif template.channel == MessageChannel.SMS:
        out.to = to or contact.phone
        out.sms_body = with_stop_mention(rendered.sms_body, marketing=True)
    else:
        out.push_targets = [
            PushTarget(s.pk, s.endpoint, s.p256dh, s.auth)
            for s in PushSubscription.objects.filter(contact=contact, active=True)
        ]
        out.push_payload = {
            "title": rendered.push_title,
            "body": rendered.push_body,
            "url": rendered.push_url,
        }
    with channel_backend(template.channel) as backend:
        return backend.send([out])[0]


# --- tracking -------------------------------------------------------------------------------


def _tracking_event(
    *, message: OutboxMessage, type: str, key: str, properties: dict, at: datetime
) -> bool:
    run = message.run
    props = {
        "message_id": message.pk,
        "campaign_id": run.campaign_id,
        "run_id": run.pk,
        "variant": message.variant,
        "step": message.step,
        **properties,
    }
    # The key names the second (open:<message>:<epoch s>); so does occurred_at, so that two
    # concurrent fetches collide on the unique key even where it includes occurred_at
    # (partitioned PostgreSQL): one event, not two.
    _event, created = Event.objects.get_or_create(
        source="activation",
        idempotency_key=key[:128],
        defaults={
            "contact_id": message.contact_id,
            "type": type,
            "occurred_at": at.replace(microsecond=0),
            "properties": props,
            "channel": message.channel if message.channel in ("email", "sms", "push") else "",
        },
    )
    if created:
        transaction.on_commit(
            lambda: events_ingested.send(
                sender=Event,
                contact_ids=[message.contact_id],
                event_types={type},
                source="activation",
            )
        )
    return created


def tracking_open_record(*, message_id: int, user_agent: str, ip: str, at: datetime) -> bool:
    """Record an ``email_open`` event (``properties.machine_open`` flags Apple MPP / proxies /
    scanners). Repeated fetches within the same second are one event. Returns True if new."""
    from activation.tracking import is_machine_open

    message = OutboxMessage.objects.select_related("run").filter(pk=message_id).first()
    if message is None:
        return False
    machine = is_machine_open(user_agent=user_agent, ip=ip)
    return _tracking_event(
        message=message,
        type="email_open",
        key=f"open:{message.pk}:{int(at.timestamp())}",
        properties={"machine_open": machine, "user_agent": user_agent[:200]},
        at=at,
    )


def tracking_click_record(*, message_id: int, url: str, user_agent: str, at: datetime) -> bool:
    """Record a click (``email_click`` / ``push_click`` / ``sms_click``) with its URL."""
    message = OutboxMessage.objects.select_related("run").filter(pk=message_id).first()
    if message is None:
        return False
    return _tracking_event(
        message=message,
        type=f"{message.channel}_click",
        key=f"click:{message.pk}:{int(at.timestamp())}:{hash(url) & 0xFFFFFFFF:x}",
        properties={"url": url[:1000], "user_agent": user_agent[:200]},
        at=at,
    )


def conversions_attribute(*, contact_ids: list[int], now: datetime) -> int:
    """Credit the unattributed conversion events of ``contact_ids`` (types
    ``ACTIVATION_CONVERSION_EVENT_TYPES``, within the window before ``now``) to the last
    message sent to the same contact within ``ACTIVATION_ATTRIBUTION_WINDOW_HOURS`` before the
    conversion. Set-based (one SELECT with a correlated subquery, one bulk insert);
    idempotent (one attribution per event). Returns how many were created."""
    window = timedelta(hours=settings.ACTIVATION_ATTRIBUTION_WINDOW_HOURS)
    # Most converting contacts got no message lately (and a batch of events usually names
    # hundreds of them): keep those who did, with one query on an array parameter, before the
    # ORM compiles an IN list and a correlated subquery for every event.
    contact_ids = _messaged_since(contact_ids, since=now - 3 * window)
    if not contact_ids:
        return 0
    last_message = (
        OutboxMessage.objects.filter(
            contact_id=OuterRef("contact_id"),
            state=OutboxState.SENT,
            sent_at__lte=OuterRef("occurred_at"),
            sent_at__gte=ExpressionWrapper(
                OuterRef("occurred_at") - Value(window), output_field=DateTimeField()
            ),
        )
        .order_by("-sent_at", "-id")
        .values("pk")[:1]
    )
    events = (
        Event.objects.filter(
            contact_id__in=contact_ids,
            type__in=settings.ACTIVATION_CONVERSION_EVENT_TYPES,
            occurred_at__gte=now - 2 * window,
            attribution__isnull=True,
        )
        .annotate(message_pk=Subquery(last_message))
        .filter(message_pk__isnull=False)
        .values("pk", "message_pk", "properties")
    )
    rows = list(events)
    if not rows:
        return 0
    messages = {
        m["pk"]: m
        for m in OutboxMessage.objects.filter(pk__in={r["message_pk"] for r in rows}).values(
            "pk", "run_id", "variant"
        )
    }
    amount_key = settings.CIBLE_PURCHASE_AMOUNT_PROPERTY
    created = Attribution.objects.bulk_create(
        [
            Attribution(
                event_id=r["pk"],
                message_id=r["message_pk"],
                run_id=messages[r["message_pk"]]["run_id"],
                variant=messages[r["message_pk"]]["variant"],
                value=_decimal((r["properties"] or {}).get(amount_key)),
                attributed_at=now,
            )
            for r in rows
        ],
        ignore_conflicts=True,
    )
    return len(created)


def _messaged_since(contact_ids: list[int], *, since: datetime) -> list[int]:
    """Those of ``contact_ids`` sent a message at ``since`` or later."""
    if not contact_ids:
        return []
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT DISTINCT contact_id FROM activation_outboxmessage "
                "WHERE contact_id = ANY(%s::bigint[]) AND state = %s AND sent_at >= %s",
                [list(contact_ids), OutboxState.SENT, since],
            )
            return [row[0] for row in cursor.fetchall()]
    return list(
        OutboxMessage.objects.filter(
            contact_id__in=contact_ids, state=OutboxState.SENT, sent_at__gte=since
        )
        .values_list("contact_id", flat=True)
        .distinct()
    )


def _decimal(value) -> Decimal | None:
    try:
        return Decimal(str(value)).quantize(Decimal("0.01")) if value is not None else None
    except (InvalidOperation, ValueError):
        return None


# --- contact lifecycle -----------------------------------------------------------------------


def contact_messages_scrub(*, contact_id: int) -> int:
    """Right to erasure: cancel the contact's pending messages and clear free text that may
    hold personal data (provider errors quoting the address). Counts stay."""
    with transaction.atomic():
        OutboxMessage.objects.filter(contact_id=contact_id, state__in=OPEN_STATES).update(
            state=OutboxState.CANCELLED, skip_reason="", claim_token=""
        )
        DeliveryAttempt.objects.filter(message__contact_id=contact_id).update(error="")
        return OutboxMessage.objects.filter(contact_id=contact_id).update(error="")


def contact_messages_move(*, survivor_id: int, merged_ids: list[int]) -> int:
    """Merge: move outbox rows of ``merged_ids`` to ``survivor_id``. Where both have a row for
    the same ``(run, step)``, one row is kept: the sent one if any (so a duplicate queued
    message is dropped and nobody gets the message twice), else the survivor's."""
    moved = 0
    with transaction.atomic():
        for row in OutboxMessage.objects.filter(contact_id__in=merged_ids).order_by("id"):
            clash = OutboxMessage.objects.filter(
                run_id=row.run_id, contact_id=survivor_id, step=row.step
            ).first()
            if clash is None:
                OutboxMessage.objects.filter(pk=row.pk).update(contact_id=survivor_id)
                moved += 1
            elif row.state == OutboxState.SENT and clash.state != OutboxState.SENT:
                clash.delete()
                OutboxMessage.objects.filter(pk=row.pk).update(contact_id=survivor_id)
                moved += 1
            else:
                row.delete()
    return moved


def contact_messages_export(contact: Contact) -> list[dict]:
    """Export section ``messages`` (right of access)."""
    from activation.selectors import contact_messages

    return [
        {
            "campaign": m.run.campaign.name,
            "channel": m.channel,
            "state": m.state,
            "reason": m.skip_reason,
            "variant": m.variant,
            "created_at": m.created_at,
            "sent_at": m.sent_at,
        }
        for m in contact_messages(contact.pk)
    ]
