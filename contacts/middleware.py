"""``DatabaseBusyMiddleware``: a write that waited the whole SQLite busy timeout (embedded mode
under concurrent load) answers 503 with ``Retry-After`` instead of a 500. Nothing was written:
the request's transaction was rolled back, so the client may send the same request again
(bulk items are idempotent)."""

from __future__ import annotations

from django.db import OperationalError
from django.http import HttpRequest, JsonResponse
from django.utils.translation import gettext as _

RETRY_AFTER_SECONDS = 2


def database_is_busy(exc: BaseException) -> bool:
    return isinstance(exc, OperationalError) and "database is locked" in str(exc)


class DatabaseBusyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception):
        if not database_is_busy(exception):
            return None
        response = JsonResponse(
            {"detail": _("The database is busy; nothing was stored. Retry shortly.")}, status=503
        )
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
