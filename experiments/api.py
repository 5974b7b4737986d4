"""JSON results: ``GET /api/v1/experiments/<id>/results`` (scope ``experiments:read``)."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from experiments.models import Experiment
from experiments.results import experiment_results


class ExperimentResultsApi(APIView):
    """Same numbers as the results page; undefined statistics are ``null``."""

    required_scope = "experiments:read"

    @extend_schema(
        responses={200: OpenApiTypes.OBJECT},
        description=(
            "Per-variant counts and rates with 95 % CIs, comparisons with the control (absolute "
            "and relative differences with CIs, raw and Holm-adjusted p-values, sequential "
            "p-values when enabled, probability to beat control, expected loss, verdict and "
            "sentence), SRM p-value and alert, chart data. See docs/experiments.md."
        ),
    )
    def get(self, request: Request, pk: int) -> Response:
        experiment = get_object_or_404(Experiment, pk=pk)
        return Response(experiment_results(experiment=experiment).as_dict())
