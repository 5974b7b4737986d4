"""REST API of segments (``/api/v1/segments…``): thin views over services and selectors.

Scopes: ``segments:read`` for GET, ``segments:write`` for POST/PUT. The rule is the same JSON
tree as in the admin; see docs/segments.md and the OpenAPI schema for the format.
"""

from __future__ import annotations

from django.db import transaction
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from segments.models import Segment, SegmentFamily
from segments.rules import RuleError, rule_describe
from segments.selectors import segment_compute_state, segment_members
from segments.services import (
    EveryContactNotConfirmed,
    segment_compute_request,
    segment_create,
    segment_update,
)

RULE_SCHEMA = {
    "description": (
        'A rule tree. Groups: {"all": [...]}, {"any": [...]}, {"not": node}. Leaves carry '
        'a "type": field, feature, attribute, event, segment (and types added by plug-ins, '
        "e.g. cluster, score). See docs/segments.md for every operator. Limits: 100 "
        "conditions, groups 8 levels deep, 10,000 JSON values, 1,000 values per in/not_in "
        "list, 1,000-character texts, dates 1900-01-01 to 2199-12-31, numbers within ±1e15."
    ),
    "type": "object",
    "oneOf": [
        {
            "type": "object",
            "properties": {"all": {"type": "array", "items": {"type": "object"}}},
            "required": ["all"],
        },
        {
            "type": "object",
            "properties": {"any": {"type": "array", "items": {"type": "object"}}},
            "required": ["any"],
        },
        {"type": "object", "properties": {"not": {"type": "object"}}, "required": ["not"]},
        {
            "type": "object",
            "properties": {
                "type": {
                    "type": "string",
                    "description": "field, feature, attribute, event, segment, consent, cluster, "
                    "score, cohort…",
                    "example": "feature",
                },
                "field": {"type": "string"},
                "feature": {"type": "string"},
                "key": {"type": "string"},
                "event_type": {"type": "string"},
                "aggregate": {"type": "string", "enum": ["count", "sum", "avg", "min", "max"]},
                "property": {"type": "string"},
                "where": {"type": "array", "items": {"type": "object"}},
                "within_days": {"type": "integer"},
                "since": {"type": "string", "format": "date"},
                "until": {"type": "string", "format": "date"},
                "segment": {"type": "integer"},
                "op": {"type": "string"},
                "value": {},
            },
            "required": ["type"],
        },
    ],
}

RULE_EXAMPLES = [
    OpenApiExample(
        "High-value recent buyers",
        value={
            "name": "High-value recent buyers",
            "rule": {
                "all": [
                    {"type": "feature", "feature": "recency_days", "op": "lte", "value": 30},
                    {"type": "feature", "feature": "monetary_total", "op": "gte", "value": 500},
                ]
            },
        },
        request_only=True,
    ),
    OpenApiExample(
        "Bought shoes twice in 30 days and opened an email in 14 days",
        value={
            "name": "Shoe fans",
            "rule": {
                "all": [
                    {
                        "type": "event",
                        "event_type": "purchase",
                        "where": [{"property": "category", "op": "eq", "value": "shoes"}],
                        "op": "gte",
                        "value": 2,
                        "within_days": 30,
                    },
                    {"type": "event", "event_type": "email_open", "within_days": 14},
                ]
            },
        },
        request_only=True,
    ),
]


@extend_schema_field(RULE_SCHEMA)
class RuleField(serializers.JSONField):
    def to_internal_value(self, data):
        # The rule validation names what is wrong (a number out of range, a list too long…)
        # where the JSON round trip would only say "Value must be valid JSON.".
        return data


class SegmentInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    rule = RuleField()
    family = serializers.PrimaryKeyRelatedField(
        queryset=SegmentFamily.objects.all(), required=False, allow_null=True, default=None
    )
    priority = serializers.IntegerField(min_value=0, required=False, default=100)
    is_active = serializers.BooleanField(required=False, default=True)
    confirm_every_contact = serializers.BooleanField(
        required=False,
        default=False,
        help_text=(
            'Must be true to save a rule with no restricting condition (e.g. {"all": []}), '
            "which selects every contact; otherwise such a rule is refused with a 400."
        ),
    )


class SegmentOutputSerializer(serializers.ModelSerializer):
    rule = RuleField()
    rule_text = serializers.SerializerMethodField(help_text="The rule in plain language.")
    compute_state = serializers.SerializerMethodField(
        help_text="computing (asked for, not finished), done, failed (see compute_error) or never."
    )

    class Meta:
        model = Segment
        fields = [
            "id",
            "name",
            "description",
            "rule",
            "rule_text",
            "family",
            "priority",
            "kind",
            "is_active",
            "size",
            "last_computed_at",
            "last_compute_ms",
            "compute_state",
            "compute_error",
            "created_at",
            "updated_at",
        ]

    def get_rule_text(self, segment: Segment) -> str:
        return rule_describe(segment.rule)

    @extend_schema_field({"type": "string", "enum": ["computing", "done", "failed", "never"]})
    def get_compute_state(self, segment: Segment) -> str:
        return segment_compute_state(segment)


def _rule_error_response(exc: RuleError) -> Response:
    body = {"rule": [str(exc)]}
    if isinstance(exc, EveryContactNotConfirmed):
        body["confirm_every_contact"] = [
            _("Send true to save a segment that contains every contact.")
        ]
    return Response(body, status=status.HTTP_400_BAD_REQUEST)


def _definition(validated: dict) -> dict:
    """The serializer's data as service arguments."""
    data = dict(validated)
    data["every_contact_confirmed"] = data.pop("confirm_every_contact")
    return data


class _ScopedBySafeMethod:
    read_scope = "segments:read"
    write_scope = "segments:write"

    @property
    def required_scope(self) -> str:
        method = getattr(self.request, "method", "GET")
        return self.read_scope if method in ("GET", "HEAD", "OPTIONS") else self.write_scope


class StrictCursorPagination(CursorPagination):
    """Cursor pagination by id whose ``page_size`` is a whole number from 1 to
    ``max_page_size`` — anything else is a 400, not silently the default — and whose
    ``cursor`` is one this API handed out (a forged or damaged one is a 400, not a 404)."""

    ordering = "pk"
    page_size_query_param = "page_size"

    def decode_cursor(self, request):
        try:
            return super().decode_cursor(request)
        except NotFound:
            raise serializers.ValidationError(
                {"cursor": [_("Invalid cursor: use the “next” or “previous” link as given.")]}
            ) from None

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not raw.isdigit() or not 1 <= int(raw) <= self.max_page_size:
            raise serializers.ValidationError(
                {
                    "page_size": [
                        _("page_size must be a whole number from 1 to %(max)s.")
                        % {"max": self.max_page_size}
                    ]
                }
            )
        return int(raw)


class SegmentPagination(StrictCursorPagination):
    page_size = 100
    max_page_size = 1000


def _paginated(items_schema: dict | type, max_page_size: int, what: str) -> dict:
    """OpenAPI parameters and 200 response of a cursor-paginated list."""
    return {
        "parameters": [
            OpenApiParameter("cursor", OpenApiTypes.STR, description="from the previous `next`"),
            OpenApiParameter(
                "page_size",
                {"type": "integer", "minimum": 1, "maximum": max_page_size},
                description=f"1 to {max_page_size:,} {what}",
            ),
        ],
        "responses": {
            200: {
                "type": "object",
                "properties": {
                    "next": {"type": "string", "nullable": True, "format": "uri"},
                    "previous": {"type": "string", "nullable": True, "format": "uri"},
                    "results": {"type": "array", "items": items_schema},
                },
                "required": ["next", "previous", "results"],
            },
            400: OpenApiTypes.OBJECT,
        },
    }


class SegmentListCreateApi(_ScopedBySafeMethod, APIView):
    """List segments (100 per page, ``page_size`` up to 1,000, by cursor), or create one
    (computed by a worker right after)."""

    @extend_schema(
        operation_id="segments_list",
        **_paginated(
            {"$ref": "#/components/schemas/SegmentOutput"},
            SegmentPagination.max_page_size,
            "segments",
        ),
    )
    def get(self, request):
        paginator = SegmentPagination()
        page = paginator.paginate_queryset(
            Segment.objects.select_related("family"), request, view=self
        )
        return paginator.get_paginated_response(SegmentOutputSerializer(page, many=True).data)

    @extend_schema(
        operation_id="segments_create",
        request=SegmentInputSerializer,
        responses={201: SegmentOutputSerializer},
        examples=RULE_EXAMPLES,
    )
    def post(self, request):
        data = SegmentInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if Segment.objects.filter(name=data.validated_data["name"]).exists():
            return Response(
                {"name": [_("A segment with this name already exists.")]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        try:
            with transaction.atomic():
                segment = segment_create(**_definition(data.validated_data))
                segment_compute_request(segment_ids=[segment.pk])
                segment.refresh_from_db()  # shows "computing" until the worker has finished
        except RuleError as exc:
            return _rule_error_response(exc)
        return Response(SegmentOutputSerializer(segment).data, status=status.HTTP_201_CREATED)


class SegmentDetailApi(_ScopedBySafeMethod, APIView):
    """One segment with its size; PUT replaces its definition (then it is recomputed)."""

    @extend_schema(operation_id="segments_detail", responses=SegmentOutputSerializer)
    def get(self, request, segment_id: int):
        return Response(SegmentOutputSerializer(get_object_or_404(Segment, pk=segment_id)).data)

    @extend_schema(
        operation_id="segments_update",
        request=SegmentInputSerializer,
        responses=SegmentOutputSerializer,
        examples=RULE_EXAMPLES,
    )
    def put(self, request, segment_id: int):
        segment = get_object_or_404(Segment, pk=segment_id)
        data = SegmentInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if Segment.objects.filter(name=data.validated_data["name"]).exclude(pk=segment.pk).exists():
            return Response(
                {"name": [_("A segment with this name already exists.")]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        try:
            with transaction.atomic():
                segment = segment_update(segment=segment, **_definition(data.validated_data))
                segment_compute_request(segment_ids=[segment.pk])
                segment.refresh_from_db()  # shows "computing" until the worker has finished
        except RuleError as exc:
            return _rule_error_response(exc)
        return Response(SegmentOutputSerializer(segment).data)


class MemberPagination(StrictCursorPagination):
    page_size = 1000
    max_page_size = 10_000


class SegmentMembersApi(APIView):
    """Current members' external ids, 1,000 per page (``page_size`` up to 10,000), by cursor."""

    required_scope = "segments:read"

    @extend_schema(
        operation_id="segments_members",
        **_paginated({"type": "string"}, MemberPagination.max_page_size, "members"),
    )
    def get(self, request, segment_id: int):
        segment = get_object_or_404(Segment, pk=segment_id)
        paginator = MemberPagination()
        page = paginator.paginate_queryset(
            segment_members(segment).only("pk", "external_id"), request, view=self
        )
        return paginator.get_paginated_response([c.external_id for c in page])
