"""REST API of consent: record consent events in bulk, read a contact's consent summary.
Thin views: the services validate and decide."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from consent.selectors import consent_summary
from consent.services import CONSENT_BATCH_MAX, consent_record_bulk
from contacts.models import Contact


class ConsentItemSerializer(serializers.Serializer):
    external_id = serializers.CharField()
    purpose = serializers.CharField(
        help_text="Purpose code, e.g. newsletter, promotions, profiling."
    )
    channel = serializers.ChoiceField(choices=["email", "sms", "push", "any"])
    granted = serializers.BooleanField()
    timestamp = serializers.DateTimeField(help_text="When the person answered (with offset).")
    proof = serializers.DictField(required=False, help_text="Wording version, IP, user agent…")


class ConsentBatchSerializer(serializers.Serializer):
    source = serializers.CharField(required=False)
    items = ConsentItemSerializer(many=True)


class ConsentItemResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["recorded", "rejected"])
    event_id = serializers.IntegerField(required=False)
    errors = serializers.CharField(required=False)


class ConsentBatchResultSerializer(serializers.Serializer):
    results = ConsentItemResultSerializer(many=True)


class ConsentBulkApi(APIView):
    """Record up to 1,000 consent answers (source ``api``); per-item answers."""

    required_scope = "consent:write"

    @extend_schema(
        operation_id="consents_bulk_record",
        request=ConsentBatchSerializer,
        responses={200: ConsentBatchResultSerializer, 207: ConsentBatchResultSerializer},
    )
    def post(self, request):
        data = request.data
        items = data.get("items") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise exceptions.ValidationError({"items": [_("Expected a list of items.")]})
        if len(items) > CONSENT_BATCH_MAX:
            raise exceptions.ValidationError(
                {"items": [_("At most %(max)d items per request.") % {"max": CONSENT_BATCH_MAX}]}
            )
        origin = data.get("source", "api") if isinstance(data, dict) else "api"
        results = consent_record_bulk(items=items, origin=str(origin), actor=str(request.user))
        rejected = sum(r["status"] == "rejected" for r in results)
        code = status.HTTP_200_OK if not rejected else status.HTTP_207_MULTI_STATUS
        if results and rejected == len(results):
            code = status.HTTP_400_BAD_REQUEST
        return Response({"results": results}, status=code)


class ConsentSummaryApi(APIView):
    """Current consent of one contact per purpose × channel."""

    required_scope = "consent:read"

    @extend_schema(operation_id="consent_summary", responses={200: dict})
    def get(self, request, external_id: str):
        contact = Contact.objects.filter(external_id=external_id).first()
        if contact is None:
            raise exceptions.NotFound(_("No contact with this external ID."))
        return Response(consent_summary(contact))
