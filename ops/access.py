"""Who is knocking: the client address used by login lockouts and the API-key failure counter.

``failed_attempts_*`` keep a fixed-window counter per client address in the shared cache (Redis
in production, so every web process sees the same count)."""

from __future__ import annotations

import ipaddress
import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    """The address the request came from.

    ``REMOTE_ADDR``, unless ``CIBLE_TRUSTED_PROXIES`` (N > 0) says N reverse proxies of ours
    stand in front: then the address the outermost of them saw, i.e. the N-th entry from the
    right of ``X-Forwarded-For`` (entries further left are whatever the client sent, so never
    trusted). Without enough entries, ``REMOTE_ADDR``. Always a valid IP address (it is stored
    in IP-address columns): anything else, or no address at all, is ``0.0.0.0``."""
    proxies = settings.CIBLE_TRUSTED_PROXIES
    if proxies > 0:
        forwarded = [
            part.strip()
            for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
            if part.strip()
        ]
        if len(forwarded) >= proxies and _is_ip(forwarded[-proxies]):
            return forwarded[-proxies]
    remote = request.META.get("REMOTE_ADDR", "")
    return remote if _is_ip(remote) else UNKNOWN_ADDRESS


UNKNOWN_ADDRESS = "0.0.0.0"


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _window(seconds: int) -> tuple[int, int]:
    """(index of the current window, seconds until it ends)."""
    now = time.time()
    return int(now // seconds), max(1, int(seconds - now % seconds))


def failed_attempts_blocked(*, kind: str, ip: str, limit: int, window: int) -> int | None:
    """Seconds to wait when ``ip`` already failed ``limit`` times in this window, else None."""
    index, remaining = _window(window)
    count = cache.get(f"ops:failures:{kind}:{ip}:{index}", 0)
    return remaining if count >= limit else None


def failed_attempts_record(*, kind: str, ip: str, window: int) -> int:
    """Count one more failure of ``ip`` in this window; return the count."""
    index, _remaining = _window(window)
    key = f"ops:failures:{kind}:{ip}:{index}"
    cache.add(key, 0, timeout=window + 60)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=window + 60)
        return 1
