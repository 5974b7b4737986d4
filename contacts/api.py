"""REST API of the contacts app: bulk upsert of contacts, bulk events, contact detail.

Thin views: parse the batch envelope, call one service, shape the answer. Items are validated by
the services (``contacts.services.ingest``), not by serializers: the serializers below document
the contract in the OpenAPI schema and shape the output.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.parsers import BaseParser
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api_json import json_loads_bounded
from contacts.hooks import contact_detail_sections
from contacts.normalisation import InvalidValue, clean_text, echo_safe
from contacts.selectors import contact_by_external_id, contact_event_summary
from contacts.services import MAX_BATCH, BulkOutcome, contacts_upsert_bulk, events_record_bulk

logger = logging.getLogger(__name__)


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = _("The request is too large.")
    default_code = "payload_too_large"


class BoundedJSONParser(BaseParser):
    """JSON parser that refuses bodies over ``CIBLE_API_MAX_BODY_BYTES`` (413) and turns every
    malformed body (bad UTF-8, bad JSON, absurd nesting) into a 400 — never a 500.

    Not a ``JSONParser`` subclass on purpose: DRF reads ``request.body`` for those, which caps
    bodies at Django's 2.5 MB ``DATA_UPLOAD_MAX_MEMORY_SIZE`` before a per-item answer is possible.
    """

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        limit = settings.CIBLE_API_MAX_BODY_BYTES
        length = int(request.META.get("CONTENT_LENGTH") or 0) if request is not None else 0
        if length > limit:
            raise PayloadTooLarge(
                _("The request body is %(size)d bytes; at most %(max)d are accepted.")
                % {"size": length, "max": limit}
            )
        if stream is None:
            raise exceptions.ParseError(_("The request body is empty."))
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise PayloadTooLarge(
                _("The request body is larger than %(max)d bytes.") % {"max": limit}
            )
        try:
            return json_loads_bounded(raw)
        except ValueError as exc:
            raise exceptions.ParseError(_("Malformed JSON: %(error)s") % {"error": exc}) from exc


# --- schema-only serializers (the contract) ---------------------------------------------------


class ContactItemSerializer(serializers.Serializer):
    external_id = serializers.CharField(required=False, max_length=128)
    email = serializers.CharField(required=False)
    phone = serializers.CharField(required=False, help_text="Any format; stored as E.164.")
    first_name = serializers.CharField(required=False)
    last_name = serializers.CharField(required=False)
    country = serializers.CharField(required=False, help_text="ISO code or French/English name.")
    city = serializers.CharField(required=False)
    timezone = serializers.CharField(required=False, help_text="IANA zone, e.g. Europe/Paris.")
    locale = serializers.CharField(required=False, help_text="e.g. fr or fr-FR.")
    birth_year = serializers.IntegerField(required=False, min_value=1900)
    attributes = serializers.DictField(required=False)
    signed_up_at = serializers.CharField(
        required=False,
        help_text="Sign-up time (ISO 8601 with offset, or a date YYYY-MM-DD read as 00:00 UTC), "
        "1970 to now; stored as the contact's created_at.",
    )


class EventItemSerializer(serializers.Serializer):
    external_id = serializers.CharField(required=False, help_text="One of external_id/email/phone.")
    email = serializers.CharField(required=False)
    phone = serializers.CharField(required=False)
    type = serializers.CharField(help_text="e.g. purchase, page_view (aliases are mapped).")
    timestamp = serializers.DateTimeField(
        help_text="ISO 8601 with offset, e.g. 2026-03-01T14:05:00+01:00."
    )
    idempotency_key = serializers.CharField(max_length=128)
    properties = serializers.DictField(
        required=False, help_text="Purchases carry amount (number) and may carry category."
    )
    channel = serializers.CharField(required=False)
    device = serializers.CharField(required=False)
    country = serializers.CharField(required=False)
    city = serializers.CharField(required=False)


class ContactBatchSerializer(serializers.Serializer):
    source = serializers.CharField(required=False, default="api", max_length=64)
    items = ContactItemSerializer(many=True, max_length=MAX_BATCH)


class EventBatchSerializer(serializers.Serializer):
    source = serializers.CharField(
        required=False,
        default="api",
        max_length=64,
        help_text="Idempotency is per (source, idempotency_key); a retry carries the same timestamp.",
    )
    items = EventItemSerializer(many=True, max_length=MAX_BATCH)


class ItemResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["created", "updated", "duplicate", "rejected"])
    external_id = serializers.CharField(required=False)
    errors = serializers.DictField(child=serializers.CharField(), required=False)


class BulkResultSerializer(serializers.Serializer):
    results = ItemResultSerializer(many=True)
    counts = serializers.DictField(child=serializers.IntegerField())


class ContactDetailSerializer(serializers.Serializer):
    external_id = serializers.CharField()
    email = serializers.CharField()
    phone = serializers.CharField()
    first_name = serializers.CharField()
    last_name = serializers.CharField()
    country = serializers.CharField()
    city = serializers.CharField()
    timezone = serializers.CharField()
    locale = serializers.CharField()
    birth_year = serializers.IntegerField(allow_null=True)
    attributes = serializers.DictField()
    is_anonymous = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    events = serializers.IntegerField()
    last_event_at = serializers.DateTimeField(allow_null=True)


# --- views ---------------------------------------------------------------------------------


def _batch(request) -> tuple[str, list]:
    """``(source, items)`` from ``{"source": …, "items": […]}`` or a bare ``[…]``."""
    data = request.data
    source: Any = "api"
    if isinstance(data, dict):
        unknown = sorted(set(data) - {"source", "items"})
        if unknown:
            raise exceptions.ValidationError(
                {echo_safe(name[:64]): [_("Unknown field.")] for name in unknown[:20]}
            )
        source = data.get("source", "api")
        data = data.get("items")
    if not isinstance(data, list):
        raise exceptions.ValidationError(
            {"items": [_("Expected a list of items (or an object with an items list).")]}
        )
    if not data:
        raise exceptions.ValidationError({"items": [_("The batch is empty.")]})
    if len(data) > MAX_BATCH:
        raise PayloadTooLarge(
            _("A batch holds at most %(max)d items; this one has %(count)d. Split it.")
            % {"max": MAX_BATCH, "count": len(data)}
        )
    try:
        source = clean_text(source, field_max=64)
    except InvalidValue as exc:
        raise exceptions.ValidationError({"source": [exc.reason]}) from exc
    if not source:
        raise exceptions.ValidationError({"source": [_("This field may not be blank.")]})
    return source, data


def _bulk_response(outcome: BulkOutcome) -> Response:
    """200 when every item landed, 207 when some were rejected, 400 when all were."""
    counts = outcome.counts
    rejected = counts["rejected"]
    if rejected == 0:
        code = status.HTTP_200_OK
    elif rejected == len(outcome.results):
        code = status.HTTP_400_BAD_REQUEST
    else:
        code = status.HTTP_207_MULTI_STATUS
    return Response(
        {"results": [r.as_dict() for r in outcome.results], "counts": counts}, status=code
    )


BULK_RESPONSES = {
    200: BulkResultSerializer,
    207: BulkResultSerializer,
    # Every item rejected (a BulkResult), or a body that is not a batch ({"items": ["…"]}).
    400: OpenApiTypes.OBJECT,
}


class ContactsBulkApi(APIView):
    """Upsert up to 1,000 contacts by external_id (else email, else phone)."""

    required_scope = "contacts:write"
    parser_classes = [BoundedJSONParser]

    @extend_schema(
        operation_id="contacts_bulk_upsert",
        request=ContactBatchSerializer,
        responses=BULK_RESPONSES,
        examples=[
            OpenApiExample(
                "Two contacts",
                value={
                    "source": "crm",
                    "items": [
                        {"external_id": "C-1001", "email": "lea@example.fr", "country": "France"},
                        {"email": "hugo@example.fr", "phone": "06 12 34 56 78"},
                    ],
                },
                request_only=True,
            )
        ],
    )
    def post(self, request):
        source, items = _batch(request)
        return _bulk_response(contacts_upsert_bulk(items=items, source=source))


class EventsBulkApi(APIView):
    """Record up to 1,000 events; idempotent by (source, idempotency_key)."""

    required_scope = "events:write"
    parser_classes = [BoundedJSONParser]

    @extend_schema(
        operation_id="events_bulk_record", request=EventBatchSerializer, responses=BULK_RESPONSES
    )
    def post(self, request):
        source, items = _batch(request)
        return _bulk_response(events_record_bulk(items=items, source=source))


class ContactDetailApi(APIView):
    """One contact with its event summary and the sections other apps register
    (``contacts.hooks.contact_detail_sections``: segments, consent…)."""

    required_scope = "contacts:read"

    @extend_schema(operation_id="contact_detail", responses=ContactDetailSerializer)
    def get(self, request, external_id: str):
        contact = contact_by_external_id(external_id)
        if contact is None:
            raise exceptions.NotFound(_("No contact with this external ID."))
        data = {
            name: getattr(contact, name)
            for name in ContactDetailSerializer().fields
            if name not in ("events", "last_event_at")
        }
        data.update(contact_event_summary(contact))
        payload = ContactDetailSerializer(data).data
        for name, section in contact_detail_sections.items():
            try:
                payload[name] = section(contact)
            except Exception:  # a broken section must not hide the contact
                logger.exception("contact detail section %s failed", name)
                payload[name] = None
        return Response(payload)
