from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

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


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition (django-prometheus requests/database + Cible's own metrics). With
    ``OPS_METRICS_TOKEN`` set, the scraper must send ``Authorization: Bearer <token>``."""
    token = settings.OPS_METRICS_TOKEN
    if token and not constant_time_compare(
        request.headers.get("Authorization", ""), f"Bearer {token}"
    ):
        return HttpResponse(status=401)
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)


def home(request: HttpRequest):
    return render(request, "ops/home.html")
