"""Per-channel circuit breaker: stop claiming while the provider refuses, resume when it answers.

State lives in the default cache (Redis in production), so every worker of every machine sees
the same breaker. ``ACTIVATION_BREAKER_FAILURES`` retryable failures in a row on a channel
(no success in between, within ``ACTIVATION_BREAKER_WINDOW_SECONDS``) *open* it for a cooldown
(``ACTIVATION_BREAKER_COOLDOWN_SECONDS``, doubled at each consecutive opening up to
``ACTIVATION_BREAKER_MAX_COOLDOWN_SECONDS``). While open, delivery claims nothing on that
channel and hands back the rows it holds; once the cooldown is over, claiming resumes (the
first messages are the probe): a success closes the breaker, more failures re-open it.

The breaker is advisory: when the cache itself is unreachable it reads as closed (delivery
goes on, each failure is still retried with backoff).
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

_PREFIX = "cible:breaker"


def _key(channel: str, name: str) -> str:
    return f"{_PREFIX}:{channel}:{name}"


def breaker_wait_seconds(channel: str) -> float:
    """Seconds until the breaker of ``channel`` lets delivery claim again (0 = closed)."""
    try:
        until = cache.get(_key(channel, "open_until"))
    except Exception:  # noqa: BLE001 - the cache is down: the breaker is advisory
        return 0.0
    if not until:
        return 0.0
    return max(0.0, float(until) - time.time())


def breaker_record(channel: str, *, failures: int, successes: int) -> float:
    """Account the results of a hand-off chunk; returns the new wait (0 = still closed).

    ``failures`` counts retryable failures (the provider refused or was unreachable);
    permanent per-recipient refusals are the provider answering, and count as successes."""
    try:
        if successes:
            if cache.get(_key(channel, "failures")):
                cache.delete_many([_key(channel, "failures"), _key(channel, "openings")])
                logger.info("circuit breaker of %s closed: the provider answers", channel)
            return 0.0
        if not failures:
            return 0.0
        window = settings.ACTIVATION_BREAKER_WINDOW_SECONDS
        key = _key(channel, "failures")
        cache.add(key, 0, timeout=window)
        count = cache.incr(key, failures)
        if count < settings.ACTIVATION_BREAKER_FAILURES:
            return 0.0
        openings_key = _key(channel, "openings")
        cache.add(openings_key, 0, timeout=settings.ACTIVATION_BREAKER_MAX_COOLDOWN_SECONDS * 4)
        openings = cache.incr(openings_key)
        cooldown = min(
            settings.ACTIVATION_BREAKER_MAX_COOLDOWN_SECONDS,
            settings.ACTIVATION_BREAKER_COOLDOWN_SECONDS * 2 ** (openings - 1),
        )
        cache.set(_key(channel, "open_until"), time.time() + cooldown, timeout=int(cooldown) + 1)
        cache.set(key, 0, timeout=window)
        logger.warning(
            "circuit breaker of %s open for %.0f s after %s failures in a row",
            channel,
            cooldown,
            count,
        )
        return cooldown
    except Exception:  # noqa: BLE001 - the cache is down: the breaker is advisory
        return 0.0


def breaker_states(channels=("email", "sms", "push")) -> dict[str, dict]:
    """``{channel: {"state": "closed"|"open", "retry_in_seconds": s, "failures": n}}``;
    raises when the cache is unreachable (the readiness check reports it)."""
    states = {}
    for channel in channels:
        until = cache.get(_key(channel, "open_until"))
        wait = max(0.0, float(until) - time.time()) if until else 0.0
        states[channel] = {
            "state": "open" if wait > 0 else "closed",
            "retry_in_seconds": round(wait, 1),
            "failures": int(cache.get(_key(channel, "failures")) or 0),
        }
    return states
