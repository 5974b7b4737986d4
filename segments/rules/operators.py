"""Operators by value kind: validation, SQL (``Q``), Python reference and plain language.

Kinds: ``number``, ``string``, ``boolean``, ``datetime``. Semantics shared by SQL and Python:
a missing value (NULL / absent key / no feature row) satisfies only ``is_not_set``; ``ne`` and
``not_in`` need a value; ``contains`` / ``starts_with`` ignore ASCII case; ``between`` is
inclusive; relative dates are counted from the compute time ``now``.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from django.db.models import FloatField, Q, Value
from django.db.models.expressions import Expression
from django.db.models.lookups import (
    Exact,
    GreaterThan,
    GreaterThanOrEqual,
    IContains,
    In,
    IsNull,
    IStartsWith,
    LessThan,
    LessThanOrEqual,
)
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from segments.rules.registry import ValidationContext

OPERATORS: dict[str, tuple[str, ...]] = {
    "number": (
        "eq",
        "ne",
        "gt",
        "gte",
        "lt",
        "lte",
        "between",
        "in",
        "not_in",
        "is_set",
        "is_not_set",
    ),
    "string": ("eq", "ne", "in", "not_in", "contains", "starts_with", "is_set", "is_not_set"),
    "boolean": ("is_true", "is_false", "is_set", "is_not_set"),
    "datetime": (
        "before",
        "after",
        "within_last_days",
        "more_than_days_ago",
        "is_set",
        "is_not_set",
    ),
}
NO_VALUE_OPS = frozenset({"is_set", "is_not_set", "is_true", "is_false"})

OP_LABELS = {
    "eq": _("is"),
    "ne": _("is not"),
    "gt": _("is more than"),
    "gte": _("is at least"),
    "lt": _("is less than"),
    "lte": _("is at most"),
    "between": _("is between"),
    "in": _("is one of"),
    "not_in": _("is none of"),
    "contains": _("contains"),
    "starts_with": _("starts with"),
    "is_set": _("is set"),
    "is_not_set": _("is not set"),
    "is_true": _("is true"),
    "is_false": _("is false"),
    "before": _("is before"),
    "after": _("is after"),
    "within_last_days": _("is within the last … days"),
    "more_than_days_ago": _("is more than … days ago"),
}


# Value ranges a rule may hold: beyond them a comparison means nothing for marketing data and
# the database or the date arithmetic would overflow at compute time (so they are refused at
# save, where the user can correct them, instead of failing every later computation).
NUMBER_LIMIT = 10**15
MOMENT_MIN = datetime(1900, 1, 1)
MOMENT_MAX = datetime(2199, 12, 31, 23, 59, 59)
MAX_LIST_ITEMS = 1000
MAX_TEXT_LENGTH = 1000


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number_in_range(value: Any) -> bool:
    """A finite number within ±NUMBER_LIMIT (``value`` is known to be a number)."""
    try:
        return math.isfinite(value) and abs(value) <= NUMBER_LIMIT
    except OverflowError:  # an int too large for a float
        return False


def _looks_numeric(value: Any) -> bool:
    """A text that reads as a number (e.g. “1e400” typed in a form)."""
    if not isinstance(value, str):
        return False
    try:
        float(value.strip())
    except ValueError:
        return False
    return True


def number_out_of_range_error(value: Any, ctx: ValidationContext) -> Exception:
    return ctx.error(
        _("the number “%(value)s” is out of range (from -%(limit)s to %(limit)s).")
        % {"value": _shorten(value), "limit": f"{NUMBER_LIMIT:,}".replace(",", " ")}
    )


def number_validate(value: Any, op: str, ctx: ValidationContext) -> int | float:
    """``value`` as a number within range, or a RuleError saying what is wrong with it."""
    if _is_number(value):
        if not _number_in_range(value):
            raise number_out_of_range_error(value, ctx)
        return value
    if _looks_numeric(value) or value is None:
        # A browser turns a number beyond a double (1e400) into null or keeps the text.
        if value is None:
            raise ctx.error(
                _("“%(op)s” needs a number (a value too large to be a number is shown as empty).")
                % {"op": op}
            )
        if not math.isfinite(float(value)) or abs(float(value)) > NUMBER_LIMIT:
            raise number_out_of_range_error(value, ctx)
    raise ctx.error(
        _("“%(op)s” needs a number, not “%(value)s”.") % {"op": op, "value": _shorten(value)}
    )


def _shorten(value: Any, limit: int = 40) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def moment_validate(value: Any, ctx: ValidationContext, *, bound: str = "") -> str:
    """An ISO date/date-time text between MOMENT_MIN and MOMENT_MAX, else a RuleError
    (``bound`` names the key holding it, e.g. “since”)."""
    moment = parse_moment(value) if isinstance(value, str) and len(value) <= 64 else None
    names = {"bound": bound, "value": _shorten(value)}
    if moment is None:
        if bound:
            raise ctx.error(
                _("“%(bound)s”: “%(value)s” is not a valid date (use YYYY-MM-DD).") % names
            )
        raise ctx.error(
            _("“%(value)s” is not a valid date (use YYYY-MM-DD or an ISO 8601 date-time).") % names
        )
    if not (MOMENT_MIN.year <= moment.year <= MOMENT_MAX.year):
        names |= {"min": MOMENT_MIN.date().isoformat(), "max": MOMENT_MAX.date().isoformat()}
        if bound:
            raise ctx.error(
                _("“%(bound)s”: the date “%(value)s” is out of range (from %(min)s to %(max)s).")
                % names
            )
        raise ctx.error(
            _("the date “%(value)s” is out of range (from %(min)s to %(max)s).") % names
        )
    return value


def parse_moment(value: Any) -> datetime | None:
    """An ISO date or datetime (naive = in TIME_ZONE) as an aware datetime, else None."""
    if not isinstance(value, str):
        return None
    try:
        moment = parse_datetime(value)
        if moment is None:
            day = parse_date(value)
            if day is None:
                return None
            moment = datetime(day.year, day.month, day.day)
    except ValueError:
        return None
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


def operand_validate(kind: str, op: Any, value: Any, ctx: ValidationContext) -> Any:
    """Check ``op``/``value`` for ``kind``; return the normalised value (None for no-value ops)."""
    if op not in OPERATORS[kind]:
        raise ctx.error(
            _("operator “%(op)s” does not apply to a %(kind)s (use one of: %(ops)s).")
            % {"op": op, "kind": kind, "ops": ", ".join(OPERATORS[kind])}
        )
    if op in NO_VALUE_OPS:
        return None
    if op == "between":
        if not (isinstance(value, list) and len(value) == 2):
            raise ctx.error(_("“between” needs a list of two numbers, e.g. [10, 50]."))
        for bound in value:
            number_validate(bound, op, ctx)
        if value[0] > value[1]:
            raise ctx.error(_("“between” needs the smaller number first."))
        return list(value)
    if op in ("in", "not_in"):
        scalar = _is_number if kind == "number" else (lambda v: isinstance(v, str))
        if kind == "number" and isinstance(value, list) and len(value) <= MAX_LIST_ITEMS:
            for item in value:
                if _is_number(item) or _looks_numeric(item) or item is None:
                    number_validate(item, op, ctx)
        if not (isinstance(value, list) and value and all(scalar(v) for v in value)):
            raise ctx.error(
                _("“%(op)s” needs a non-empty list of %(kind)s values.") % {"op": op, "kind": kind}
            )
        if len(value) > MAX_LIST_ITEMS:
            raise ctx.error(
                _("“%(op)s” takes at most %(max)s values (this list has %(n)s).")
                % {"op": op, "max": MAX_LIST_ITEMS, "n": len(value)}
            )
        for item in value:
            if kind == "number":
                number_validate(item, op, ctx)
            else:
                text_validate(item, ctx)
        return list(value)
    if op in ("within_last_days", "more_than_days_ago"):
        if not (isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 36_500):
            raise ctx.error(_("“%(op)s” needs a whole number of days (0 to 36500).") % {"op": op})
        return value
    if kind == "datetime":
        return moment_validate(value, ctx)
    if kind == "number":
        return number_validate(value, op, ctx)
    if not isinstance(value, str):
        raise ctx.error(
            _("“%(op)s” needs a text value, not “%(value)s”.")
            % {"op": op, "value": _shorten(value)}
        )
    return text_validate(value, ctx)


def text_validate(value: str, ctx: ValidationContext) -> str:
    if len(value) > MAX_TEXT_LENGTH:
        raise ctx.error(
            _("a text value has at most %(max)s characters (this one has %(n)s).")
            % {"max": MAX_TEXT_LENGTH, "n": len(value)}
        )
    return value


def _threshold(op: str, value: Any, now: datetime) -> datetime | None:
    if op in ("within_last_days", "more_than_days_ago"):
        return now - timedelta(days=value)
    if op in ("before", "after"):
        return parse_moment(value)
    return None


def column_q(
    column: str, kind: str, op: str, value: Any, now: datetime, *, integer: bool = False
) -> Q:
    """Two-valued ``Q`` on a model column (lookups path ``column``).

    ``integer``: the column holds whole numbers; a numeric operand is then turned into the
    equivalent whole-number bound (``x >= 2.5`` ⇔ ``x >= 3``), so the column is compared as
    it is stored (no cast per row: indexes and planner statistics apply).
    """
    present = Q(**{f"{column}__isnull": False})
    if kind == "string":
        present &= ~Q(**{column: ""})
    if op == "is_set":
        return present
    if op == "is_not_set":
        return ~present
    if op == "is_true":
        return Q(**{column: True})
    if op == "is_false":
        return Q(**{column: False})
    moment = _threshold(op, value, now)
    if kind == "number" and integer:
        return present & _integer_q(column, op, value)
    if kind == "number":
        # Compare as floats: Django would otherwise truncate 0.5 to 0 for an integer column.
        value = _as_float(value)
    lookups = {
        "eq": lambda: Q(**{column: value}),
        "gt": lambda: Q(**{f"{column}__gt": value}),
        "gte": lambda: Q(**{f"{column}__gte": value}),
        "lt": lambda: Q(**{f"{column}__lt": value}),
        "lte": lambda: Q(**{f"{column}__lte": value}),
        "in": lambda: _any_equal(column, value),
        "contains": lambda: Q(**{f"{column}__icontains": value}),
        "starts_with": lambda: Q(**{f"{column}__istartswith": value}),
    }
    if op in lookups:
        return present & lookups[op]()
    if op == "ne":
        return present & ~Q(**{column: value})
    if op == "not_in":
        return present & ~_any_equal(column, value)
    if op == "between":
        return present & Q(**{f"{column}__gte": value[0], f"{column}__lte": value[1]})
    if op in ("before", "more_than_days_ago"):
        return present & Q(**{f"{column}__lt": moment})
    if op in ("after",):
        return present & Q(**{f"{column}__gt": moment})
    if op == "within_last_days":
        return present & Q(**{f"{column}__gte": moment})
    raise ValueError(op)


# Beyond any stored whole number: clamping keeps the literal a bigint.
_INT_LIMIT = 2**62


def _clamp(number: int) -> int:
    return max(-_INT_LIMIT, min(_INT_LIMIT, number))


def _whole_bound(value: float, rounding: Any) -> int:
    return rounding(max(-_INT_LIMIT, min(_INT_LIMIT, value)))


def _integer_q(column: str, op: str, value: Any) -> Q:
    """Exact whole-number form of a numeric comparison on an integer column."""
    nothing = Q(**{f"{column}__in": []})
    if op in ("in", "not_in"):
        whole = [_clamp(int(v)) for v in value if math.isfinite(v) and float(v).is_integer()]
        matched = Q(**{f"{column}__in": whole}) if whole else nothing
        return matched if op == "in" else ~matched
    if op in ("eq", "ne"):
        whole_value = math.isfinite(value) and float(value).is_integer()
        exact = Q(**{column: _clamp(int(value))}) if whole_value else nothing
        return exact if op == "eq" else ~exact
    if any(math.isnan(v) for v in (value if isinstance(value, list) else [value])):
        return nothing  # every ordering comparison with NaN is false
    if op == "between":
        return Q(
            **{
                f"{column}__gte": _whole_bound(value[0], math.ceil),
                f"{column}__lte": _whole_bound(value[1], math.floor),
            }
        )
    bound = {
        "gt": ("gt", math.floor),
        "gte": ("gte", math.ceil),
        "lt": ("lt", math.ceil),
        "lte": ("lte", math.floor),
    }[op]
    return Q(**{f"{column}__{bound[0]}": _whole_bound(value, bound[1])})


def _as_float(value: Any) -> Any:
    if isinstance(value, list):
        return [_as_float(v) for v in value]
    return Value(float(value), output_field=FloatField())


def _any_equal(column: str, values: list) -> Q:
    if values and not isinstance(values[0], Value):
        return Q(**{f"{column}__in": values})
    q = Q(pk__in=[])
    for value in values:
        q |= Q(**{column: value})
    return q


def expression_q(expression: Expression, op: str, value: Any, now: datetime) -> Q:
    """Two-valued ``Q`` on an expression that is NULL when the value is missing."""
    present = Q(IsNull(expression, False))
    if op == "is_set":
        return present
    if op == "is_not_set":
        return ~present
    if op == "is_true":
        return present & Q(Exact(expression, True))
    if op == "is_false":
        return present & Q(Exact(expression, False))
    builders = {
        "eq": lambda: Q(Exact(expression, value)),
        "ne": lambda: ~Q(Exact(expression, value)),
        "gt": lambda: Q(GreaterThan(expression, value)),
        "gte": lambda: Q(GreaterThanOrEqual(expression, value)),
        "lt": lambda: Q(LessThan(expression, value)),
        "lte": lambda: Q(LessThanOrEqual(expression, value)),
        "between": lambda: (
            Q(GreaterThanOrEqual(expression, value[0])) & Q(LessThanOrEqual(expression, value[1]))
        ),
        "in": lambda: Q(In(expression, value)),
        "not_in": lambda: ~Q(In(expression, value)),
        "contains": lambda: Q(IContains(expression, value)),
        "starts_with": lambda: Q(IStartsWith(expression, value)),
    }
    return present & builders[op]()


def _ascii_lower(text: str) -> str:
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)


def python_compare(
    actual: Any, kind: str, op: str, value: Any, now: datetime, *, empty_is_unset: bool = True
) -> bool:
    """The reference semantics of ``op`` (see the module docstring)."""
    present = actual is not None and not (empty_is_unset and kind == "string" and actual == "")
    if op == "is_set":
        return present
    if op == "is_not_set":
        return not present
    if not present:
        return False
    if op == "is_true":
        return actual is True
    if op == "is_false":
        return actual is False
    if op == "eq":
        return actual == value
    if op == "ne":
        return actual != value
    if op == "gt":
        return actual > value
    if op == "gte":
        return actual >= value
    if op == "lt":
        return actual < value
    if op == "lte":
        return actual <= value
    if op == "between":
        return value[0] <= actual <= value[1]
    if op == "in":
        return actual in value
    if op == "not_in":
        return actual not in value
    if op == "contains":
        return _ascii_lower(value) in _ascii_lower(actual)
    if op == "starts_with":
        return _ascii_lower(actual).startswith(_ascii_lower(value))
    moment = _threshold(op, value, now)
    if op in ("before", "more_than_days_ago"):
        return actual < moment
    if op == "after":
        return actual > moment
    if op == "within_last_days":
        return actual >= moment
    raise ValueError(op)


def operand_describe(op: str, value: Any) -> str:
    """``is at least 30``, ``is within the last 14 days``… in the active language."""
    if op in NO_VALUE_OPS:
        return str(OP_LABELS[op])
    if op == "between":
        return gettext("is between %(low)s and %(high)s") % {"low": value[0], "high": value[1]}
    if op in ("in", "not_in"):
        return f"{OP_LABELS[op]} {', '.join(f'“{v}”' if isinstance(v, str) else str(v) for v in value)}"
    if op == "within_last_days":
        return gettext("is within the last %(days)s days") % {"days": value}
    if op == "more_than_days_ago":
        return gettext("is more than %(days)s days ago") % {"days": value}
    shown = f"“{value}”" if isinstance(value, str) else str(value)
    return f"{OP_LABELS[op]} {shown}"
