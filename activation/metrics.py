"""Delivery counters shared by every worker: totals per ``channel:outcome`` kept in the default
cache (Redis in production), added once per delivery task rather than once per message, and
read by the Prometheus endpoint (``ops.metrics``). With a per-process cache (embedded mode) the
web process only sees its own counts; the outbox gauges are read from the database anyway."""

from __future__ import annotations

import logging

from django.core.cache import cache

logger = logging.getLogger(__name__)

COUNTER_PREFIX = "cible:metrics:messages:"
COUNTER_INDEX = "cible:metrics:messages:index"
TASK_FAILURES_PREFIX = "cible:metrics:task_failures:"
TASK_FAILURES_INDEX = "cible:metrics:task_failures:index"


def _counter_add(prefix: str, index: str, name: str, count: int) -> None:
    key = prefix + name
    if cache.add(key, count, timeout=None):
        names = set(cache.get(index) or ())
        if name not in names:
            cache.set(index, sorted(names | {name}), timeout=None)
    else:
        cache.incr(key, count)


def metrics_outcomes_count(outcomes: dict[str, int]) -> None:
    """Add ``{"email:sent": n, "email:retryable": m, …}`` to the shared counters; a cache
    outage loses these counts (logged), never the delivery."""
    try:
        for name, count in outcomes.items():
            if count:
                _counter_add(COUNTER_PREFIX, COUNTER_INDEX, name, count)
    except Exception as exc:  # noqa: BLE001 - metrics must not break delivery
        logger.warning("delivery counters not updated (%s)", exc)


def metrics_task_failure_count(task_name: str) -> None:
    try:
        _counter_add(TASK_FAILURES_PREFIX, TASK_FAILURES_INDEX, task_name, 1)
    except Exception as exc:  # noqa: BLE001
        logger.warning("task failure counter not updated (%s)", exc)


def _counters(prefix: str, index: str) -> dict[str, int]:
    names = cache.get(index) or ()
    values = cache.get_many([prefix + name for name in names])
    return {name: int(values.get(prefix + name) or 0) for name in names}


def metrics_outcome_totals() -> dict[str, int]:
    """``{"email:sent": n, …}`` since the cache was last emptied."""
    return _counters(COUNTER_PREFIX, COUNTER_INDEX)


def metrics_task_failure_totals() -> dict[str, int]:
    return _counters(TASK_FAILURES_PREFIX, TASK_FAILURES_INDEX)
