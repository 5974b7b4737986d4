"""Reads: the audience of a campaign and its eligibility (one SQL statement), run progress.

Eligibility reasons, first match wins (see docs/sending.md):
``suppressed`` (address on the suppression list, or contact erased) → ``no_consent`` (no consent
for the campaign's purpose on its channel, read *now*) → ``no_address`` → ``frequency_cap`` →
``quiet_hours`` (deferred or skipped per campaign). ``""`` = eligible.
"""

from __future__ import annotations

import operator
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache, reduce
from zoneinfo import ZoneInfo, available_timezones

from django.conf import settings
from django.db.models import (
    Case,
    CharField,
    Count,
    DateTimeField,
    Exists,
    F,
    OuterRef,
    Q,
    QuerySet,
    Value,
    When,
)
from django.db.models.fields.json import KT
from django.db.models.functions import Coalesce
from django.utils import timezone

from activation.models import (
    CLAIMABLE_STATES,
    OPEN_STATES,
    Attribution,
    Campaign,
    CampaignRun,
    MessageChannel,
    OutboxMessage,
    OutboxState,
    SkipReason,
)
from consent.selectors import CURRENT_STATE_TOLERANCE, annotate_exclusion_reason, contactable
from contacts.models import Contact, Event, PushSubscription
from segments.selectors import segment_members


def campaign_audience(campaign: Campaign) -> QuerySet[Contact]:
    """Members of any target segment, minus members of any exclusion segment (one query)."""
    targets = list(campaign.segments.all())
    if not targets:
        return Contact.objects.none()
    included = Q()
    for segment in targets:
        included |= Q(pk__in=segment_members(segment).values("pk"))
    audience = Contact.objects.filter(included)
    for segment in campaign.exclusion_segments.all():
        audience = audience.exclude(pk__in=segment_members(segment).values("pk"))
    return audience


def address_missing(channel: str) -> Q:
    """Condition "the contact cannot be reached on ``channel``"."""
    if channel == "email":
        return Q(email="") | ~Q(email__contains="@")
    if channel == "sms":
        return Q(phone="") | ~Q(phone__startswith="+")
    active = PushSubscription.objects.filter(contact=OuterRef("pk"), active=True)
    return ~Q(Exists(active))


def frequency_capped(*, channel: str, now: datetime, exclude_run: int | None = None) -> Q:
    """Condition "the contact already reached a frequency cap": messages of capped campaigns
    sent within the window, or still waiting to be sent, per channel and over all channels
    (rows of ``exclude_run`` — the run being prepared — not counted)."""
    since = now - timedelta(days=settings.ACTIVATION_FREQUENCY_WINDOW_DAYS)
    counted = OutboxMessage.objects.filter(
        Q(state=OutboxState.SENT, sent_at__gte=since)
        | Q(state__in=OPEN_STATES, created_at__gte=since),
        run__campaign__frequency_capped=True,
        run__dry_run=False,
    )
    if exclude_run is not None:
        counted = counted.exclude(run_id=exclude_run)
    caps = settings.ACTIVATION_FREQUENCY_CAPS
    counts: dict = {}
    reached: list[Q] = []
    if caps.get(channel):
        counts["n_channel"] = Count("id", filter=Q(channel=channel))
        reached.append(Q(n_channel__gte=caps[channel]))
    if caps.get("global"):
        counts["n_all"] = Count("id")
        reached.append(Q(n_all__gte=caps["global"]))
    if not counts:
        return Q(pk__in=[])
    # Both caps from ONE pre-aggregation of the window (a hashed subplan, computed once per
    # statement), not one scan per cap.
    over = (
        counted.order_by()
        .values("contact_id")
        .annotate(**counts)
        .filter(reduce(operator.or_, reached))
        .values("contact_id")
    )
    return Q(pk__in=over)


def in_quiet_window(local: time, start: time, end: time) -> bool:
    """True when the local clock time ``local`` falls in quiet hours ``start``–``end``."""
    if start < end:
        return start <= local < end
    return local >= start or local < end


def _next_end(local_now: datetime, end: time, zone: ZoneInfo) -> datetime:
    day: date = local_now.date()
    if local_now.time() >= end:
        day += timedelta(days=1)
    return datetime.combine(day, end, tzinfo=zone).astimezone(UTC)


def next_local_time(at: datetime, local_time, zone: ZoneInfo) -> datetime:
    """The first instant at or after ``at`` when the clock in ``zone`` shows ``local_time``."""
    local = at.astimezone(zone)
    candidate = datetime.combine(local.date(), local_time, tzinfo=zone)
    if candidate < local:
        candidate = datetime.combine(local.date() + timedelta(days=1), local_time, tzinfo=zone)
    return candidate.astimezone(UTC)


@lru_cache(maxsize=1)
def _zones() -> tuple[str, ...]:
    return tuple(sorted(available_timezones()))


def quiet_zones(*, start: time, end: time, now: datetime) -> dict[datetime, list[str]]:
    """IANA zones where ``now`` falls inside quiet hours, grouped by the UTC instant quiet
    hours end there (the time deferred messages become due)."""
    grouped: dict[datetime, list[str]] = defaultdict(list)
    for name in _zones():
        zone = ZoneInfo(name)
        local = now.astimezone(zone)
        if in_quiet_window(local.time().replace(tzinfo=None), start, end):
            grouped[_next_end(local, end, zone)].append(name)
    return dict(grouped)


def eligibility_queryset(
    *,
    campaign: Campaign,
    now: datetime,
    audience: QuerySet[Contact] | None = None,
    channel: str | None = None,
    exclude_run: int | None = None,
) -> QuerySet[Contact]:
    """The audience annotated with ``exclusion_reason`` ("" = eligible) and ``due_at`` (when
    quiet hours end for deferred contacts, else ``now``). Evaluates as one SQL statement.
    ``audience`` (default: the campaign's segments) lets workflows check the contacts due at
    one of their steps with the same rules; ``channel`` (default: the campaign's) checks them
    for another channel (an experiment variant's), not counting ``exclude_run``'s own rows
    against the frequency caps."""
    channel = channel or campaign.channel
    audience = annotate_exclusion_reason(
        campaign_audience(campaign) if audience is None else audience,
        purpose=campaign.purpose,
        channel=channel,
        at=now,
    )
    zones = quiet_zones(start=campaign.quiet_hours_start, end=campaign.quiet_hours_end, now=now)
    in_quiet = Q(timezone__in=[z for names in zones.values() for z in names])
    whens = []
    if now < timezone.now() - CURRENT_STATE_TOLERANCE:
        # Read from the ledger as of a past instant, consent's reason is NULL (not
        # "no_consent") for contacts with no deciding row; contactable() is the rule.
        allowed = contactable(
            Contact.objects.filter(pk=OuterRef("pk")),
            purpose=campaign.purpose,
            channel=channel,
            at=now,
        )
        whens.append(When(~Exists(allowed), then=Value(SkipReason.NO_CONSENT.value)))
    whens += [
        When(address_missing(channel), then=Value(SkipReason.NO_ADDRESS.value)),
    ]
    if campaign.frequency_capped:
        whens.append(
            When(
                frequency_capped(channel=channel, now=now, exclude_run=exclude_run),
                then=Value(SkipReason.FREQUENCY_CAP.value),
            )
        )
    if zones:
        whens.append(When(in_quiet, then=Value(SkipReason.QUIET_HOURS.value)))
    due = Case(
        *[When(timezone__in=names, then=Value(at)) for at, names in zones.items()],
        default=Value(now),
        output_field=DateTimeField(),
    )
    # consent's reason (suppressed / no_consent) first, else the first of ours; Coalesce
    # evaluates consent's CASE once per row.
    return audience.annotate(
        exclusion_reason=Coalesce(
            F("consent_exclusion_reason"),
            Case(*whens, default=Value(""), output_field=CharField()),
            output_field=CharField(),
        ),
        due_at=due,
    )


def run_progress(run: CampaignRun) -> dict[str, int]:
    """Live count of the run's outbox rows per state (every state present, zeros included)."""
    counts = dict.fromkeys(OutboxState.values, 0)
    for row in (
        OutboxMessage.objects.filter(run=run).order_by().values("state").annotate(n=Count("id"))
    ):
        counts[row["state"]] = row["n"]
    return counts


def run_channels(run: CampaignRun) -> list[str]:
    """The channels of the run's waiting messages (an experiment variant may have its own)."""
    return sorted(
        OutboxMessage.objects.filter(run=run, state__in=(OutboxState.QUEUED, OutboxState.DEFERRED))
        .order_by()
        .values_list("channel", flat=True)
        .distinct()
    )


def run_reason_counts(run: CampaignRun) -> dict[str, int]:
    """Skipped and deferred rows of the run per reason."""
    rows = (
        OutboxMessage.objects.filter(run=run)
        .exclude(skip_reason="")
        .order_by()
        .values("skip_reason")
        .annotate(n=Count("id"))
    )
    return {row["skip_reason"]: row["n"] for row in rows}


def run_state_and_reason_counts(run: CampaignRun) -> tuple[dict[str, int], dict[str, int]]:
    """``(run_progress(run), run_reason_counts(run))`` from ONE GROUP BY over the run's rows."""
    by_state = dict.fromkeys(OutboxState.values, 0)
    by_reason: dict[str, int] = {}
    rows = (
        OutboxMessage.objects.filter(run=run)
        .order_by()
        .values("state", "skip_reason")
        .annotate(n=Count("id"))
    )
    for row in rows:
        by_state[row["state"]] += row["n"]
        if row["skip_reason"]:
            by_reason[row["skip_reason"]] = by_reason.get(row["skip_reason"], 0) + row["n"]
    return by_state, by_reason


def contact_messages(contact_id: int) -> QuerySet[OutboxMessage]:
    """A contact's outbox rows, newest first (exports, admin)."""
    return (
        OutboxMessage.objects.filter(contact_id=contact_id)
        .select_related("run__campaign")
        .order_by("-created_at", "-id")
    )


def contact_message_engagement(
    *, contact_id: int, message_ids: list[int], since: datetime
) -> dict[int, dict[str, int]]:
    """``{message id: {"human_opens", "machine_opens", "clicks", "conversions"}}`` for some of
    one contact's messages: one grouped query over the contact's tracking events since
    ``since`` (the (contact, occurred_at) index) and one over their attributions."""
    result = {
        pk: {"human_opens": 0, "machine_opens": 0, "clicks": 0, "conversions": 0}
        for pk in message_ids
    }
    if not message_ids:
        return result
    rows = (
        Event.objects.filter(
            contact_id=contact_id,
            occurred_at__gte=since,
            source="activation",
            type__in=["email_open", "email_click", "sms_click", "push_click"],
        )
        .annotate(message=KT("properties__message_id"), machine=KT("properties__machine_open"))
        .values("type", "message", "machine")
        .annotate(n=Count("id"))
    )
    for row in rows:
        try:
            pk = int(str(row["message"]))
        except (TypeError, ValueError):
            continue
        if pk not in result:
            continue
        if row["type"] == "email_open":
            machine = str(row["machine"]).lower() in ("true", "1")
            result[pk]["machine_opens" if machine else "human_opens"] += row["n"]
        else:
            result[pk]["clicks"] += row["n"]
    for pk, n in (
        Attribution.objects.filter(message_id__in=message_ids)
        .values("message_id")
        .annotate(n=Count("id"))
        .values_list("message_id", "n")
    ):
        result[pk]["conversions"] = n
    return result


def outbox_oldest_due(*, now: datetime) -> dict[str, datetime | None]:
    """Per channel, since when the oldest due message (queued or deferred, due by ``now``)
    has been waiting — one index-backed first-row read per channel (outbox_claim_order)."""
    oldest: dict[str, datetime | None] = {}
    for channel in MessageChannel.values:
        oldest[channel] = (
            OutboxMessage.objects.filter(
                channel=channel, state__in=CLAIMABLE_STATES, next_attempt_at__lte=now
            )
            .order_by("next_attempt_at")
            .values_list("next_attempt_at", flat=True)
            .first()
        )
    return oldest


def outbox_open_counts() -> dict[tuple[str, str], int]:
    """``{(channel, state): n}`` for the rows still in flight (queued, deferred, sending) —
    the partial claim and lease indexes cover them, not the outbox's whole history."""
    rows = (
        OutboxMessage.objects.filter(state__in=OPEN_STATES)
        .values_list("channel", "state")
        .annotate(n=Count("id"))
    )
    return {(channel, state): n for channel, state, n in rows}
