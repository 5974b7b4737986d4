"""API keys: creation (shown once), verification (constant-time), DRF authentication."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

from contacts.models import ApiKey

KNOWN_SCOPES = (
    "contacts:read",
    "contacts:write",
    "events:write",
    "consent:read",
    "consent:write",
    "segments:read",
    "segments:write",
    "campaigns:read",
    "campaigns:write",
    "experiments:read",
)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def api_key_create(*, name: str, scopes: list[str] | None = None) -> tuple[ApiKey, str]:
    """Create a key; return it with the clear-text value, which is never stored."""
    scopes = scopes or ["*"]
    unknown = sorted(set(scopes) - set(KNOWN_SCOPES) - {"*"})
    if unknown:
        raise ValueError(
            f"unknown scope(s): {', '.join(unknown)}; known: {', '.join(KNOWN_SCOPES)}"
        )
    if not name.strip():
        raise ValueError("an API key needs a name")
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    key = ApiKey.objects.create(
        name=name.strip(), prefix=prefix, hashed_key=_hash(secret), scopes=scopes
    )
    return key, f"{prefix}.{secret}"


def api_key_verify(raw: str) -> ApiKey | None:
    prefix, _sep, secret = raw.strip().partition(".")
    if not prefix or not secret:
        return None
    key = ApiKey.objects.filter(prefix=prefix, revoked_at__isnull=True).first()
    if key is None or not hmac.compare_digest(key.hashed_key, _hash(secret)):
        return None
    return key


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Api-Key"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header.startswith(self.keyword + " "):
            return None
        key = api_key_verify(header[len(self.keyword) + 1 :])
        if key is None:
            raise exceptions.AuthenticationFailed(_("Invalid or revoked API key."))
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now())
        return (ApiKeyUser(key), key)

    def authenticate_header(self, request):
        return self.keyword


class ApiKeyUser:
    """The request.user of an API-key request: authenticated, not a Django user."""

    is_authenticated = True
    is_active = True
    is_staff = False
    is_superuser = False
    is_anonymous = False

    def __init__(self, key: ApiKey):
        self.api_key = key
        self.username = f"api-key:{key.name}"
        self.pk = None

    def __str__(self) -> str:
        return self.username


class HasScope(permissions.BasePermission):
    """Views set ``required_scope``; staff users with a session pass; API keys need the scope."""

    message = _("This API key lacks the scope required for this endpoint.")

    def has_permission(self, request, view) -> bool:
        scope = getattr(view, "required_scope", None)
        if isinstance(request.auth, ApiKey):
            return scope is None or request.auth.allows(scope)
        return bool(request.user and request.user.is_authenticated and request.user.is_staff)


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """Documents ``Authorization: Api-Key <key>`` in the OpenAPI schema."""

    target_class = "contacts.api_keys.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "Api-Key <prefix>.<secret> (manage.py create_api_key NAME)",
        }
