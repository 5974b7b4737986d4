"""Words and numbers of the results page: localised formats and the plain-language verdicts.

Every sentence is translatable (French is the marketers' language). A verdict sentence never
says "increases" or "decreases" unless the comparison's verdict is a significant winner/loser.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from django.utils import formats
from django.utils.translation import gettext as _
from django.utils.translation import pgettext

from experiments import statistics as st
from experiments.models import Experiment, Metric

if TYPE_CHECKING:
    from experiments.results import Comparison, ExperimentResults


def is_finite(x: float | None) -> bool:
    return x is not None and isinstance(x, int | float) and math.isfinite(x)


def metric_label(metric: str) -> str:
    """The metric as a sentence names it ("Variant B increases clicks by …"; French « les
    clics »). A context of its own: other apps translate the bare words for their headings."""
    return {
        Metric.OPEN: pgettext("metric named in a sentence", "opens"),
        Metric.CLICK: pgettext("metric named in a sentence", "clicks"),
        Metric.CONVERSION: pgettext("metric named in a sentence", "conversions"),
        Metric.REVENUE: pgettext("metric named in a sentence", "revenue per recipient"),
        Metric.UNSUBSCRIBE: pgettext("metric named in a sentence", "unsubscribes"),
        Metric.COMPLAINT: pgettext("metric named in a sentence", "complaints"),
    }[Metric(metric)]


def metric_heading(metric: str) -> str:
    """The metric as a column or a chart label names it (French « clics »)."""
    return {
        Metric.OPEN: pgettext("metric as a heading", "opens"),
        Metric.CLICK: pgettext("metric as a heading", "clicks"),
        Metric.CONVERSION: pgettext("metric as a heading", "conversions"),
        Metric.REVENUE: pgettext("metric as a heading", "revenue per recipient"),
        Metric.UNSUBSCRIBE: pgettext("metric as a heading", "unsubscribes"),
        Metric.COMPLAINT: pgettext("metric as a heading", "complaints"),
    }[Metric(metric)]


def percent(value: float, digits: int = 1) -> str:
    """A share as a localised percentage ("12.3 %", « 12,3 % »); "—" when undefined."""
    if not is_finite(value):
        return "—"
    return (
        f"{formats.number_format(round(value * 100, digits), decimal_pos=digits, use_l10n=True)} %"
    )


def number(value: float | int, digits: int = 0) -> str:
    if not is_finite(value):
        return "—"
    return formats.number_format(
        round(value, digits), decimal_pos=digits, use_l10n=True, force_grouping=True
    )


def p_value_text(value: float | None) -> str:
    if not is_finite(value):
        return "—"
    if value < 0.0001:
        return "< 0.0001" if formats.get_format("DECIMAL_SEPARATOR") == "." else "< 0,0001"
    return formats.number_format(round(value, 4), decimal_pos=4, use_l10n=True)


def _effect_phrase(comparison: Comparison) -> tuple[str, str, str]:
    """(size, low, high) of the effect: relative when defined, else in percentage points."""
    if comparison.metric == Metric.REVENUE and not is_finite(comparison.rel_lift):
        return (
            number(abs(comparison.abs_diff), 2),
            number(comparison.abs_ci[0], 2),
            number(comparison.abs_ci[1], 2),
        )
    if is_finite(comparison.rel_lift) and is_finite(comparison.rel_ci[0]):
        return (
            percent(abs(comparison.rel_lift), 1),
            percent(comparison.rel_ci[0], 1),
            percent(comparison.rel_ci[1], 1),
        )
    ci = comparison.sequential_ci or comparison.abs_ci
    return (
        _("%(n)s points") % {"n": number(abs(comparison.abs_diff) * 100, 2)},
        number(ci[0] * 100, 2),
        number(ci[1] * 100, 2),
    )


def verdict_sentence(comparison: Comparison, *, experiment: Experiment) -> str:
    """The plain-language verdict. Never claims a winner without a significant result."""
    name = comparison.variant_key
    metric = metric_label(comparison.metric)
    code = st.VerdictCode(comparison.verdict)
    if code is st.VerdictCode.SAMPLE_RATIO_MISMATCH:
        return _(
            "Variant %(name)s: no conclusion — the split of recipients does not match the "
            "configured weights, so the results cannot be trusted."
        ) % {"name": name}
    size, low, high = _effect_phrase(comparison)
    p = p_value_text(comparison.p_value_adjusted)
    confidence = number(100 * (1 - experiment.alpha), 0)
    if code in (st.VerdictCode.WINNER, st.VerdictCode.LOSER):
        increases = comparison.abs_diff > 0
        template = (
            _(
                "Variant %(name)s increases %(metric)s by %(size)s (%(conf)s %% CI %(low)s to "
                "%(high)s), adjusted p = %(p)s."
            )
            if increases
            else _(
                "Variant %(name)s decreases %(metric)s by %(size)s (%(conf)s %% CI %(low)s to "
                "%(high)s), adjusted p = %(p)s."
            )
        )
        return template % {
            "name": name,
            "metric": metric,
            "size": size,
            "conf": confidence,
            "low": low,
            "high": high,
            "p": p,
        }
    needed = comparison.additional_sample_needed
    if needed:
        return _(
            "Variant %(name)s, %(metric)s: not enough evidence yet; about %(n)s more recipients "
            "per variant needed."
        ) % {"name": name, "metric": metric, "n": number(_round_needed(needed))}
    if needed == 0:
        return _(
            "Variant %(name)s, %(metric)s: no difference as large as %(mde)s was found "
            "(the planned sample is reached)."
        ) % {"name": name, "metric": metric, "mde": percent(experiment.minimum_detectable_effect)}
    return _("Variant %(name)s, %(metric)s: not enough evidence yet.") % {
        "name": name,
        "metric": metric,
    }


def _round_needed(n: int) -> int:
    """Round "more recipients needed" to 2 significant digits (it is an estimate)."""
    if n < 100:
        return n
    magnitude = 10 ** (len(str(n)) - 2)
    return int(math.ceil(n / magnitude) * magnitude)


def holdout_sentence(comparison: Comparison) -> str:
    metric = metric_label(comparison.metric)
    code = st.VerdictCode(comparison.verdict)
    size, low, high = _effect_phrase(comparison)
    if code is st.VerdictCode.WINNER:
        return _(
            "The campaign increases %(metric)s by %(size)s compared with the holdout "
            "(95 %% CI %(low)s to %(high)s)."
        ) % {"metric": metric, "size": size, "low": low, "high": high}
    if code is st.VerdictCode.LOSER:
        return _(
            "The campaign decreases %(metric)s by %(size)s compared with the holdout "
            "(95 %% CI %(low)s to %(high)s)."
        ) % {"metric": metric, "size": size, "low": low, "high": high}
    return _("No significant difference in %(metric)s between the campaign and the holdout.") % {
        "metric": metric
    }


def headline_sentences(results: ExperimentResults) -> list[str]:
    if results.srm_alert:
        return [
            _(
                "Sample ratio mismatch (p = %(p)s): the split of recipients differs from the "
                "configured weights. Do not trust these results until the cause is found."
            )
            % {"p": p_value_text(results.srm_p_value)}
        ]
    if results.total_assigned == 0:
        return [_("No contact has been assigned to this experiment yet.")]
    return [c.sentence for c in results.primary_comparisons()] or [
        c.sentence for c in results.holdout_comparisons
    ]
