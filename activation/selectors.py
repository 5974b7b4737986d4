"""Reads: the audience of a campaign and its eligibility (one SQL statement), run progress.

Eligibility reasons, first match wins (see docs/sending.md):
``suppressed`` (address on the suppression list, or contact erased) → ``no_consent`` (no consent
for the campaign's purpose on its channel, read *now*) → ``no_address`` → ``frequency_cap`` →
``quiet_hours`` (deferred or skipped per campaign). ``""`` = eligible.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
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
from django.utils import timezone

from activation.models import (
    OPEN_STATES,
    Campaign,
    CampaignRun,
    OutboxMessage,
    OutboxState,
    SkipReason,
)
from consent.selectors import CURRENT_STATE_TOLERANCE, annotate_exclusion_reason, contactable
from contacts.models import Contact, PushSubscription
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


def frequency_capped(*, channel: str, now: datetime) -> Q:
    """Condition "the contact already reached a frequency cap": messages of capped campaigns
    sent within the window, or still waiting to be sent, per channel and over all channels."""
    since = now - timedelta(days=settings.ACTIVATION_FREQUENCY_WINDOW_DAYS)
    counted = OutboxMessage.objects.filter(
        Q(state=OutboxState.SENT, sent_at__gte=since)
        | Q(state__in=OPEN_STATES, created_at__gte=since),
        run__campaign__frequency_capped=True,
        run__dry_run=False,
    )
    caps = settings.ACTIVATION_FREQUENCY_CAPS
    condition = Q(pk__in=[])
    for scope, messages in (
        (caps.get(channel), counted.filter(channel=channel)),
        (caps.get("global"), counted),
    ):
        if scope:
            over = (
                messages.order_by()
                .values("contact_id")
                .annotate(n=Count("id"))
                .filter(n__gte=scope)
                .values("contact_id")
            )
            condition |= Q(pk__in=over)
    return condition


def _in_quiet_window(local: time, start: time, end: time) -> bool:
    if start < end:
        return start <= local < end
    return local >= start or local < end


def _next_end(local_now: datetime, end: time, zone: ZoneInfo) -> datetime:
    day: date = local_now.date()
    if local_now.time() >= end:
        day += timedelta(days=1)
    return datetime.combine(day, end, tzinfo=zone).astimezone(UTC)


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
        if _in_quiet_window(local.time().replace(tzinfo=None), start, end):
            grouped[_next_end(local, end, zone)].append(name)
    return dict(grouped)


def eligibility_queryset(
    *, campaign: Campaign, now: datetime, audience: QuerySet[Contact] | None = None
) -> QuerySet[Contact]:
    """The audience annotated with ``exclusion_reason`` ("" = eligible) and ``due_at`` (when
    quiet hours end for deferred contacts, else ``now``). Evaluates as one SQL statement.
    ``audience`` (default: the campaign's segments) lets workflows check the contacts due at
    one of their steps with the same rules."""
    audience = annotate_exclusion_reason(
        campaign_audience(campaign) if audience is None else audience,
        purpose=campaign.purpose,
        channel=campaign.channel,
        at=now,
    )
    zones = quiet_zones(start=campaign.quiet_hours_start, end=campaign.quiet_hours_end, now=now)
    in_quiet = Q(timezone__in=[z for names in zones.values() for z in names])
    whens = [
        When(consent_exclusion_reason__isnull=False, then=F("consent_exclusion_reason")),
    ]
    if now < timezone.now() - CURRENT_STATE_TOLERANCE:
        # Read from the ledger as of a past instant, consent's reason is NULL (not
        # "no_consent") for contacts with no deciding row; contactable() is the rule.
        allowed = contactable(
            Contact.objects.filter(pk=OuterRef("pk")),
            purpose=campaign.purpose,
            channel=campaign.channel,
            at=now,
        )
        whens.append(When(~Exists(allowed), then=Value(SkipReason.NO_CONSENT.value)))
    whens += [
        When(address_missing(campaign.channel), then=Value(SkipReason.NO_ADDRESS.value)),
    ]
    if campaign.frequency_capped:
        whens.append(
            When(
                frequency_capped(channel=campaign.channel, now=now),
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
    return audience.annotate(
        exclusion_reason=Case(*whens, default=Value(""), output_field=CharField()),
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


def contact_messages(contact_id: int) -> QuerySet[OutboxMessage]:
    """A contact's outbox rows, newest first (exports, admin)."""
    return (
        OutboxMessage.objects.filter(contact_id=contact_id)
        .select_related("run__campaign")
        .order_by("-created_at", "-id")
    )
