"""Results page, CSV export and sample-size calculator (plotly.min.js is a local static file)."""

from __future__ import annotations

import csv

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from experiments.forms import SamplePlanForm
from experiments.models import Experiment
from experiments.planning import plan_sample
from experiments.results import experiment_results
from experiments.wording import metric_heading, metric_label, number, p_value_text, percent

LOGIN_URL = "admin:login"


def _require_view_permission(request: HttpRequest) -> None:
    if not request.user.has_perm("experiments.view_experiment"):
        raise PermissionDenied(_("You may not view experiments."))


@require_GET
@login_required(login_url=LOGIN_URL)
def results_page(request: HttpRequest, pk: int) -> HttpResponse:
    _require_view_permission(request)
    experiment = get_object_or_404(Experiment, pk=pk)
    results = experiment_results(experiment=experiment)
    rows = []
    metric_columns = [m for m in ("open", "click", "conversion", "unsubscribe", "complaint")]
    for arm in results.arms:
        cells = []
        for metric in metric_columns:
            value = arm.metrics.get(metric)
            cells.append(
                {
                    "rate": percent(value.value, 2) if value else "—",
                    "count": number(value.count) if value else "",
                    "ci": f"{percent(value.ci[0], 2)} – {percent(value.ci[1], 2)}" if value else "",
                }
            )
        revenue = arm.metrics["revenue"]
        rows.append(
            {
                "arm": arm,
                "assigned": number(arm.assigned),
                "delivered": number(arm.delivered) if arm.delivered is not None else "—",
                "cells": cells,
                "revenue": number(revenue.value, 2),
                "revenue_ci": f"{number(revenue.ci[0], 2)} – {number(revenue.ci[1], 2)}",
            }
        )
    comparisons = [_comparison_row(c) for c in results.comparisons]
    holdout = [_comparison_row(c) for c in results.holdout_comparisons]
    context = {
        "experiment": experiment,
        "results": results,
        "metric_headers": [metric_heading(m) for m in metric_columns],
        "rows": rows,
        "comparisons": comparisons,
        "holdout_rows": holdout,
        "srm_p": p_value_text(results.srm_p_value),
        "omnibus_p": p_value_text(results.omnibus_p_value),
        "primary_label": metric_label(results.primary_metric),
        "chart_cumulative": results.chart_cumulative,
        "chart_forest": results.chart_forest,
        "decisions": experiment.decisions.all()[:20],
    }
    return render(request, "experiments/results.html", context)


def _comparison_row(c) -> dict:
    revenue = c.metric == "revenue"
    value = (lambda v: number(v, 2)) if revenue else (lambda v: percent(v, 2))
    diff = (lambda v: number(v, 2)) if revenue else (lambda v: _points(v))
    return {
        "c": c,
        "metric": metric_heading(c.metric),
        "control": value(c.control_value),
        "treatment": value(c.treatment_value),
        "abs_diff": diff(c.abs_diff),
        "abs_ci": f"{diff(c.abs_ci[0])} – {diff(c.abs_ci[1])}",
        "rel_lift": percent(c.rel_lift, 1),
        "rel_ci": f"{percent(c.rel_ci[0], 1)} – {percent(c.rel_ci[1], 1)}",
        "p": p_value_text(c.p_value),
        "p_adj": p_value_text(c.p_value_adjusted),
        "seq_p": p_value_text(c.sequential_p_value) if c.sequential_p_value is not None else "",
        "seq_ci": (
            f"{diff(c.sequential_ci[0])} – {diff(c.sequential_ci[1])}" if c.sequential_ci else ""
        ),
        "prob": percent(c.prob_beat_control, 1) if c.prob_beat_control is not None else "—",
        "loss": _points(c.expected_loss) if c.expected_loss is not None else "—",
    }


def _points(value: float | None) -> str:
    """A difference of rates in percentage points."""
    if value is None:
        return "—"
    text = number(value * 100, 2)
    return text if text == "—" else _("%(n)s pts") % {"n": text}


@require_GET
@login_required(login_url=LOGIN_URL)
def results_csv(request: HttpRequest, pk: int) -> HttpResponse:
    """Per arm and metric: counts, rates, CIs, and the comparison with the control."""
    _require_view_permission(request)
    experiment = get_object_or_404(Experiment, pk=pk)
    results = experiment_results(experiment=experiment)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="experiment-{experiment.pk}.csv"'
    writer = csv.writer(response)
    writer.writerow(
        [
            "variant",
            "is_control",
            "is_holdout",
            "assigned",
            "delivered",
            "metric",
            "count",
            "value",
            "ci_low",
            "ci_high",
            "abs_diff",
            "abs_ci_low",
            "abs_ci_high",
            "rel_lift",
            "rel_ci_low",
            "rel_ci_high",
            "p_value",
            "p_value_adjusted",
            "sequential_p_value",
            "prob_beat_control",
            "verdict",
        ]
    )
    by_key = {(c.variant_key, c.metric): c for c in results.comparisons}
    data = results.as_dict()
    for arm in data["arms"]:
        for metric, value in arm["metrics"].items():
            c = by_key.get((arm["key"], metric))
            cd = results.as_dict()["comparisons"][results.comparisons.index(c)] if c else {}
            writer.writerow(
                [
                    arm["key"],
                    arm["is_control"],
                    arm["is_holdout"],
                    arm["assigned"],
                    "" if arm["delivered"] is None else arm["delivered"],
                    metric,
                    "" if value["count"] is None else value["count"],
                    _csv(value["value"]),
                    _csv(value["ci"][0]),
                    _csv(value["ci"][1]),
                    _csv(cd.get("abs_diff")),
                    _csv((cd.get("abs_ci") or [None, None])[0]),
                    _csv((cd.get("abs_ci") or [None, None])[1]),
                    _csv(cd.get("rel_lift")),
                    _csv((cd.get("rel_ci") or [None, None])[0]),
                    _csv((cd.get("rel_ci") or [None, None])[1]),
                    _csv(cd.get("p_value")),
                    _csv(cd.get("p_value_adjusted")),
                    _csv(cd.get("sequential_p_value")),
                    _csv(cd.get("prob_beat_control")),
                    cd.get("verdict", ""),
                ]
            )
    return response


def _csv(value) -> str:
    return "" if value is None else repr(float(value))


@require_GET
@login_required(login_url=LOGIN_URL)
def sample_plan_page(request: HttpRequest) -> HttpResponse:
    """Before launch: contacts per variant for a baseline rate, MDE, alpha and power."""
    _require_view_permission(request)
    form = SamplePlanForm(request.GET or None)
    plan = warning = None
    if form.is_valid():
        data = form.cleaned_data
        try:
            plan = plan_sample(
                baseline_rate=data["baseline_rate"] / 100,
                relative_mde=data["relative_mde"] / 100,
                alpha=data["alpha"],
                power=data["power"] / 100,
                treatments=data["variants"] - 1,
                sample_share=data["sample_share"] / 100,
            )
        except ValueError as exc:
            form.add_error(None, str(exc))
        else:
            audience = data.get("audience")
            if audience is not None and audience < plan.audience_needed:
                warning = _(
                    "The audience (%(audience)s contacts) is too small for this minimum "
                    "detectable effect: about %(needed)s contacts are needed."
                ) % {"audience": number(audience), "needed": number(plan.audience_needed)}
    context = {
        "form": form,
        "plan": plan,
        "per_variant": number(plan.per_variant) if plan else "",
        "total": number(plan.total_in_test) if plan else "",
        "audience_needed": number(plan.audience_needed) if plan else "",
        "warning": warning,
    }
    return render(request, "experiments/plan.html", context)
