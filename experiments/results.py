"""The results of an experiment: aggregates (selectors) + statistics (statistics.py) + verdicts.

:func:`experiment_results` returns an :class:`ExperimentResults`; the HTML page, the JSON API,
the CSV export and the auto-winner all read the same object, so they show the same numbers.

Definitions (docs/experiments.md explains them to marketers, docs/experiments_methods.md to
analysts):

- Denominator of every rate: contacts *assigned* to the variant (intention to treat).
- Comparisons: each treatment versus the control, on the primary metric and the guardrails
  (unsubscribes, complaints). Holm's correction runs over that whole family.
- Sequential mode: the primary rate is tested with the mSPRT over daily looks (always-valid
  p-value, confidence sequence); guardrail rates with the mSPRT at the current look. Revenue is
  always fixed-horizon (Welch).
- Holdout: compared with the control on conversions / revenue as "lift of the campaign itself",
  outside the Holm family (a different question).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import date, datetime

from django.utils import timezone
from django.utils.translation import gettext as _
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_confint

from experiments import statistics as st
from experiments.charts import HOLDOUT_METRICS, cumulative_chart, forest_chart
from experiments.models import (
    LOWER_IS_BETTER,
    Experiment,
    ExperimentKind,
    Metric,
    Variant,
)
from experiments.selectors import VariantAggregate, experiment_aggregates
from experiments.wording import (
    headline_sentences,
    holdout_sentence,
    is_finite,
    metric_label,
    verdict_sentence,
)

RATE_METRICS = (Metric.OPEN, Metric.CLICK, Metric.CONVERSION, Metric.UNSUBSCRIBE, Metric.COMPLAINT)

NAN = float("nan")


# --------------------------------------------------------------------------------------------
# Result objects
# --------------------------------------------------------------------------------------------


@dataclass
class MetricValue:
    """One metric of one arm: a rate (count / n, Wilson CI) or a mean (revenue, t CI)."""

    metric: str
    n: int
    count: int | None
    value: float
    ci: tuple[float, float]
    variance: float | None = None


@dataclass
class ArmResult:
    key: str
    name: str
    is_control: bool
    is_holdout: bool
    weight: int
    assigned: int
    targeted: int
    delivered: int | None
    metrics: dict[str, MetricValue]


@dataclass
class Comparison:
    """A treatment (or the campaign versus its holdout) against the control, on one metric."""

    variant_key: str
    variant_name: str
    metric: str
    control_value: float
    treatment_value: float
    abs_diff: float
    abs_ci: tuple[float, float]
    rel_lift: float
    rel_ci: tuple[float, float]
    p_value: float
    p_value_adjusted: float
    sequential_p_value: float | None
    sequential_ci: tuple[float, float] | None
    decision_p_value: float
    prob_beat_control: float | None
    expected_loss: float | None
    higher_is_better: bool
    verdict: str
    additional_sample_needed: int | None
    is_primary: bool
    sentence: str = ""


@dataclass
class Recommendation:
    variant_key: str | None
    reason: str
    blocked_by_guardrail: bool = False


@dataclass
class ExperimentResults:
    experiment_id: int
    name: str
    kind: str
    status: str
    primary_metric: str
    guardrail_metrics: list[str]
    alpha: float
    power: float
    minimum_detectable_effect: float
    sequential: bool
    conversion_window_days: int
    arms: list[ArmResult]
    comparisons: list[Comparison]
    holdout_comparisons: list[Comparison]
    srm_p_value: float
    srm_alert: bool
    omnibus_p_value: float | None
    total_assigned: int
    headline: list[str]
    chart_cumulative: dict
    chart_forest: dict
    generated_at: datetime
    notes: list[str] = field(default_factory=list)

    # ---- reads for the auto-winner and the decision log ------------------------------------

    def primary_comparisons(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.is_primary]

    def auto_winner_recommendation(self) -> Recommendation:
        """The treatment to send to the remainder, or None with the reason (translated)."""
        if self.srm_alert:
            return Recommendation(
                None, _("Sample ratio mismatch: the results cannot be trusted, no winner.")
            )
        winners = [c for c in self.primary_comparisons() if c.verdict == st.VerdictCode.WINNER]
        if not winners:
            return Recommendation(
                None,
                _("No variant is significantly better than the control on %(metric)s.")
                % {"metric": metric_label(self.primary_metric)},
            )
        harmed_by = {
            c.variant_key: c
            for c in self.comparisons
            if not c.is_primary and c.verdict == st.VerdictCode.LOSER
        }
        best = max(winners, key=lambda c: c.rel_lift if is_finite(c.rel_lift) else c.abs_diff)
        safe = [c for c in winners if c.variant_key not in harmed_by]
        if not safe:
            guard = harmed_by[best.variant_key]
            return Recommendation(
                None,
                _("Variant %(key)s wins on %(metric)s but harms %(guardrail)s; not sent.")
                % {
                    "key": best.variant_key,
                    "metric": metric_label(self.primary_metric),
                    "guardrail": metric_label(guard.metric),
                },
                blocked_by_guardrail=True,
            )
        best = max(safe, key=lambda c: c.rel_lift if is_finite(c.rel_lift) else c.abs_diff)
        return Recommendation(best.variant_key, best.sentence)

    def decision_numbers(self) -> dict:
        """The numbers a decision rests on, JSON-ready (stored in DecisionLog.numbers)."""
        data = self.as_dict()
        return {
            "primary_metric": data["primary_metric"],
            "alpha": data["alpha"],
            "sequential": data["sequential"],
            "srm_p_value": data["srm_p_value"],
            "srm_alert": data["srm_alert"],
            "arms": [
                {k: arm[k] for k in ("key", "assigned", "delivered", "metrics")}
                for arm in data["arms"]
            ],
            "comparisons": data["comparisons"],
            "generated_at": data["generated_at"],
        }

    def as_dict(self) -> dict:
        """JSON-ready: nan and infinities become None, dates ISO strings."""
        return _clean(asdict(self))


def _clean(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


# --------------------------------------------------------------------------------------------
# Building the results
# --------------------------------------------------------------------------------------------


def _rate_value(metric: str, n: int, count: int) -> MetricValue:
    if n == 0:
        return MetricValue(metric=metric, n=0, count=count, value=NAN, ci=(NAN, NAN))
    low, high = proportion_confint(count, n, alpha=0.05, method="wilson")
    return MetricValue(
        metric=metric, n=n, count=count, value=count / n, ci=(float(low), float(high))
    )


def revenue_summary(agg: VariantAggregate) -> st.MeanSummary:
    """Per-recipient revenue (zeros included) from the SQL sum and sum of squares."""
    n = agg.assigned
    if n == 0:
        return st.MeanSummary(n=0, mean=NAN, variance=NAN)
    mean = agg.revenue_sum / n
    variance = max(agg.revenue_sum_squares - n * mean * mean, 0.0) / (n - 1) if n > 1 else NAN
    return st.MeanSummary(n=n, mean=mean, variance=variance)


def _revenue_value(agg: VariantAggregate, alpha: float = 0.05) -> MetricValue:
    s = revenue_summary(agg)
    if s.n < 2 or not is_finite(s.variance):
        return MetricValue(Metric.REVENUE, s.n, None, s.mean, (NAN, NAN), s.variance)
    from scipy import stats as sps

    half = float(sps.t.isf(alpha / 2, s.n - 1)) * math.sqrt(s.variance / s.n)
    return MetricValue(
        Metric.REVENUE, s.n, None, s.mean, (s.mean - half, s.mean + half), s.variance
    )


def _arm_metrics(agg: VariantAggregate, variant: Variant) -> dict[str, MetricValue]:
    out: dict[str, MetricValue] = {}
    for metric in RATE_METRICS:
        if variant.is_holdout and metric not in HOLDOUT_METRICS:
            continue
        out[metric.value] = _rate_value(metric.value, agg.assigned, agg.count(metric))
    out[Metric.REVENUE.value] = _revenue_value(agg)
    return out


def _revenue_additional_sample(
    control: st.MeanSummary, treatment: st.MeanSummary, experiment: Experiment, comparisons: int
) -> int | None:
    if control.n < 2 or not (is_finite(control.mean) and control.mean > 0):
        return None
    variances = [v for v in (control.variance, treatment.variance) if is_finite(v)]
    if not variances or max(variances) <= 0:
        return None
    sd = math.sqrt(sum(variances) / len(variances))
    effect = experiment.minimum_detectable_effect * control.mean / sd
    n = NormalIndPower().solve_power(
        effect_size=effect,
        alpha=experiment.alpha / comparisons,
        power=experiment.power,
        ratio=1.0,
        alternative="two-sided",
    )
    return max(0, math.ceil(float(n)) - min(control.n, treatment.n))


def _daily_looks(control: VariantAggregate, treatment: VariantAggregate) -> list:
    days = sorted(
        set(control.assigned_by_day)
        | set(treatment.assigned_by_day)
        | set(control.primary_by_day)
        | set(treatment.primary_by_day)
    )
    looks, totals = [], [0, 0, 0, 0]
    for day in days:
        totals[0] += control.assigned_by_day.get(day, 0)
        totals[1] += control.primary_by_day.get(day, 0)
        totals[2] += treatment.assigned_by_day.get(day, 0)
        totals[3] += treatment.primary_by_day.get(day, 0)
        looks.append(
            ((totals[0], min(totals[1], totals[0])), (totals[2], min(totals[3], totals[2])))
        )
    return looks


def _compare(
    *,
    experiment: Experiment,
    metric: str,
    control: VariantAggregate,
    treatment: VariantAggregate,
    variant: Variant,
    is_primary: bool,
    sequential_history: bool,
) -> Comparison:
    alpha = experiment.alpha
    higher_is_better = metric not in LOWER_IS_BETTER
    seq_p = seq_ci = None
    if metric == Metric.REVENUE:
        c, t = revenue_summary(control), revenue_summary(treatment)
        cmp_ = st.compare_means(c, t, alpha=alpha)
        control_value, treatment_value = cmp_.control_mean, cmp_.treatment_mean
        prob = loss = None
    else:
        c_pair = (control.assigned, control.count(metric))
        t_pair = (treatment.assigned, treatment.count(metric))
        cmp_ = st.compare_proportions(c_pair, t_pair, alpha=alpha)
        control_value, treatment_value = cmp_.control_rate, cmp_.treatment_rate
        prob, loss = cmp_.prob_beat_control, cmp_.expected_loss
        if not higher_is_better:
            # Guardrails: "beating" the control means a *lower* rate; the loss of choosing the
            # treatment is the rate it adds, E[max(p_t - p_c, 0)].
            swapped = st.compare_proportions(t_pair, c_pair, alpha=alpha)
            prob, loss = swapped.prob_beat_control, swapped.expected_loss
        if experiment.sequential:
            if sequential_history:
                looks = _daily_looks(control, treatment) or [(c_pair, t_pair)]
                seq = st.sequential_proportions_history(
                    looks, alpha=alpha, tau2=experiment.msprt_tau2
                )
            else:
                seq = st.sequential_proportions(
                    c_pair, t_pair, alpha=alpha, tau2=experiment.msprt_tau2
                )
            seq_p, seq_ci = seq.p_value, seq.ci
    return Comparison(
        variant_key=variant.key,
        variant_name=variant.name,
        metric=metric,
        control_value=control_value,
        treatment_value=treatment_value,
        abs_diff=cmp_.abs_diff,
        abs_ci=tuple(cmp_.abs_ci),
        rel_lift=cmp_.rel_lift,
        rel_ci=tuple(cmp_.rel_ci),
        p_value=cmp_.p_value,
        p_value_adjusted=NAN,
        sequential_p_value=seq_p,
        sequential_ci=tuple(seq_ci) if seq_ci is not None else None,
        decision_p_value=seq_p if seq_p is not None else cmp_.p_value,
        prob_beat_control=prob,
        expected_loss=loss,
        higher_is_better=higher_is_better,
        verdict=st.VerdictCode.INCONCLUSIVE.value,
        additional_sample_needed=None,
        is_primary=is_primary,
    )


def experiment_results(
    *,
    experiment: Experiment,
    now: datetime | None = None,
    refresh: bool = True,
    aggregates: dict[int, VariantAggregate] | None = None,
) -> ExperimentResults:
    """Compute everything the results page shows from one grouped scan of the assignments.

    With ``refresh`` (default) the outcomes of contacts with events newer than the experiment's
    watermark are recomputed first (``outcomes_refresh``, incremental, cheap when nothing new
    arrived), so the numbers include every event stored so far. ``aggregates``: the scan's
    result counted earlier (``experiment_aggregates``; the dashboard keeps them counted by
    beat), used unless it lacks one of the variants.
    """
    from experiments.outcomes import outcomes_refresh

    now = now or timezone.now()
    if refresh:
        outcomes_refresh(experiment=experiment, now=now)
    variants = list(experiment.variants.order_by("position", "pk"))
    if aggregates is None or any(v.pk not in aggregates for v in variants):
        aggregates = experiment_aggregates(experiment=experiment)
    control = next((v for v in variants if v.is_control), None)
    holdout = next((v for v in variants if v.is_holdout), None)
    treatments = [v for v in variants if not v.is_control and not v.is_holdout]
    metrics = [experiment.primary_metric, *experiment.guardrail_metrics]
    if experiment.kind == ExperimentKind.TARGETING:
        # Untargeted contacts receive no message: only outcome metrics make sense.
        metrics = [m for m in metrics if m not in (Metric.UNSUBSCRIBE, Metric.COMPLAINT)] or [
            experiment.primary_metric
        ]

    arms = [
        ArmResult(
            key=v.key,
            name=v.name,
            is_control=v.is_control,
            is_holdout=v.is_holdout,
            weight=v.weight,
            assigned=aggregates[v.pk].assigned,
            targeted=aggregates[v.pk].targeted,
            delivered=aggregates[v.pk].delivered,
            metrics=_arm_metrics(aggregates[v.pk], v),
        )
        for v in variants
    ]
    counts = [aggregates[v.pk].assigned for v in variants]
    srm = st.srm_p_value(counts, [v.weight for v in variants]) if len(variants) >= 2 else NAN
    srm_alert = is_finite(srm) and srm < st.SRM_ALERT_P

    comparisons: list[Comparison] = []
    if control is not None:
        for variant in treatments:
            for metric in metrics:
                comparisons.append(
                    _compare(
                        experiment=experiment,
                        metric=metric,
                        control=aggregates[control.pk],
                        treatment=aggregates[variant.pk],
                        variant=variant,
                        is_primary=metric == experiment.primary_metric,
                        sequential_history=metric == experiment.primary_metric,
                    )
                )
    adjusted = st.holm([c.decision_p_value for c in comparisons]) if comparisons else []
    k = max(len(treatments), 1)
    for comparison, p_adj in zip(comparisons, adjusted, strict=True):
        comparison.p_value_adjusted = p_adj
        needed = None
        if comparison.is_primary and control is not None:
            c_agg = aggregates[control.pk]
            t_agg = aggregates[next(v.pk for v in treatments if v.key == comparison.variant_key)]
            if comparison.metric == Metric.REVENUE:
                needed = _revenue_additional_sample(
                    revenue_summary(c_agg), revenue_summary(t_agg), experiment, k
                )
            else:
                needed = st.additional_sample_needed(
                    (c_agg.assigned, c_agg.count(comparison.metric)),
                    (t_agg.assigned, t_agg.count(comparison.metric)),
                    experiment.minimum_detectable_effect,
                    experiment.alpha,
                    experiment.power,
                    comparisons=k,
                )
        v = st.verdict(
            effect=comparison.abs_diff,
            adjusted_p_value=p_adj,
            alpha=experiment.alpha,
            srm_p_value=srm if is_finite(srm) else None,
            additional_sample_needed=needed,
            higher_is_better=comparison.higher_is_better,
        )
        comparison.verdict = v.code.value
        comparison.additional_sample_needed = v.additional_sample_needed
        comparison.sentence = verdict_sentence(comparison, experiment=experiment)

    holdout_comparisons: list[Comparison] = []
    if holdout is not None and control is not None:
        for metric in HOLDOUT_METRICS:
            comparison = _compare(
                experiment=experiment,
                metric=metric,
                control=aggregates[holdout.pk],
                treatment=aggregates[control.pk],
                variant=control,
                is_primary=False,
                sequential_history=False,
            )
            comparison.p_value_adjusted = comparison.decision_p_value
            v = st.verdict(
                effect=comparison.abs_diff,
                adjusted_p_value=comparison.decision_p_value,
                alpha=experiment.alpha,
                srm_p_value=srm if is_finite(srm) else None,
            )
            comparison.verdict = v.code.value
            comparison.sentence = holdout_sentence(comparison)
            holdout_comparisons.append(comparison)

    omnibus = None
    sent_arms = [v for v in variants if not v.is_holdout]
    if experiment.primary_metric != Metric.REVENUE and len(sent_arms) >= 3:
        omnibus = st.compare_proportions_omnibus(
            [
                (aggregates[v.pk].assigned, aggregates[v.pk].count(experiment.primary_metric))
                for v in sent_arms
            ]
        ).p_value

    notes = []
    if experiment.sequential and experiment.primary_metric == Metric.REVENUE:
        notes.append(
            _("Sequential mode covers rates; revenue is tested at a fixed horizon (Welch).")
        )
    if experiment.kind == ExperimentKind.TARGETING:
        notes.append(
            _(
                "Targeting experiment: every contact of the combined audiences is counted in the "
                "arm it was drawn into, whether or not that arm's targeting sent it a message "
                "(intention to treat)."
            )
        )

    results = ExperimentResults(
        experiment_id=experiment.pk,
        name=experiment.name,
        kind=experiment.kind,
        status=experiment.status,
        primary_metric=experiment.primary_metric,
        guardrail_metrics=[m for m in metrics if m != experiment.primary_metric],
        alpha=experiment.alpha,
        power=experiment.power,
        minimum_detectable_effect=experiment.minimum_detectable_effect,
        sequential=experiment.sequential,
        conversion_window_days=experiment.conversion_window_days,
        arms=arms,
        comparisons=comparisons,
        holdout_comparisons=holdout_comparisons,
        srm_p_value=srm,
        srm_alert=bool(srm_alert),
        omnibus_p_value=omnibus,
        total_assigned=sum(counts),
        headline=[],
        chart_cumulative=cumulative_chart(experiment, variants, aggregates),
        chart_forest={},
        generated_at=now,
        notes=notes,
    )
    results.headline = headline_sentences(results)
    results.chart_forest = forest_chart(results)
    return results
