"""Public tracking endpoints: open pixel and click redirect (signed tokens, no open redirect)."""

from __future__ import annotations

import base64

from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from activation.services import tracking_click_record, tracking_open_record
from activation.tracking import InvalidTrackingToken, click_token_read, open_token_read

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def _client_ip(request) -> str:
    return request.META.get("REMOTE_ADDR", "")


@never_cache
@require_GET
def open_pixel(request, token: str):
    """Always answers the 1×1 GIF (a broken image would tell nothing useful); records the open
    only for a valid token."""
    try:
        message_id = open_token_read(token)
    except InvalidTrackingToken:
        return HttpResponse(PIXEL, content_type="image/gif")
    tracking_open_record(
        message_id=message_id,
        user_agent=request.META.get("HTTP_USER_AGENT", ""),
        ip=_client_ip(request),
        at=timezone.now(),
    )
    return HttpResponse(PIXEL, content_type="image/gif")


@never_cache
@require_GET
def click_redirect(request, token: str):
    """Redirect to the URL signed into the token (only URLs that were in a message); 404 for
    any token that does not verify."""
    try:
        target = click_token_read(token)
    except InvalidTrackingToken:
        raise Http404(_("This link is invalid.")) from None
    tracking_click_record(
        message_id=target.message_id,
        url=target.url,
        user_agent=request.META.get("HTTP_USER_AGENT", ""),
        at=timezone.now(),
    )
    return HttpResponseRedirect(target.url)
