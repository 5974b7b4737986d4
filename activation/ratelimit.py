"""Per-channel send rate limits: a token bucket shared by every worker (Redis) or, in the
embedded mode without Redis, one bucket per process.

``ACTIVATION_RATE_LIMITS[channel]`` messages per second (0 = unlimited), burst = one second of
traffic. ``rate_limit_acquire`` blocks until the tokens are granted.
"""

from __future__ import annotations

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


_local: dict[str, LocalBucket] = {}


@lru_cache(maxsize=4)
def _redis_script(url: str):
    import redis

    return redis.Redis.from_url(url).register_script(TOKEN_BUCKET_LUA)


def rate_limit_acquire(channel: str, wanted: int = 1) -> float:
    """Block until ``wanted`` tokens of ``channel`` are granted; return the seconds waited."""
    rate = float(settings.ACTIVATION_RATE_LIMITS.get(channel) or 0)
    if rate <= 0:
        return 0.0
    wanted = min(wanted, max(1, int(rate)))
    waited = 0.0
    url = settings.ACTIVATION_RATE_LIMIT_REDIS_URL
    while True:
        if url:
            wait = float(
                _redis_script(url)(
                    keys=[f"cible:ratelimit:{channel}"], args=[rate, max(1.0, rate), wanted]
                )
            )
        else:
            bucket = _local.get(channel)
            if bucket is None or bucket.rate != rate:
                bucket = _local[channel] = LocalBucket(rate)
            wait = bucket.take(wanted)
        if wait <= 0:
            return waited
        time.sleep(min(wait, 1.0))
        waited += min(wait, 1.0)
