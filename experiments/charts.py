"""Chart figures of the results page, as plotly figure dicts (JSON), drawn in the browser by the
plotly.min.js served from the installed plotly package (``views.plotly_js``; no CDN)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils.translation import gettext as _

from experiments.models import Experiment, Metric, Variant
from experiments.selectors import VariantAggregate
from experiments.wording import is_finite, metric_heading, metric_label

if TYPE_CHECKING:
    from experiments.results import ExperimentResults

#: Metrics a holdout (who receives nothing) can be measured on.
HOLDOUT_METRICS = (Metric.CONVERSION, Metric.REVENUE)


def cumulative_chart(
    experiment: Experiment, variants: list[Variant], aggregates: dict[int, VariantAggregate]
) -> dict:
    """Cumulative primary metric per arm and day: events so far / contacts assigned so far."""
    days = sorted({d for a in aggregates.values() for d in (*a.assigned_by_day, *a.primary_by_day)})
    revenue = experiment.primary_metric == Metric.REVENUE
    traces = []
    for variant in variants:
        if variant.is_holdout and experiment.primary_metric not in HOLDOUT_METRICS:
            continue
        agg = aggregates[variant.pk]
        assigned = events = 0.0
        ys = []
        for day in days:
            assigned += agg.assigned_by_day.get(day, 0)
            events += (agg.revenue_by_day if revenue else agg.primary_by_day).get(day, 0)
            ys.append(round(events / assigned, 6) if assigned else None)
        traces.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": f"{variant.key} — {variant.name}",
                "x": [d.isoformat() for d in days],
                "y": ys,
            }
        )
    return {
        "data": traces,
        "layout": {
            "title": {
                "text": _("Cumulative %(metric)s")
                % {"metric": metric_label(experiment.primary_metric)}
            },
            "yaxis": {"tickformat": ".2f" if revenue else ".1%", "rangemode": "tozero"},
            "xaxis": {"type": "date", "dtick": 86_400_000, "tickformat": "%Y-%m-%d"},
            "margin": {"l": 60, "r": 20, "t": 50, "b": 40},
            "height": 320,
        },
    }


def forest_chart(results: ExperimentResults) -> dict:
    """Relative lift of each treatment versus control with its CI, per metric."""
    labels, lifts, lows, highs = [], [], [], []
    for c in results.comparisons:
        if not is_finite(c.rel_lift):
            continue
        labels.append(f"{c.variant_key} · {metric_heading(c.metric)}")
        lifts.append(round(c.rel_lift, 6))
        low = c.rel_ci[0] if is_finite(c.rel_ci[0]) else c.rel_lift
        high = c.rel_ci[1] if is_finite(c.rel_ci[1]) else c.rel_lift
        lows.append(round(c.rel_lift - low, 6))
        highs.append(round(high - c.rel_lift, 6))
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "markers",
                "x": lifts,
                "y": labels,
                "error_x": {"type": "data", "symmetric": False, "array": highs, "arrayminus": lows},
                "name": _("Relative lift (95 % CI)"),
            }
        ],
        "layout": {
            "title": {"text": _("Lift versus control (confidence intervals at 95 %)")},
            "xaxis": {"tickformat": ".0%", "zeroline": True, "zerolinewidth": 2},
            "yaxis": {"automargin": True},
            "shapes": [
                {
                    "type": "line",
                    "x0": 0,
                    "x1": 0,
                    "yref": "paper",
                    "y0": 0,
                    "y1": 1,
                    "line": {"dash": "dot"},
                }
            ],
            "margin": {"l": 160, "r": 20, "t": 50, "b": 40},
            "height": max(220, 60 * len(labels) + 100),
        },
    }
