"""Provider webhooks (delivery, bounce, complaint, open, click, inbound SMS) and the web
tracking endpoint — both record events through :func:`events_record_bulk`.

Webhook signature (documented in docs/ingestion.md): headers ``X-Cible-Timestamp`` (Unix
seconds) and ``X-Cible-Signature: sha256=<hex>``, the HMAC-SHA256 of ``"<timestamp>.<raw body>"``
with the provider's secret from ``CIBLE_WEBHOOK_SECRETS``. Compared in constant time; a
timestamp further than ``CIBLE_WEBHOOK_TOLERANCE_SECONDS`` from now is refused (replay).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core import signing
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from contacts.normalisation import InvalidValue, normalise_event_type
from contacts.selectors import AliasTables
from contacts.services.ingest import BulkOutcome, ItemResult, events_record_bulk

SIGNATURE_HEADER = "X-Cible-Signature"
TIMESTAMP_HEADER = "X-Cible-Timestamp"
TRACKING_SALT = "contacts.tracking"
TRACKING_SOURCE = "tracking"


class WebhookRefused(Exception):
    """The request is not from the provider (or is a replay); ``status`` is 401 or 404."""

    def __init__(self, reason: Any, status: int = 401):
        super().__init__(str(reason))
        self.reason, self.status = reason, status


def webhook_signature(*, secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def webhook_verify(*, provider: str, timestamp: str, signature: str, body: bytes) -> None:
    """Raise :class:`WebhookRefused` unless ``signature`` is the provider's, and fresh."""
    secret = settings.CIBLE_WEBHOOK_SECRETS.get(provider)
    if not secret:
        raise WebhookRefused(_("Unknown webhook provider."), status=404)
    try:
        sent_at = int(timestamp)
    except (TypeError, ValueError) as exc:
        raise WebhookRefused(
            _("Missing or malformed %(h)s header.") % {"h": TIMESTAMP_HEADER}
        ) from exc
    expected = webhook_signature(secret=secret, timestamp=timestamp, body=body)
    if not hmac.compare_digest(expected.encode(), (signature or "").encode()):
        raise WebhookRefused(_("Bad signature."))
    if abs(timezone.now().timestamp() - sent_at) > settings.CIBLE_WEBHOOK_TOLERANCE_SECONDS:
        raise WebhookRefused(_("Timestamp outside the accepted window (replay refused)."))


def webhook_events_record(*, provider: str, events: Sequence[Any]) -> BulkOutcome:
    """Store a verified provider's events (source ``webhook:<provider>``); each item's ``id``
    (or ``idempotency_key``) makes redeliveries harmless."""
    items = []
    for item in events:
        if isinstance(item, dict) and "id" in item and "idempotency_key" not in item:
            item = {**item, "idempotency_key": item["id"]}
            del item["id"]
        items.append(item)
    return events_record_bulk(items=items, source=f"webhook:{provider}")


def tracking_token(*, external_id: str) -> str:
    """Signed token naming a contact in ``/t/e`` requests (put it in links and pages)."""
    return signing.Signer(salt=TRACKING_SALT).sign(external_id)


def tracking_event_record(*, item: Any) -> ItemResult:
    """One web event from ``/t/e``. The contact is named by ``token`` (see :func:`tracking_token`)
    or by ``anonymous_id`` (an anonymous profile ``anon-<id>``); source ``tracking``."""
    if not isinstance(item, dict):
        return ItemResult(index=0, status="rejected", errors={"item": _("Expected an object.")})
    item = dict(item)
    token = item.pop("token", None)
    anonymous_id = item.pop("anonymous_id", None)
    if "id" in item and "idempotency_key" not in item:
        item["idempotency_key"] = item.pop("id")
    item.setdefault("timestamp", timezone.now().isoformat())
    item.setdefault("channel", "web")
    if token:
        try:
            item["external_id"] = signing.Signer(salt=TRACKING_SALT).unsign(str(token))
        except signing.BadSignature:
            return ItemResult(index=0, status="rejected", errors={"token": _("Invalid token.")})
    elif anonymous_id and isinstance(anonymous_id, str) and len(anonymous_id) <= 64:
        item["external_id"] = f"anon-{anonymous_id}"
    else:
        return ItemResult(
            index=0,
            status="rejected",
            errors={"token": _("Name the visitor by token or anonymous_id (≤ 64 characters).")},
        )
    item.pop("email", None)  # a browser may not name a known person by email or phone
    item.pop("phone", None)
    aliases = AliasTables.load()
    try:
        event_type = normalise_event_type(item.get("type"), aliases=aliases.event_type)
    except InvalidValue as exc:
        return ItemResult(index=0, status="rejected", errors={"type": exc.reason})
    if not tracking_type_allowed(event_type):
        return ItemResult(
            index=0,
            status="rejected",
            errors={
                "type": _(
                    "The event type %(type)s cannot be sent from a browser; allowed: %(allowed)s."
                )
                % {"type": event_type, "allowed": ", ".join(settings.CIBLE_TRACKING_EVENT_TYPES)}
            },
        )
    return events_record_bulk(items=[item], source=TRACKING_SOURCE, aliases=aliases).results[0]


def tracking_type_allowed(event_type: str) -> bool:
    """Whether ``/t/e`` accepts ``event_type`` (a normalised type): it is named in
    ``CIBLE_TRACKING_EVENT_TYPES`` or starts with one of its ``prefix_*`` entries. Bounces,
    complaints and every other provider feedback come only from signed webhooks."""
    for allowed in settings.CIBLE_TRACKING_EVENT_TYPES:
        if allowed.endswith("*"):
            if event_type.startswith(allowed[:-1]):
                return True
        elif event_type == allowed:
            return True
    return False
