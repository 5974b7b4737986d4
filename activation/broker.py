"""What an unreachable broker looks like to a producer (kombu wraps most of it; a Redis or
socket error can still surface directly)."""

from __future__ import annotations

from kombu.exceptions import KombuError

BROKER_ERRORS: tuple[type[BaseException], ...] = (KombuError, OSError, ConnectionError)
try:  # the redis client is installed with the Redis transport
    import redis

    BROKER_ERRORS += (redis.RedisError,)
except ImportError:  # pragma: no cover
    pass
