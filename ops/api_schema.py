"""The OpenAPI schema documents the errors every API operation can answer, not only successes.

Each operation behind an API key can answer 401 (no or bad key), 403 (scope or permission
missing) and 429 (too many bad keys from this address, ``Retry-After``); operations with a path
parameter 404; operations with a body 400 (field errors) and 415 (unsupported content type).
Views declare their own responses with ``@extend_schema``; these are added where missing.
"""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What went wrong, in the user's language.")


ERROR_RESPONSES = {
    "401": ErrorSerializer,
    "403": ErrorSerializer,
    "429": ErrorSerializer,
}
BODY_ERROR_RESPONSES = {
    # DRF's field errors: {"field": ["message", …]} or {"detail": "…"}.
    "400": OpenApiTypes.OBJECT,
    "415": ErrorSerializer,
}


class CibleAutoSchema(AutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        extra = dict(ERROR_RESPONSES)
        if "{" in self.path:
            extra["404"] = ErrorSerializer
        if self.method in ("POST", "PUT", "PATCH"):
            extra.update(BODY_ERROR_RESPONSES)
        for code, body in extra.items():
            if code not in responses:
                responses[code] = self._get_response_for_code(body, code, direction=direction)
        return responses
