"""Read queries of the segments app (members, sizes, history, overlap, estimates, explanations)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import connection
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from contacts.models import Contact, Event
from segments.dependencies import effective_rule, spec_of
from segments.models import ContactFeatures, Segment, SegmentComputation, SegmentMembership
from segments.rules import ReferenceContact, rule_compile, rule_explain
from segments.rules.tree import ExplainLine


def segment_members(segment: Segment | int, *, at: datetime | None = None) -> QuerySet[Contact]:
    """Contacts with an open membership of ``segment`` (or open at ``at``, from the history)."""
    segment_id = segment if isinstance(segment, int) else segment.pk
    memberships = SegmentMembership.objects.filter(segment_id=segment_id, contact_id=OuterRef("pk"))
    if at is None:
        memberships = memberships.filter(exited_at__isnull=True)
    else:
        memberships = memberships.filter(
            Q(exited_at__isnull=True) | Q(exited_at__gt=at), entered_at__lte=at
        )
    return Contact.objects.filter(Exists(memberships))


def segment_size(segment: Segment | int) -> int:
    """Number of open memberships (exact count)."""
    segment_id = segment if isinstance(segment, int) else segment.pk
    return SegmentMembership.objects.filter(segment_id=segment_id, exited_at__isnull=True).count()


def contact_segment_ids(contact: Contact | int) -> set[int]:
    """Ids of the segments ``contact`` is currently a member of."""
    contact_id = contact if isinstance(contact, int) else contact.pk
    return set(
        SegmentMembership.objects.filter(contact_id=contact_id, exited_at__isnull=True).values_list(
            "segment_id", flat=True
        )
    )


def segment_size_history(segment: Segment, *, limit: int = 500) -> list[SegmentComputation]:
    """The latest ``limit`` full computations, oldest first (for the size-over-time chart)."""
    rows = list(SegmentComputation.objects.filter(segment=segment).order_by("-started_at")[:limit])
    return rows[::-1]


def segment_compute_state(segment: Segment) -> str:
    """``computing`` (a computation was asked for and has not finished), ``failed`` (the last
    one failed), ``done`` or ``never`` (not computed yet)."""
    if segment.is_active and segment.compute_requested_at is not None:
        return "computing"
    if segment.compute_failed_at is not None:
        return "failed"
    return "done" if segment.last_computed_at is not None else "never"


def segment_status(segment: Segment) -> dict:
    """What the segment page shows and polls: state, size, failure reason and the size chart."""
    history = segment_size_history(segment)
    return {
        "state": segment_compute_state(segment),
        "size": segment.size,
        "last_computed_at": (
            segment.last_computed_at.isoformat() if segment.last_computed_at else None
        ),
        "error": segment.compute_error,
        "chart": {
            "x": [h.started_at.isoformat() for h in history],
            "y": [h.size for h in history],
        },
    }


@dataclass(frozen=True)
class SizeWarning:
    code: str  # "too_small" | "too_large"
    message: str


def segment_size_warnings(*, size: int, total: int) -> list[SizeWarning]:
    """Over-segmentation (below SEGMENTS_MIN_SIZE) or near-everyone (above SEGMENTS_MAX_SHARE)."""
    from django.utils.translation import gettext

    warnings = []
    if size < settings.SEGMENTS_MIN_SIZE:
        warnings.append(
            SizeWarning(
                "too_small",
                gettext("Only %(size)s contacts (minimum advised: %(min)s): too small to act on.")
                % {"size": size, "min": settings.SEGMENTS_MIN_SIZE},
            )
        )
    if total and size / total > settings.SEGMENTS_MAX_SHARE:
        warnings.append(
            SizeWarning(
                "too_large",
                gettext("%(share).0f %% of all contacts: this segment barely segments.")
                % {"share": 100.0 * size / total},
            )
        )
    return warnings


@dataclass(frozen=True)
class Estimate:
    size: int
    total: int
    sample: list[Contact]


def rule_estimate(rule: dict, *, now: datetime | None = None, sample_size: int = 20) -> Estimate:
    """Live size and a sample of a validated (effective) rule, without writing anything."""
    now = now or timezone.now()
    matches = Contact.objects.filter(rule_compile(rule, now=now))
    return Estimate(
        size=matches.count(),
        total=Contact.objects.count(),
        sample=list(matches.order_by("pk")[:sample_size]),
    )


def reference_contact(contact: Contact) -> ReferenceContact:
    """Load what the Python reference evaluator reads for one contact."""
    return ReferenceContact(
        contact=contact,
        features=ContactFeatures.objects.filter(contact=contact).first(),
        events=list(Event.objects.filter(contact=contact).order_by("occurred_at")),
        memberships=contact_segment_ids(contact),
    )


def segment_explain(
    segment: Segment, contact: Contact, *, now: datetime | None = None
) -> tuple[bool, list[ExplainLine]]:
    """Whether the rule (with family precedence) holds for ``contact`` now, condition by
    condition with the contact's values."""
    now = now or timezone.now()
    specs = [spec_of(s) for s in Segment.objects.all()]
    rule = effective_rule(spec_of(segment), specs)
    lines = rule_explain(rule, reference_contact(contact), now=now)
    return (lines[0].passed if lines else False), lines


@dataclass(frozen=True)
class OverlapCell:
    a: int
    b: int
    both: int
    jaccard: float


def segment_overlap(segments: list[Segment]) -> dict[tuple[int, int], OverlapCell]:
    """Pairwise counts of contacts in both segments and Jaccard index, one SQL statement."""
    ids = [s.pk for s in segments]
    sizes = {s.pk: segment_size(s) for s in segments}
    cells: dict[tuple[int, int], OverlapCell] = {}
    if not ids:
        return cells
    placeholders = ", ".join(["%s"] * len(ids))
    with connection.cursor() as cursor:
        cursor.execute(  # placeholders only; the ids are parameters
            f"""
            SELECT a.segment_id, b.segment_id, count(*)
            FROM segments_segmentmembership a
            JOIN segments_segmentmembership b
              ON b.contact_id = a.contact_id AND b.exited_at IS NULL
             AND b.segment_id IN ({placeholders}) AND b.segment_id > a.segment_id
            WHERE a.exited_at IS NULL AND a.segment_id IN ({placeholders})
            GROUP BY a.segment_id, b.segment_id
            """,  # noqa: S608
            [*ids, *ids],
        )
        both = {(a, b): n for a, b, n in cursor.fetchall()}
    for a in ids:
        for b in ids:
            key = (min(a, b), max(a, b))
            n = sizes[a] if a == b else both.get(key, 0)
            union = sizes[a] + sizes[b] - n if a != b else sizes[a]
            cells[(a, b)] = OverlapCell(a, b, n, (n / union) if union else 0.0)
    return cells
