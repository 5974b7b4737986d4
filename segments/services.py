"""Services of the segments app: everything that writes features, segments and memberships."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction
from django.db.models import BooleanField, ExpressionWrapper, Max, Min, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from contacts.models import Contact, Event
from segments.dependencies import (
    SegmentSpec,
    compute_levels,
    compute_order,
    cycle_check,
    effective_rule,
    reevaluation_plan,
    spec_of,
)
from segments.features import FOLD_SINCE, features_fold_execute, features_sql_execute
from segments.memberships import (
    LEVEL_MAX,
    MembershipDiff,
    membership_diff_contact,
    membership_diff_contacts,
    membership_diff_full,
    membership_diff_level,
    segments_lock_open_memberships,
)
from segments.models import (
    ContactFeatures,
    FeatureWatermark,
    Segment,
    SegmentComputation,
    SegmentFamily,
    SegmentMembership,
)
from segments.rules import RuleError, rule_compile, rule_matches_everyone, rule_validate
from segments.rules.shared_events import SharedEventScan
from segments.signals import contact_entered_segment, contact_exited_segment

INCREMENTAL = "incremental"


class EveryContactNotConfirmed(RuleError):
    """A rule selecting every contact was saved without the user's confirmation."""


logger = logging.getLogger(__name__)

# --- features --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureRefreshResult:
    contacts: int
    as_of: datetime
    seconds: float
    watermark: int | None = None
    folded: int = 0  # rows folded forward from their running totals (incremental, PostgreSQL)


def features_refresh(
    *, as_of: datetime | None = None, contact_ids: Sequence[int] | None = None
) -> FeatureRefreshResult:
    """Recompute ``ContactFeatures`` of ``contact_ids`` (all contacts when None) as of ``as_of``
    (default now) in one SQL statement, in one transaction.

    Only events with ``occurred_at <= as_of`` count and only contacts created by ``as_of`` get a
    row; a full refresh as of a past date also removes rows of contacts created after it, so the
    table is exactly "the features as of that date" (what back-tests need).
    """
    as_of = as_of or timezone.now()
    started = time.perf_counter()
    with transaction.atomic():
        written = features_sql_execute(
            as_of=as_of, computed_at=timezone.now(), contact_ids=contact_ids
        )
        if contact_ids is None and connection.vendor != "postgresql":
            # PostgreSQL's full refresh rebuilds the table from the contacts created by as_of;
            # SQLite's upserts, so rows of later contacts, or of contacts deleted behind
            # Django's back (the table has no database-level foreign key), are removed here.
            ContactFeatures.objects.exclude(
                contact_id__in=Contact.objects.filter(created_at__lte=as_of).values("pk")
            ).delete()
    return FeatureRefreshResult(
        contacts=written, as_of=as_of, seconds=time.perf_counter() - started
    )


def features_refresh_incremental(*, now: datetime | None = None) -> FeatureRefreshResult:
    """Refresh, as of ``now``, only contacts with events stored after the watermark (the last
    event id folded in), then advance the watermark — all in one transaction, under a lock so
    concurrent runs do not overlap. Time-decaying values of untouched contacts are renewed by the
    daily full refresh."""
    now = now or timezone.now()
    started = time.perf_counter()
    with transaction.atomic():
        FeatureWatermark.objects.get_or_create(name=INCREMENTAL)
        mark = FeatureWatermark.objects.select_for_update().get(name=INCREMENTAL)
        if connection.vendor != "postgresql":
            FeatureWatermark.objects.filter(name=INCREMENTAL).update(updated_at=now)
        newest = Event.objects.aggregate(top=Max("id"))["top"] or 0
        if newest <= mark.last_event_id:
            return FeatureRefreshResult(0, now, time.perf_counter() - started, mark.last_event_id)
        changed = list(
            Event.objects.filter(id__gt=mark.last_event_id, id__lte=newest)
            .values_list("contact_id", flat=True)
            .distinct()
        )
        if connection.vendor == "postgresql":
            # Rows kept current are folded forward from the events they do not include yet
            # (a few days of the month partitions read, not each contact's whole history).
            written, folded = features_fold_execute(
                as_of=now, computed_at=now, contact_ids=changed, newest=newest
            )
        else:
            written, folded = (
                features_sql_execute(as_of=now, computed_at=now, contact_ids=changed),
                0,
            )
        FeatureWatermark.objects.filter(name=INCREMENTAL).update(last_event_id=newest)
    return FeatureRefreshResult(written, now, time.perf_counter() - started, newest, folded)


def features_fold_reset(*, now: datetime | None = None) -> None:
    """Events were deleted (retention): feature rows computed until ``now`` may still count
    them, so the incremental refresh computes them from their events again instead of folding
    them forward (the nightly full refresh rebuilds them all)."""
    FeatureWatermark.objects.update_or_create(
        name=FOLD_SINCE, defaults={"rebuilt_at": now or timezone.now()}
    )


# --- segments --------------------------------------------------------------------------------


def _specs() -> list[SegmentSpec]:
    return [spec_of(s) for s in Segment.objects.all()]


def segment_rule_check(
    *,
    rule: object,
    name: str,
    family_id: int | None,
    priority: int,
    segment_id: int | None = None,
    is_active: bool = True,
    every_contact_confirmed: bool = True,
    previous_rule: dict | None = None,
) -> dict:
    """Validate ``rule`` for a segment (new when ``segment_id`` is None) and refuse cycles.

    A rule that selects every contact (``{"all": []}``…) needs ``every_contact_confirmed``
    unless ``previous_rule`` already did: entry points driven by a person (admin form, API)
    pass what the person confirmed; code that builds rules itself keeps the default.
    Returns the normalised rule; raises ``RuleError`` naming the faulty condition or the cycle
    (``EveryContactNotConfirmed`` for an unconfirmed every-contact rule).
    """
    normalised = rule_validate(rule, segment_id=segment_id)
    if (
        not every_contact_confirmed
        and rule_matches_everyone(normalised)
        and not (previous_rule and rule_matches_everyone(previous_rule))
    ):
        raise EveryContactNotConfirmed(
            _("This rule has no restricting condition: the segment contains every contact.")
        )
    candidate = SegmentSpec(
        id=segment_id if segment_id is not None else -1,
        name=name,
        rule=normalised,
        family_id=family_id,
        priority=priority,
        is_active=is_active,
    )
    others = [s for s in _specs() if s.id != candidate.id]
    cycle_check([*others, candidate])
    return normalised


def segment_create(
    *,
    name: str,
    rule: object,
    description: str = "",
    family: SegmentFamily | None = None,
    priority: int = 100,
    is_active: bool = True,
    kind: str = Segment.Kind.RULE,
    every_contact_confirmed: bool = True,
) -> Segment:
    """Create a segment after validating its rule (RuleError otherwise; see
    ``segment_rule_check`` for ``every_contact_confirmed``). Not computed yet."""
    normalised = segment_rule_check(
        rule=rule,
        name=name,
        family_id=family.pk if family else None,
        priority=priority,
        is_active=is_active,
        every_contact_confirmed=every_contact_confirmed,
    )
    return Segment.objects.create(
        name=name,
        rule=normalised,
        description=description,
        family=family,
        priority=priority,
        is_active=is_active,
        kind=kind,
    )


def segment_update(
    *, segment: Segment, every_contact_confirmed: bool = True, **changes: object
) -> Segment:
    """Apply ``changes`` (name, rule, description, family, priority, is_active) after validation
    (see ``segment_rule_check`` for ``every_contact_confirmed``)."""
    allowed = {"name", "rule", "description", "family", "priority", "is_active", "kind"}
    unknown = set(changes) - allowed
    if unknown:
        raise TypeError(f"segment_update got unknown fields: {', '.join(sorted(unknown))}")
    previous_rule = Segment.objects.filter(pk=segment.pk).values_list("rule", flat=True).first()
    for key, value in changes.items():
        setattr(segment, key, value)
    segment.rule = segment_rule_check(
        rule=segment.rule,
        name=segment.name,
        family_id=segment.family_id,
        priority=segment.priority,
        segment_id=segment.pk,
        is_active=segment.is_active,
        every_contact_confirmed=every_contact_confirmed,
        previous_rule=previous_rule,
    )
    segment.save()
    return segment


def segment_compute_request(*, segment_ids: Sequence[int] | None = None) -> None:
    """Ask a worker to recompute ``segment_ids`` (all when None) once the transaction commits;
    the active ones show as "computing" until a computation started after this request ends."""
    from segments.tasks import compute_segments

    ids = list(segment_ids) if segment_ids is not None else None
    waiting = Segment.objects.filter(is_active=True)
    if ids is not None:
        waiting = waiting.filter(pk__in=ids)
    waiting.update(compute_requested_at=timezone.now())
    transaction.on_commit(lambda: compute_segments.delay(segment_ids=ids))


def _large_work_mem() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL work_mem = '256MB'")


def _announce(diff: MembershipDiff, at: datetime) -> None:
    if diff.entered:
        ids = list(diff.entered)
        transaction.on_commit(
            lambda: contact_entered_segment.send(
                sender=Segment, segment_id=diff.segment_id, contact_ids=ids, at=at
            )
        )
    if diff.exited:
        ids_out = list(diff.exited)
        transaction.on_commit(
            lambda: contact_exited_segment.send(
                sender=Segment, segment_id=diff.segment_id, contact_ids=ids_out, at=at
            )
        )


def segments_compute(
    *,
    segment_ids: Sequence[int] | None = None,
    now: datetime | None = None,
    trigger: str = SegmentComputation.Trigger.SCHEDULED,
) -> list[SegmentComputation]:
    """Recompute the memberships of the active segments ``segment_ids`` (all when None).

    Segments are computed in dependency order, in transactions holding their locks: the diff
    inserts who entered and closes who exited (history kept), entered/exited signals go out
    after commit. On PostgreSQL the segments of one dependency level are computed together in
    one transaction (one evaluation pass over the contacts, one diff for all of them; their
    history rows share that duration); on SQLite one segment at a time. A segment that cannot
    be computed is marked failed with its reason (``compute_error``, shown in the admin) and the
    others are still computed. Returns the history rows of the segments computed."""
    specs = _specs()
    wanted = set(segment_ids) if segment_ids is not None else None
    order = [s for s in compute_order(specs) if wanted is None or s.id in wanted]
    pg = connection.vendor == "postgresql"
    if pg:
        batches = [
            level[i : i + LEVEL_MAX]
            for level in compute_levels(order, specs)
            for i in range(0, len(level), LEVEL_MAX)
        ]
    else:
        batches = [[s] for s in order]
    results: list[SegmentComputation] = []
    for batch in batches:
        try:
            results += _compute_batch(batch, specs, now=now, trigger=trigger, pg=pg)
        except Exception as exc:  # noqa: BLE001 - one segment's failure must not stop the others
            if len(batch) == 1:
                _compute_failed(batch[0].id, exc)
                continue
            # A level failed together: compute its segments one by one to isolate the culprit.
            for spec in batch:
                try:
                    results += _compute_batch([spec], specs, now=now, trigger=trigger, pg=pg)
                except Exception as one_exc:  # noqa: BLE001
                    _compute_failed(spec.id, one_exc)
    return results


def _compute_batch(
    batch: Sequence[SegmentSpec],
    specs: list[SegmentSpec],
    *,
    now: datetime | None,
    trigger: str,
    pg: bool,
) -> list[SegmentComputation]:
    """Compute ``batch`` (one dependency level on PostgreSQL) in one transaction."""
    results = []
    at = now or timezone.now()
    requested_before = timezone.now()
    started = time.perf_counter()
    with transaction.atomic():
        _large_work_mem()
        _lock_many(sorted(s.id for s in batch))
        fresh = {s.pk: spec_of(s) for s in Segment.objects.filter(pk__in=[s.id for s in batch])}
        current = [fresh.get(s.id, s) for s in specs]
        # PostgreSQL: the event conditions of the level share one scan of the events.
        scan = SharedEventScan() if pg else None
        rules = [
            (
                spec.id,
                rule_compile(effective_rule(fresh[spec.id], current), now=at, shared_events=scan),
            )
            for spec in batch
            if spec.id in fresh and fresh[spec.id].is_active
        ]
        if not rules:
            return []
        if pg:
            diffs, _evaluated = membership_diff_level(rules=rules, now=at, shared_events=scan)
        else:
            diffs = [
                membership_diff_full(segment_id=sid, rule_q=rule_q, now=at) for sid, rule_q in rules
            ]
        ms = int((time.perf_counter() - started) * 1000)
        for diff in diffs:
            Segment.objects.filter(pk=diff.segment_id).update(
                size=diff.size,
                last_computed_at=at,
                last_compute_ms=ms,
                compute_failed_at=None,
                compute_error="",
            )
            Segment.objects.filter(
                pk=diff.segment_id, compute_requested_at__lte=requested_before
            ).update(compute_requested_at=None)
            results.append(
                SegmentComputation.objects.create(
                    segment_id=diff.segment_id,
                    started_at=at,
                    duration_ms=ms,
                    size=diff.size,
                    entered=len(diff.entered),
                    exited=len(diff.exited),
                    trigger=trigger,
                )
            )
            _announce(diff, at)
    return results


def _compute_failed(segment_id: int, exc: Exception) -> None:
    """Record why ``segment_id`` could not be computed (shown in the admin); its memberships
    stay as the last successful computation left them."""
    logger.exception("segment %s could not be computed", segment_id, exc_info=exc)
    reason = f"{type(exc).__name__}: {exc}"[:1000]
    Segment.objects.filter(pk=segment_id).update(
        compute_failed_at=timezone.now(), compute_error=reason, compute_requested_at=None
    )


def contacts_reevaluate(
    *,
    contact_ids: Sequence[int],
    event_types: set[str] | frozenset[str] | None = None,
    now: datetime | None = None,
) -> list[MembershipDiff]:
    """Real-time path: refresh the features of ``contact_ids`` and re-evaluate, for them only,
    the active segments that can depend on ``event_types`` (all segments when None) and the
    segments reading those. Entered/exited signals go out after commit; returns the non-empty
    diffs. Memberships end up exactly as a full computation at ``now`` would leave them for
    these contacts (segments are locked as in a full computation)."""
    now = now or timezone.now()
    ids = sorted(set(int(i) for i in contact_ids))
    if not ids:
        return []
    specs = [
        SegmentSpec(id=i, name=n, rule=r, family_id=f, priority=p, is_active=True)
        for i, n, r, f, p in Segment.objects.filter(is_active=True).values_list(
            "id", "name", "rule", "family_id", "priority"
        )
    ]
    plan = reevaluation_plan(specs, frozenset(event_types) if event_types is not None else None)
    with transaction.atomic():
        # Segment locks before feature rows, as a full computation takes them (no lock cycle
        # with a full feature refresh swapping the table).
        if len(ids) == 1 and plan.levels:
            open_now = segments_lock_open_memberships(
                contact_id=ids[0], segment_ids=plan.segment_ids
            )
        elif plan.levels:
            _lock_many(plan.segment_ids)
        features_sql_execute(as_of=now, computed_at=timezone.now(), contact_ids=ids)
        if not plan.levels:
            return []
        if len(ids) == 1:
            diffs = membership_diff_contact(
                contact_id=ids[0], levels=plan.levels, open_now=open_now, now=now
            )
        else:
            diffs = []
            for level in plan.levels:
                diffs += _reevaluate_batch(level, ids, now)
            diffs = [d for d in diffs if d.entered or d.exited]
            _sizes_shift(diffs)
        for diff in diffs:
            _announce(diff, now)
    return diffs


def _sizes_shift(diffs: list[MembershipDiff]) -> None:
    """Add each diff's net change to its segment's size (never below zero), one statement per
    distinct change."""
    by_delta: dict[int, list[int]] = {}
    for diff in diffs:
        delta = len(diff.entered) - len(diff.exited)
        if delta:
            by_delta.setdefault(delta, []).append(diff.segment_id)
    with connection.cursor() as cursor:
        for delta, segment_ids in by_delta.items():
            cursor.execute(  # fixed identifiers only; values are parameters
                "UPDATE segments_segment SET size = "  # noqa: S608
                "CASE WHEN size + %s < 0 THEN 0 ELSE size + %s END "
                f"WHERE id IN ({', '.join(['%s'] * len(segment_ids))})",
                [delta, delta, *segment_ids],
            )


def _lock_many(segment_ids: list[int]) -> None:
    """The locks of :func:`segment_lock` for several segments, taken in id order."""
    marks = ", ".join(["%s"] * len(segment_ids))
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"SELECT id FROM segments_segment WHERE id IN ({marks}) ORDER BY id FOR UPDATE",  # noqa: S608
                segment_ids,
            )
        else:  # SQLite: a write first, so the database lock is taken before any read
            cursor.execute(
                f"UPDATE segments_segment SET priority = priority WHERE id IN ({marks})",  # noqa: S608
                segment_ids,
            )


def _reevaluate_batch(
    level: Sequence[tuple[int, dict]], ids: list[int], now: datetime
) -> list[MembershipDiff]:
    if len(ids) > 1000:
        # Large batches: one restricted diff per segment (chunked id lists).
        return [
            membership_diff_contacts(
                segment_id=segment_id,
                rule_q=rule_compile(rule, now=now, contact_ids=tuple(ids)),
                contact_ids=ids,
                now=now,
            )
            for segment_id, rule in level
        ]
    annotations = {}
    for segment_id, rule in level:
        q = rule_compile(rule, now=now, contact_ids=tuple(ids))
        annotations[f"s{segment_id}"] = ExpressionWrapper(q, output_field=BooleanField())
    rows = Contact.objects.filter(pk__in=ids).annotate(**annotations).values("pk", *annotations)
    matched: dict[int, set[int]] = {segment_id: set() for segment_id, _rule in level}
    for row in rows:
        for segment_id in matched:
            if row[f"s{segment_id}"]:
                matched[segment_id].add(row["pk"])
    open_now: dict[int, set[int]] = {segment_id: set() for segment_id in matched}
    for segment_id, contact_id in SegmentMembership.objects.filter(
        segment_id__in=list(matched), contact_id__in=ids, exited_at__isnull=True
    ).values_list("segment_id", "contact_id"):
        open_now[segment_id].add(contact_id)
    diffs = []
    new_rows = []
    exit_q = Q(pk__in=[])
    for segment_id in matched:
        diff = MembershipDiff(
            segment_id=segment_id,
            entered=sorted(matched[segment_id] - open_now[segment_id]),
            exited=sorted(open_now[segment_id] - matched[segment_id]),
        )
        new_rows += [
            SegmentMembership(segment_id=segment_id, contact_id=c, entered_at=now)
            for c in diff.entered
        ]
        if diff.exited:
            exit_q |= Q(segment_id=segment_id, contact_id__in=diff.exited)
        diffs.append(diff)
    if new_rows:
        SegmentMembership.objects.bulk_create(new_rows)
    if any(d.exited for d in diffs):
        SegmentMembership.objects.filter(exit_q, exited_at__isnull=True).update(exited_at=now)
    return diffs


# --- contacts merged / erased ----------------------------------------------------------------


def memberships_merge(*, survivor_id: int, merged_ids: Sequence[int], now: datetime) -> None:
    """Move segment history of ``merged_ids`` to ``survivor_id`` without doubling an open
    membership (the survivor keeps its own; among duplicates the oldest stays open), and drop
    the merged contacts' feature rows. The survivor is re-evaluated afterwards by the caller."""
    merged = list(merged_ids)
    with transaction.atomic():
        survivor_open = SegmentMembership.objects.filter(
            contact_id=survivor_id, exited_at__isnull=True
        ).values("segment_id")
        merged_open = SegmentMembership.objects.filter(
            contact_id__in=merged, exited_at__isnull=True
        )
        merged_open.filter(segment_id__in=survivor_open).update(exited_at=now)
        keep = list(
            merged_open.values("segment_id").annotate(keep=Min("id")).values_list("keep", flat=True)
        )
        merged_open.exclude(id__in=keep).update(exited_at=now)
        SegmentMembership.objects.filter(contact_id__in=merged).update(contact_id=survivor_id)
        ContactFeatures.objects.filter(contact_id__in=merged).delete()
        # The survivor now owns events its row's running totals leave out: the next refresh
        # of its features reads all of them instead of folding the row forward.
        ContactFeatures.objects.filter(contact_id=survivor_id).update(events_through=None)


def contact_segment_data_erase(*, contact_id: int) -> int:
    """Delete the contact's memberships (history included) and features; returns rows deleted."""
    deleted, _ = SegmentMembership.objects.filter(contact_id=contact_id).delete()
    features, _ = ContactFeatures.objects.filter(contact_id=contact_id).delete()
    return deleted + features
