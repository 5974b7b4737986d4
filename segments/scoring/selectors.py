"""Reads of scoring: a contact's scores, the active models, the cohort table."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.utils import formats, timezone
from django.utils.translation import gettext

from contacts.models import Contact
from segments.scoring.models import ContactScore, ModelKind, ScoringModel
from segments.scoring.sql import cohort_rows

SCORE_FIELDS = ("p_alive", "expected_purchases", "clv", "churn", "purchase_30d")


def contact_scores(contact: Contact | int) -> dict | None:
    """The contact's stored scores for the contact API (``GET /api/v1/contacts/<id>``):
    ``{"p_alive", "expected_purchases", "clv", "churn", "purchase_30d", "clv_top",
    "churn_top", "updated_at", "models": {kind: version}}`` or None when never scored."""
    contact_id = contact.pk if isinstance(contact, Contact) else int(contact)
    row = (
        ContactScore.objects.filter(contact_id=contact_id)
        .select_related("clv_model", "churn_model", "purchase_model")
        .first()
    )
    if row is None:
        return None
    models = {
        kind: getattr(row, f"{kind}_model").version
        for kind in ("clv", "churn", "purchase")
        if getattr(row, f"{kind}_model") is not None
    }
    return {
        **{name: getattr(row, name) for name in SCORE_FIELDS},
        "clv_top": row.clv_top,
        "churn_top": row.churn_top,
        "updated_at": row.updated_at.isoformat(),
        "models": models,
    }


def active_model(kind: str) -> ScoringModel | None:
    return ScoringModel.objects.filter(kind=kind, active=True).first()


def active_models() -> dict[str, ScoringModel | None]:
    return {kind: active_model(kind) for kind in ModelKind.values}


@dataclass
class CohortTable:
    """Cohorts (rows, ``YYYY-MM``) × months since acquisition (columns, 0 = the month itself).

    ``retention[i][k]``: share of the cohort buying in month k; ``revenue_per_contact[i][k]``:
    revenue of month k divided by the cohort size; ``cumulative_value[i][k]``: revenue of
    months 0..k per contact (realised lifetime value). None where month k is in the future.
    """

    by: str
    cohorts: list[str]
    sizes: list[int]
    months_since: list[int]
    buyers: list[list[int | None]]
    retention: list[list[float | None]]
    revenue_per_contact: list[list[float | None]]
    cumulative_value: list[list[float | None]]


def _month_label(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def cohort_table(
    *, by: str = "signup", months: int = 24, now: datetime | None = None
) -> CohortTable:
    """Cohorts acquired in the last ``months`` UTC months (two set-based aggregates)."""
    now = now or timezone.now()
    current = now.year * 12 + now.month - 1
    first = current - months + 1
    rows = cohort_rows(by=by, first_month=first)
    cohorts = [c for c, _n in rows.sizes]
    sizes = np.array([n for _c, n in rows.sizes], dtype=np.float64)
    index = {c: i for i, c in enumerate(cohorts)}
    width = months
    buyers = np.zeros((len(cohorts), width))
    revenue = np.zeros((len(cohorts), width))
    for cohort, month, count, amount in rows.cells:  # one row per (cohort, month) cell
        k = month - cohort
        if cohort in index and 0 <= k < width:
            buyers[index[cohort], k] = count
            revenue[index[cohort], k] = amount
    elapsed = np.array([current - c for c in cohorts])[:, None] >= np.arange(width)[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        retention = buyers / sizes[:, None]
        per_contact = revenue / sizes[:, None]
    cumulative = np.cumsum(per_contact, axis=1)

    def masked(matrix: np.ndarray, *, integer: bool = False) -> list[list]:
        cast = int if integer else float
        return [
            [cast(v) if ok else None for v, ok in zip(row, keep, strict=True)]
            for row, keep in zip(matrix, elapsed, strict=True)
        ]

    return CohortTable(
        by=by,
        cohorts=[_month_label(c) for c in cohorts],
        sizes=[int(n) for n in sizes],
        months_since=list(range(width)),
        buyers=masked(buyers, integer=True),
        retention=masked(retention),
        revenue_per_contact=masked(per_contact),
        cumulative_value=masked(cumulative),
    )


COHORT_KINDS = ("signup", "first_purchase")
COHORT_PAGE_MONTHS = 24  # the cohorts page's default period


def _cohort_cache_key(*, by: str, months: int, current_month: int) -> str:
    return f"scoring:cohorts:{by}:{months}:{current_month}"


def cohort_table_as_of(
    *, by: str = "signup", months: int = 24, now: datetime | None = None, fresh: bool = False
) -> tuple[CohortTable, datetime]:
    """``(cohort_table(...), when it was computed)``, kept ``SCORING_COHORTS_CACHE_SECONDS``
    in the cache (shared in production): the two aggregates read every purchase of the
    period, seconds at a million contacts, too much to redo on every visit of the page.

    Invalidation: the entry expires after that many seconds, its key changes with the UTC
    month (a new month is a new column), and ``fresh=True`` (the page's "Recompute now"
    button, and beat's ``refresh_cohorts`` every ``SCORING_COHORTS_REFRESH_SECONDS`` for the
    default view) recomputes and replaces it. 0 seconds: computed on every call."""
    now = now or timezone.now()
    seconds = settings.SCORING_COHORTS_CACHE_SECONDS
    if seconds <= 0:
        return cohort_table(by=by, months=months, now=now), now
    key = _cohort_cache_key(by=by, months=months, current_month=now.year * 12 + now.month - 1)
    hit = None if fresh else cache.get(key)
    if hit is None:
        hit = (cohort_table(by=by, months=months, now=now), now)
        cache.set(key, hit, seconds)
    return hit


@dataclass
class ScoreLine:
    """One line of the contact page's score card: label, shown value, optional top rank."""

    key: str
    label: str
    value: str
    top: str = ""
    model: ScoringModel | None = None


@dataclass
class ContactScoreCard:
    """What the contact's admin page shows about its predictive scores.

    ``scored`` is False when the contact has no stored score (``lines`` is then empty);
    ``cohorts`` is always filled: ``[(label, "YYYY-MM" or "—")]`` by sign-up and by first
    purchase."""

    scored: bool
    lines: list[ScoreLine]
    cohorts: list[tuple[str, str]]
    updated_at: datetime | None
    models: list[ScoringModel]

    @property
    def explains_p_alive(self) -> bool:
        return any(line.key == "p_alive" for line in self.lines)


def _number(value: float, decimals: int) -> str:
    """Rounded (Django's number_format truncates) and written in the active language."""
    return formats.number_format(round(value, decimals), decimals)


def _percent(value: float) -> str:
    return _number(100 * value, 0) + " %"


def _top(share: float | None) -> str:
    """ "top 12 %": the contact is within the best 12 % (rounded up; one decimal under 1 %)."""
    if share is None:
        return ""
    percent = 100 * share
    shown = (
        _number(math.ceil(percent), 0) if percent >= 1 else _number(math.ceil(percent * 10) / 10, 1)
    )
    return gettext("top %(percent)s") % {"percent": shown + " %"}


def contact_score_card(contact: Contact) -> ContactScoreCard:
    """The contact's stored scores, formatted for the contact page, with its cohorts."""
    from django.conf import settings

    from contacts.models import Event

    first_purchase = (
        Event.objects.filter(contact=contact, type=settings.CIBLE_PURCHASE_EVENT_TYPE)
        .order_by("occurred_at")
        .values_list("occurred_at", flat=True)
        .first()
    )
    cohorts = [
        (gettext("Cohort (sign-up month)"), f"{contact.created_at:%Y-%m}"),
        (
            gettext("Cohort (first purchase month)"),
            f"{first_purchase:%Y-%m}" if first_purchase else gettext("no purchase yet"),
        ),
    ]
    row = (
        ContactScore.objects.filter(contact_id=contact.pk)
        .select_related("clv_model", "churn_model", "purchase_model")
        .first()
    )
    if row is None:
        return ContactScoreCard(scored=False, lines=[], cohorts=cohorts, updated_at=None, models=[])
    lines: list[ScoreLine] = []
    if row.churn is not None:
        lines.append(
            ScoreLine(
                "churn",
                gettext("Churn risk (no purchase in the next %(days)d days)")
                % {"days": row.churn_model.horizon_days if row.churn_model else 0},
                _percent(row.churn),
                _top(row.churn_top),
                row.churn_model,
            )
        )
    if row.purchase_30d is not None:
        lines.append(
            ScoreLine(
                "purchase_30d",
                gettext("Purchase propensity (purchase in the next %(days)d days)")
                % {"days": row.purchase_model.horizon_days if row.purchase_model else 0},
                _percent(row.purchase_30d),
                _top(row.purchase_30d_top),
                row.purchase_model,
            )
        )
    if row.p_alive is not None:
        horizon = row.clv_model.horizon_days if row.clv_model else 0
        lines += [
            ScoreLine(
                "p_alive",
                gettext("Probability alive"),
                _percent(row.p_alive),
                _top(row.p_alive_top),
                row.clv_model,
            ),
            ScoreLine(
                "expected_purchases",
                gettext("Expected purchases (next %(days)d days)") % {"days": horizon},
                _number(row.expected_purchases, 2),
                "",
                row.clv_model,
            ),
            ScoreLine(
                "clv",
                gettext("Predicted CLV (next %(days)d days, discounted)") % {"days": horizon},
                _number(row.clv, 2),
                _top(row.clv_top),
                row.clv_model,
            ),
        ]
    models = [m for m in (row.churn_model, row.purchase_model, row.clv_model) if m is not None]
    return ContactScoreCard(
        scored=bool(lines),
        lines=lines,
        cohorts=cohorts,
        updated_at=row.updated_at,
        models=models,
    )


def scoring_jobs_recent(*, limit: int = 6) -> list:
    """The latest training jobs, newest first (the predictive models page shows them)."""
    from segments.scoring.models import ScoringJob

    return list(ScoringJob.objects.select_related("requested_by", "model")[:limit])


def scoring_jobs_pending_exist() -> bool:
    from segments.scoring.models import ScoringJob

    return ScoringJob.objects.filter(status__in=["queued", "running"]).exists()
