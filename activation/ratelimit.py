"""Per-channel send rate limits: a token bucket shared by every worker (Redis) or, in the
embedded mode without Redis, one bucket per process.

``ACTIVATION_RATE_LIMITS[channel]`` messages per second (0 = unlimited), burst = one second of
traffic. ``rate_limit_acquire`` blocks until the tokens are granted.

When Redis is unreachable the limiter degrades instead of failing the delivery: each process
falls back to a local bucket at ``rate × ACTIVATION_RATE_LIMIT_FALLBACK_SHARE`` (default: its
share of ``ACTIVATION_DELIVERY_TASKS`` parallel tasks, so the fleet stays at or under the
limit) and tries Redis again every ``ACTIVATION_RATE_LIMIT_RETRY_SECONDS``.
"""

from __future__ import annotations

import logging
import threading
import time
from functools import lru_cache

from django.conf import settings

# KEYS[1] bucket key; ARGV: rate per second, capacity, tokens wanted.
# Returns the seconds to wait (0 when granted). Uses the Redis clock so workers agree.
TOKEN_BUCKET_LUA = """
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) + tonumber(now_parts[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
tokens = math.min(capacity, tokens + (now - at) * rate)
local wait = 0
if tokens >= wanted then
  tokens = tokens - wanted
else
  wait = (wanted - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
redis.call('EXPIRE', KEYS[1], math.ceil(capacity / rate) + 60)
return tostring(wait)
"""


class LocalBucket:
    def __init__(self, rate: float):
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.at = time.monotonic()
        self.lock = threading.Lock()

    def take(self, wanted: int) -> float:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
            self.at = now
            if self.tokens >= wanted:
                self.tokens -= wanted
                return 0.0
            return (wanted - self.tokens) / self.rate


logger = logging.getLogger(__name__)

_local: dict[str, LocalBucket] = {}
_fallback: dict[str, LocalBucket] = {}
_redis_down_until: dict[str, float] = {}  # url -> monotonic time of the next Redis attempt


@lru_cache(maxsize=4)
def _redis_script(url: str):
    import redis

    # Short timeouts: a stalled Redis must not hold a worker longer than a provider would.
    client = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=1.0)
    return client.register_script(TOKEN_BUCKET_LUA)


def _bucket(store: dict[str, LocalBucket], channel: str, rate: float) -> LocalBucket:
    bucket = store.get(channel)
    if bucket is None or bucket.rate != rate:
        bucket = store[channel] = LocalBucket(rate)
    return bucket


def _redis_wait(url: str, channel: str, rate: float, wanted: int) -> float | None:
    """Seconds to wait according to the shared bucket; ``None`` when Redis is unreachable."""
    import redis

    if time.monotonic() < _redis_down_until.get(url, 0.0):
        return None
    try:
        wait = _redis_script(url)(
            keys=[f"cible:ratelimit:{channel}"], args=[rate, max(1.0, rate), wanted]
        )
    except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
        if url not in _redis_down_until:
            logger.warning(
                "rate limiter: Redis unreachable (%s); %s falls back to a local bucket",
                exc,
                channel,
            )
        _redis_down_until[url] = time.monotonic() + settings.ACTIVATION_RATE_LIMIT_RETRY_SECONDS
        return None
    if _redis_down_until.pop(url, None) is not None:
        logger.info("rate limiter: Redis is back; %s uses the shared bucket again", channel)
    return float(wait)


def rate_limit_acquire(channel: str, wanted: int = 1) -> float:
    """Block until ``wanted`` tokens of ``channel`` are granted; return the seconds waited."""
    rate = float(settings.ACTIVATION_RATE_LIMITS.get(channel) or 0)
    if rate <= 0:
        return 0.0
    wanted = min(wanted, max(1, int(rate)))
    waited = 0.0
    url = settings.ACTIVATION_RATE_LIMIT_REDIS_URL
    while True:
        wait = _redis_wait(url, channel, rate, wanted) if url else None
        if wait is None and url:
            share = settings.ACTIVATION_RATE_LIMIT_FALLBACK_SHARE
            local_rate = (
                rate * share if share > 0 else rate / max(1, settings.ACTIVATION_DELIVERY_TASKS)
            )
            wait = _bucket(_fallback, channel, local_rate).take(
                min(wanted, max(1, int(local_rate)))
            )
        elif wait is None:
            wait = _bucket(_local, channel, rate).take(wanted)
        if wait <= 0:
            return waited
        time.sleep(min(wait, 1.0))
        waited += min(wait, 1.0)
