"""API keys: creation (shown once), verification (constant-time), DRF authentication."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

from contacts.models import ApiKey
from ops.access import client_ip, failed_attempts_blocked, failed_attempts_record

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


# What an admin session needs for the operation a scope names (API keys need the scope itself).
# Reads need the model's view permission, writes the add/change permission of what they write.
SCOPE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "contacts:read": ("contacts.view_contact",),
    "contacts:write": ("contacts.add_contact", "contacts.change_contact"),
    "events:write": ("contacts.add_event",),
    "consent:read": ("consent.view_consentevent",),
    "consent:write": ("consent.add_consentevent",),
    "segments:read": ("segments.view_segment",),
    "segments:write": ("segments.add_segment", "segments.change_segment"),
    "campaigns:read": ("activation.view_campaign",),
    "campaigns:write": ("activation.add_campaign", "activation.change_campaign"),
    "experiments:read": ("experiments.view_experiment",),
}


def api_key_create(*, name: str, scopes: list[str]) -> tuple[ApiKey, str]:
    """Create a key; return it with the clear-text value, which is never stored.

    ``scopes`` is what the key may do: an empty list gives a key that can do nothing, and
    ``["*"]`` every scope (there is no implicit default)."""
    scopes = list(dict.fromkeys(scopes))
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
        """A client address that sent too many bad keys in a row gets 429 with Retry-After
        (``CIBLE_API_KEY_FAILURES_PER_WINDOW`` per ``CIBLE_API_KEY_FAILURE_WINDOW_SECONDS``),
        whatever key it sends next, until the window ends."""
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header.startswith(self.keyword + " "):
            return None
        ip, window = client_ip(request), settings.CIBLE_API_KEY_FAILURE_WINDOW_SECONDS
        wait = failed_attempts_blocked(
            kind="api-key", ip=ip, limit=settings.CIBLE_API_KEY_FAILURES_PER_WINDOW, window=window
        )
        if wait is not None:
            raise exceptions.Throttled(
                wait=wait, detail=str(_("Too many invalid API keys from this address; slow down."))
            )
        key = api_key_verify(header[len(self.keyword) + 1 :])
        if key is None:
            failed_attempts_record(kind="api-key", ip=ip, window=window)
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
    """Views set ``required_scope``. An API key needs that scope; a staff user with an admin
    session needs the model permissions of the scope (``SCOPE_PERMISSIONS``), as in the admin.
    A view without a scope is refused to sessions (nothing says what it would need)."""

    message = _("This API key lacks the scope required for this endpoint.")

    def has_permission(self, request, view) -> bool:
        scope = getattr(view, "required_scope", None)
        if isinstance(request.auth, ApiKey):
            return scope is None or request.auth.allows(scope)
        user = request.user
        if not (user and user.is_authenticated and user.is_staff and user.is_active):
            return False
        if scope not in SCOPE_PERMISSIONS:
            return bool(user.is_superuser)
        if not user.has_perms(SCOPE_PERMISSIONS[scope]):
            self.message = _("Your account lacks the permission required for this operation.")
            return False
        return True


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
