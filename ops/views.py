from django.http import HttpRequest, JsonResponse
from django.shortcuts import render
from django.utils import timezone

from ops.health import readiness_report


def health(request: HttpRequest) -> JsonResponse:
    """Liveness: the web process answers. Touches nothing else (a database or broker outage
    must not get healthy web processes restarted); readiness is ``/readyz``."""
    return JsonResponse({"status": "ok"})


def ready(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 when every dependency answers and nothing is stalled, else 503 — JSON
    either way (see ops/health.py for the checks)."""
    report = readiness_report(now=timezone.now())
    report["status"] = "ok" if report["ready"] else "degraded"
    return JsonResponse(report, status=200 if report["ready"] else 503)


def home(request: HttpRequest):
    return render(request, "ops/home.html")
