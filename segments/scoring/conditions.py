"""Rule conditions contributed to the segments rule engine: ``score`` and ``cohort``.

``{"type": "score", "score": "churn", "op": "gte", "value": 0.7}`` — a stored score compared
with a number (every number operator of the rule engine; ``is_not_set`` = not scored);
``{"type": "score", "score": "clv", "top_percent": 20}`` — among the highest 20 % of scored
contacts; ``{"type": "cohort", "cohort": "2026-03", "by": "signup" | "first_purchase"}`` —
acquired in that UTC calendar month. All compile to two-valued ``Q`` (Exists over the score
table or the events), never raw SQL.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db.models import Exists, OuterRef, Q
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from contacts.models import Event
from segments.rules.operators import (
    MOMENT_MAX,
    MOMENT_MIN,
    OPERATORS,
    operand_describe,
    operand_validate,
    python_compare,
)
from segments.rules.operators import column_q as number_column_q
from segments.rules.registry import (
    NO_DEPENDENCIES,
    CompileContext,
    Dependencies,
    ReferenceContact,
    ValidationContext,
    register_condition,
)
from segments.scoring.models import SCORE_COLUMNS, ContactScore

SCORE_LABELS = {
    "churn": _("churn risk"),
    "purchase_30d": _("purchase propensity (30 days)"),
    "clv": _("predicted CLV"),
    "p_alive": _("probability alive"),
}
COHORT_KINDS = {"signup": _("sign-up"), "first_purchase": _("first purchase")}
MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")

# --- score -------------------------------------------------------------------------------------


def _score_validate(condition: dict, ctx: ValidationContext) -> dict:
    name = condition.get("score")
    if name not in SCORE_COLUMNS:
        raise ctx.error(
            _("unknown score “%(score)s” (known: %(known)s).")
            % {"score": name, "known": ", ".join(SCORE_COLUMNS)}
        )
    if "top_percent" in condition:
        if "op" in condition or "value" in condition:
            raise ctx.error(_("use either “top_percent” or “op”/“value”, not both."))
        top = condition["top_percent"]
        if isinstance(top, bool) or not isinstance(top, int | float) or not 0 < top <= 100:
            raise ctx.error(_("“top_percent” must be a number above 0 and at most 100."))
        return {"score": name, "top_percent": top}
    op = condition.get("op")
    value = operand_validate("number", op, condition.get("value"), ctx)
    out: dict[str, Any] = {"score": name, "op": op}
    if value is not None:
        out["value"] = value
    return out


def _score_compile(condition: dict, ctx: CompileContext) -> Q:
    column, top_column, _kind = SCORE_COLUMNS[condition["score"]]
    if "top_percent" in condition:
        inner = Q(**{f"{top_column}__lte": condition["top_percent"] / 100.0})
    elif condition["op"] == "is_not_set":
        return ~_score_compile({**condition, "op": "is_set"}, ctx)
    else:
        inner = number_column_q(column, "number", condition["op"], condition.get("value"), ctx.now)
    return Q(Exists(ContactScore.objects.filter(inner, contact_id=OuterRef("pk"))))


def _score_row(contact: ReferenceContact) -> ContactScore | None:
    if "scoring" not in contact.extra:
        contact.extra["scoring"] = ContactScore.objects.filter(
            contact_id=contact.contact.pk
        ).first()
    return contact.extra["scoring"]


def _score_evaluate(condition: dict, contact: ReferenceContact, now: datetime) -> bool:
    column, top_column, _kind = SCORE_COLUMNS[condition["score"]]
    row = _score_row(contact)
    if "top_percent" in condition:
        top = getattr(row, top_column) if row else None
        return top is not None and top <= condition["top_percent"] / 100.0
    actual = getattr(row, column) if row else None
    return python_compare(actual, "number", condition["op"], condition.get("value"), now)


def _score_describe(condition: dict) -> str:
    label = SCORE_LABELS[condition["score"]]
    if "top_percent" in condition:
        return gettext("%(score)s in the top %(top)s %%") % {
            "score": label,
            "top": f"{condition['top_percent']:g}",
        }
    return f"{label} {operand_describe(condition['op'], condition.get('value'))}"


def _score_explain(condition: dict, contact: ReferenceContact, now: datetime) -> str:
    column, top_column, _kind = SCORE_COLUMNS[condition["score"]]
    row = _score_row(contact)
    value = getattr(row, column) if row else None
    if value is None:
        return gettext("(not scored)")
    top = getattr(row, top_column)
    return gettext("%(value).2f (top %(top).0f %%)") % {"value": value, "top": 100 * (top or 1)}


# --- cohort ------------------------------------------------------------------------------------


def month_bounds(cohort: str) -> tuple[datetime, datetime]:
    """[start, end) of the UTC calendar month ``YYYY-MM``."""
    year, month = int(cohort[:4]), int(cohort[5:7])
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def _cohort_validate(condition: dict, ctx: ValidationContext) -> dict:
    cohort = condition.get("cohort")
    if not isinstance(cohort, str) or not MONTH.match(cohort):
        raise ctx.error(_("“cohort” must be a month written YYYY-MM, e.g. 2026-03."))
    if not MOMENT_MIN.year <= int(cohort[:4]) <= MOMENT_MAX.year:
        raise ctx.error(
            _("the month “%(value)s” is out of range (from %(min)s to %(max)s).")
            % {"value": cohort, "min": f"{MOMENT_MIN:%Y-%m}", "max": f"{MOMENT_MAX:%Y-%m}"}
        )
    by = condition.get("by", "signup")
    if by not in COHORT_KINDS:
        raise ctx.error(_("“by” must be one of: %(kinds)s.") % {"kinds": ", ".join(COHORT_KINDS)})
    return {"cohort": cohort, "by": by}


def _purchases() -> Q:
    return Q(type=settings.CIBLE_PURCHASE_EVENT_TYPE)


def _cohort_compile(condition: dict, ctx: CompileContext) -> Q:
    start, end = month_bounds(condition["cohort"])
    if condition["by"] == "signup":
        return Q(created_at__gte=start, created_at__lt=end)
    purchases = Event.objects.filter(_purchases(), contact_id=OuterRef("pk"))
    return Q(Exists(purchases.filter(occurred_at__gte=start, occurred_at__lt=end))) & ~Q(
        Exists(purchases.filter(occurred_at__lt=start))
    )


def _first_purchase(contact: ReferenceContact) -> datetime | None:
    times = [e.occurred_at for e in contact.events if e.type == settings.CIBLE_PURCHASE_EVENT_TYPE]
    return min(times) if times else None


def _cohort_evaluate(condition: dict, contact: ReferenceContact, now: datetime) -> bool:
    start, end = month_bounds(condition["cohort"])
    moment = contact.contact.created_at if condition["by"] == "signup" else _first_purchase(contact)
    return moment is not None and start <= moment < end


def _cohort_describe(condition: dict) -> str:
    return gettext("acquired in %(month)s (by %(kind)s)") % {
        "month": condition["cohort"],
        "kind": COHORT_KINDS[condition["by"]],
    }


def _cohort_explain(condition: dict, contact: ReferenceContact, now: datetime) -> str:
    moment = contact.contact.created_at if condition["by"] == "signup" else _first_purchase(contact)
    return moment.strftime("%Y-%m") if moment else gettext("(no purchase)")


def _cohort_dependencies(condition: dict) -> Dependencies:
    if condition["by"] == "first_purchase":
        return Dependencies(event_types=frozenset({settings.CIBLE_PURCHASE_EVENT_TYPE}))
    return NO_DEPENDENCIES


def register_scoring_conditions() -> None:
    """Called from ``ScoringConfig.ready``."""
    register_condition(
        "score",
        _score_compile,
        _score_validate,
        _score_describe,
        _score_evaluate,
        explainer=_score_explain,
        label=_("Predictive score"),
        builder={
            "subject": "score",
            # "is in the top … %" (``top_percent``), offered beside the number operators.
            "rank_op": {"name": "top_percent", "label": _("is in the top … %"), "default": 20},
            "choices": [
                {
                    "name": name,
                    "label": str(label),
                    "kind": "number",
                    "ops": list(OPERATORS["number"]),
                }
                for name, label in SCORE_LABELS.items()
            ],
        },
    )
    register_condition(
        "cohort",
        _cohort_compile,
        _cohort_validate,
        _cohort_describe,
        _cohort_evaluate,
        dependencies=_cohort_dependencies,
        explainer=_cohort_explain,
        label=_("Acquisition cohort"),
    )
