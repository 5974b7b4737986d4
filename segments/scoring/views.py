"""Staff pages of scoring (wired through the admin): model report, cohorts, cohort CSV."""

from __future__ import annotations

import csv
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import get_object_or_404, render
from django.utils.translation import gettext

from segments.scoring.charts import cohort_figures, model_figures
from segments.scoring.models import ScoringModel
from segments.scoring.selectors import COHORT_KINDS, COHORT_PAGE_MONTHS, cohort_table_as_of


def _require_view_permission(request: HttpRequest) -> None:
    if not request.user.has_perm("scoring.view_scoringmodel"):
        raise PermissionDenied


def _charts(figures: list[dict]) -> list[dict]:
    """The figures as ``cible/plotly_charts.html`` takes them (``scoring-chart-<n>``)."""
    return [{"id": f"scoring-chart-{i}", "figure": figure} for i, figure in enumerate(figures)]


def _cohort_args(params: QueryDict) -> tuple[str, int]:
    by = params.get("by", "signup")
    by = by if by in COHORT_KINDS else "signup"
    try:
        months = min(max(int(params.get("months", COHORT_PAGE_MONTHS)), 1), 120)
    except ValueError:
        months = COHORT_PAGE_MONTHS
    return by, months


def model_report(request: HttpRequest, model_id: int) -> HttpResponse:
    _require_view_permission(request)
    model = get_object_or_404(ScoringModel, pk=model_id)
    context = {
        **admin.site.each_context(request),
        "title": str(model),
        "model": model,
        "charts": _charts(model_figures(model)),
        "opts": ScoringModel._meta,
    }
    return render(request, "scoring/model_report.html", context)


def cohorts(request: HttpRequest) -> HttpResponse:
    """The cohort heatmaps (GET); POST recomputes the cached table and comes back (GET)."""
    _require_view_permission(request)
    if request.method == "POST":
        by, months = _cohort_args(request.POST)
        cohort_table_as_of(by=by, months=months, fresh=True)
        return HttpResponseRedirect(f"{request.path}?{urlencode({'by': by, 'months': months})}")
    by, months = _cohort_args(request.GET)
    table, computed_at = cohort_table_as_of(by=by, months=months)
    context = {
        **admin.site.each_context(request),
        "title": gettext("Cohorts"),
        "table": table,
        "computed_at": computed_at,
        "cache_minutes": settings.SCORING_COHORTS_CACHE_SECONDS / 60,
        "by": by,
        "months": months,
        "charts": _charts(cohort_figures(table)),
        "opts": ScoringModel._meta,
    }
    return render(request, "scoring/cohorts.html", context)


def cohorts_csv(request: HttpRequest) -> HttpResponse:
    """One line per (cohort, months since): size, buyers, retention, revenue, cumulative —
    the same (cached) table as the page."""
    _require_view_permission(request)
    by, months = _cohort_args(request.GET)
    table, _computed_at = cohort_table_as_of(by=by, months=months)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="cohorts-{by}.csv"'
    writer = csv.writer(response)
    writer.writerow(
        [
            "cohort",
            "by",
            "contacts",
            "months_since",
            "buyers",
            "retention",
            "revenue_per_contact",
            "cumulative_value_per_contact",
        ]
    )
    for i, cohort in enumerate(table.cohorts):
        for k in table.months_since:
            if table.buyers[i][k] is None:
                continue
            writer.writerow(
                [
                    cohort,
                    by,
                    table.sizes[i],
                    k,
                    table.buyers[i][k],
                    f"{table.retention[i][k]:.6f}",
                    f"{table.revenue_per_contact[i][k]:.2f}",
                    f"{table.cumulative_value[i][k]:.2f}",
                ]
            )
    return response
