"""Staff pages of scoring (wired through the admin): model report, cohorts, cohort CSV."""

from __future__ import annotations

import csv

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils.translation import gettext

from segments.scoring.charts import cohort_figures, model_figures
from segments.scoring.models import ScoringModel
from segments.scoring.selectors import cohort_table

COHORT_KINDS = ("signup", "first_purchase")


def _require_view_permission(request: HttpRequest) -> None:
    if not request.user.has_perm("scoring.view_scoringmodel"):
        raise PermissionDenied


def _cohort_args(request: HttpRequest) -> tuple[str, int]:
    by = request.GET.get("by", "signup")
    by = by if by in COHORT_KINDS else "signup"
    try:
        months = min(max(int(request.GET.get("months", 24)), 1), 120)
    except ValueError:
        months = 24
    return by, months


def model_report(request: HttpRequest, model_id: int) -> HttpResponse:
    _require_view_permission(request)
    model = get_object_or_404(ScoringModel, pk=model_id)
    context = {
        **admin.site.each_context(request),
        "title": str(model),
        "model": model,
        "figures": model_figures(model),
        "opts": ScoringModel._meta,
    }
    return render(request, "scoring/model_report.html", context)


def cohorts(request: HttpRequest) -> HttpResponse:
    _require_view_permission(request)
    by, months = _cohort_args(request)
    table = cohort_table(by=by, months=months)
    context = {
        **admin.site.each_context(request),
        "title": gettext("Cohorts"),
        "table": table,
        "by": by,
        "months": months,
        "figures": cohort_figures(table),
        "opts": ScoringModel._meta,
    }
    return render(request, "scoring/cohorts.html", context)


def cohorts_csv(request: HttpRequest) -> HttpResponse:
    """One line per (cohort, months since): size, buyers, retention, revenue, cumulative."""
    _require_view_permission(request)
    by, months = _cohort_args(request)
    table = cohort_table(by=by, months=months)
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
