"""Plotly figure dictionaries (JSON-serialisable) for the model and cohort pages."""

from __future__ import annotations

from django.utils import formats
from django.utils.translation import gettext

from segments.scoring.models import ModelKind, ScoringModel
from segments.scoring.selectors import CohortTable


def _layout(title: str, **extra) -> dict:
    """Axes take the margin their labels need (automargin): long category labels such as
    "2026-01 (1,234)" are drawn whole instead of clipped on the left."""
    layout = {"title": {"text": title}, "margin": {"t": 50, "l": 60, "r": 20, "b": 50}, **extra}
    for axis in ("xaxis", "yaxis"):
        layout[axis] = {"automargin": True, **layout.get(axis, {})}
    return layout


def model_figures(model: ScoringModel) -> list[dict]:
    """The charts of a model page, in display order."""
    report = model.report or {}
    figures: list[dict] = []
    if model.kind == ModelKind.CLV:
        holdout = report.get("holdout")
        if holdout:
            figures.append(
                {
                    "data": [
                        {
                            "type": "bar",
                            "name": gettext("actual"),
                            "x": holdout["groups"],
                            "y": holdout["actual"],
                        },
                        {
                            "type": "bar",
                            "name": gettext("predicted"),
                            "x": holdout["groups"],
                            "y": holdout["predicted"],
                        },
                    ],
                    "layout": _layout(
                        gettext(
                            "Repeat purchases after the calibration end (%(days).0f days), by "
                            "purchases before it"
                        )
                        % {"days": holdout["holdout_days"]},
                        xaxis={"title": {"text": gettext("repeat purchases in calibration")}},
                        yaxis={"title": {"text": gettext("mean purchases per customer")}},
                    ),
                }
            )
        for key, title in (
            ("clv_distribution", gettext("Distribution of predicted CLV")),
            ("p_alive_distribution", gettext("Distribution of the probability alive")),
        ):
            figures.append(_histogram(report.get(key) or {}, title))
    else:
        calibration = report.get("calibration") or {}
        figures.append(
            {
                "data": [
                    {
                        "type": "scatter",
                        "mode": "lines+markers",
                        "name": gettext("model"),
                        "x": calibration.get("predicted", []),
                        "y": calibration.get("observed", []),
                    },
                    {
                        "type": "scatter",
                        "mode": "lines",
                        "name": gettext("perfect calibration"),
                        "x": [0, 1],
                        "y": [0, 1],
                        "line": {"dash": "dot"},
                    },
                ],
                "layout": _layout(
                    gettext("Calibration on the held-out period"),
                    xaxis={"title": {"text": gettext("predicted probability")}, "range": [0, 1]},
                    yaxis={"title": {"text": gettext("observed share")}, "range": [0, 1]},
                ),
            }
        )
        importances = list(reversed(report.get("importances") or []))
        figures.append(
            {
                "data": [
                    {
                        "type": "bar",
                        "orientation": "h",
                        "x": [i["mean"] for i in importances],
                        "y": [i["feature"] for i in importances],
                        "error_x": {"type": "data", "array": [i["std"] for i in importances]},
                    },
                ],
                "layout": _layout(
                    gettext("Permutation importance (drop in held-out AUC)"),
                    margin={"l": 200, "t": 50, "r": 20, "b": 50},
                ),
            }
        )
        figures.append(
            _histogram(report.get("score_distribution") or {}, gettext("Score distribution"))
        )
    return figures


def _histogram(distribution: dict, title: str) -> dict:
    edges = distribution.get("edges") or []
    labels = [f"{lo:,.2f}–{hi:,.2f}" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    return {
        "data": [{"type": "bar", "x": labels, "y": distribution.get("counts", [])}],
        "layout": _layout(title, yaxis={"title": {"text": gettext("contacts")}}),
    }


def cohort_figures(table: CohortTable) -> list[dict]:
    """Three heatmaps: retention, revenue per contact, cumulative value per contact.

    The left margin is sized here for the longest cohort label ("2026-01 (12,345)") instead of
    by plotly's automargin, which draws a heatmap twice (once to measure its labels): with a
    label in each of the cohorts × months cells, that second pass was half the drawing time."""
    labels = [
        f"{c} ({formats.number_format(n, force_grouping=True)})"
        for c, n in zip(table.cohorts, table.sizes, strict=True)
    ]
    left = 20 + 8 * max((len(label) for label in labels), default=0)
    figures = []
    for matrix, title, fmt in (
        (table.retention, gettext("Retention: share of the cohort buying"), ".0%"),
        (table.revenue_per_contact, gettext("Revenue per contact"), ",.2f"),
        (table.cumulative_value, gettext("Cumulative value per contact"), ",.2f"),
    ):
        figures.append(
            {
                "data": [
                    {
                        "type": "heatmap",
                        "z": matrix,
                        "x": table.months_since,
                        "y": labels,
                        "colorscale": "Blues",
                        "hoverongaps": False,
                        "texttemplate": "%{z:" + fmt + "}",
                    }
                ],
                "layout": _layout(
                    title,
                    xaxis={
                        "title": {"text": gettext("months since acquisition")},
                        "dtick": 1,
                        "automargin": False,
                    },
                    yaxis={"autorange": "reversed", "type": "category", "automargin": False},
                    margin={"t": 50, "l": left, "r": 20, "b": 60},
                    height=max(300, 28 * len(table.cohorts) + 120),
                ),
            }
        )
    return figures
