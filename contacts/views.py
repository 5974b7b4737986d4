"""Public endpoints of the contacts app: provider webhooks and the web tracking endpoint."""

from __future__ import annotations

import base64
import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt

from config.api_json import json_loads_bounded
from contacts.services import MAX_BATCH
from contacts.services.webhooks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookRefused,
    tracking_event_record,
    webhook_events_record,
    webhook_verify,
)

MAX_WEBHOOK_BODY = 5 * 1024 * 1024
MAX_TRACKING_BODY = 64 * 1024
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def _error(message: str, status: int) -> JsonResponse:
    return JsonResponse({"detail": message}, status=status)


@csrf_exempt
def webhook(request: HttpRequest, provider: str) -> HttpResponse:
    """``POST /webhooks/<provider>/`` — signed JSON ``{"events": [...]}``; per-item answer."""
    if request.method != "POST":
        return _error(_("Use POST."), 405)
    if int(request.META.get("CONTENT_LENGTH") or 0) > MAX_WEBHOOK_BODY:
        return _error(_("The request is too large."), 413)
    body = request.body
    try:
        webhook_verify(
            provider=provider,
            timestamp=request.headers.get(TIMESTAMP_HEADER, ""),
            signature=request.headers.get(SIGNATURE_HEADER, ""),
            body=body,
        )
    except WebhookRefused as exc:
        return _error(str(exc.reason), exc.status)
    try:
        payload = json_loads_bounded(body)
    except ValueError:
        return _error(_("Malformed JSON."), 400)
    events = payload.get("events") if isinstance(payload, dict) else None
    if not isinstance(events, list) or not events:
        return _error(_("Expected an object with a non-empty events list."), 400)
    if len(events) > MAX_BATCH:
        return _error(_("At most %(max)d events per request.") % {"max": MAX_BATCH}, 413)
    outcome = webhook_events_record(provider=provider, events=events)
    rejected = outcome.counts["rejected"]
    status = 200 if rejected == 0 else 400 if rejected == len(events) else 207
    return JsonResponse(
        {"results": [r.as_dict() for r in outcome.results], "counts": outcome.counts},
        status=status,
    )


def _cors(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    origin = request.headers.get("Origin")
    if origin and origin in settings.CIBLE_TRACKING_ALLOWED_ORIGINS:
        response["Access-Control-Allow-Origin"] = origin
        response["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response["Access-Control-Allow-Headers"] = "Content-Type"
        response["Access-Control-Max-Age"] = "600"
    response["Vary"] = "Origin"
    return response


def _rate_limited(request: HttpRequest) -> bool:
    """Fixed one-minute window per client IP in the shared cache (Redis in production)."""
    window = int(time.time() // 60)
    key = f"contacts:track:{request.META.get('REMOTE_ADDR', '')}:{window}"
    cache.add(key, 0, timeout=120)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=120)
        count = 1
    return count > settings.CIBLE_TRACKING_RATE_PER_MINUTE


@csrf_exempt
def track(request: HttpRequest) -> HttpResponse:
    """``/t/e`` — one web event. ``GET`` (pixel: ``?token=…&type=…&id=…&p={json}``) answers a
    1×1 GIF; ``POST`` JSON answers the item result. CORS limited to
    ``CIBLE_TRACKING_ALLOWED_ORIGINS``; rate limited per client IP."""
    origin = request.headers.get("Origin")
    if origin and origin not in settings.CIBLE_TRACKING_ALLOWED_ORIGINS:
        return _cors(request, _error(_("Origin not allowed."), 403))
    if request.method == "OPTIONS":
        return _cors(request, HttpResponse(status=204))
    if request.method not in ("GET", "POST"):
        return _cors(request, _error(_("Use GET or POST."), 405))
    if _rate_limited(request):
        response = _error(_("Too many requests; slow down."), 429)
        response["Retry-After"] = "60"
        return _cors(request, response)
    if request.method == "GET":
        item: object = {k: v for k, v in request.GET.items() if k != "p"}
        if "p" in request.GET:
            try:
                item["properties"] = json_loads_bounded(request.GET["p"])
            except ValueError:
                return _cors(request, _error(_("p must be a JSON object."), 400))
    else:
        if int(request.META.get("CONTENT_LENGTH") or 0) > MAX_TRACKING_BODY:
            return _cors(request, _error(_("The request is too large."), 413))
        try:
            item = json_loads_bounded(request.body)
        except (ValueError, RecursionError):
            return _cors(request, _error(_("Malformed JSON."), 400))
    result = tracking_event_record(item=item)
    status = 400 if result.status == "rejected" else 200
    if request.method == "GET" and status == 200:
        response = HttpResponse(PIXEL, content_type="image/gif")
        response["Cache-Control"] = "no-store"
    else:
        answer = result.as_dict()
        answer.pop("index", None)
        response = JsonResponse(answer, status=status)
    return _cors(request, response)
