"""Cible's Prometheus metrics, read at scrape time (``/metrics``, next to django-prometheus'
request and database metrics).

Gauges come from the database (the outbox's open rows and oldest due message, beat and worker
heartbeat ages, segment computation durations) or the cache (breaker state); counters of
messages by channel and outcome and of task failures are the shared totals every worker adds to
the cache (``activation.metrics``). A probe that fails is reported as
``cible_metrics_probe_up{probe=…} 0`` — the endpoint itself never fails.
"""

from __future__ import annotations

import logging

from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

logger = logging.getLogger(__name__)


class CibleCollector:
    """A custom collector registered once in the default registry (``ops.apps``)."""

    def collect(self):
        up = GaugeMetricFamily(
            "cible_metrics_probe_up", "1 when the probe could read its source", labels=["probe"]
        )
        for name, probe in (
            ("outbox", self._outbox),
            ("heartbeats", self._heartbeats),
            ("segments", self._segments),
            ("counters", self._counters),
            ("breakers", self._breakers),
        ):
            try:
                families = list(probe())
            except Exception as exc:  # noqa: BLE001 - a down dependency is a metric, not a 500
                logger.warning("metrics probe %s failed: %s", name, exc)
                up.add_metric([name], 0)
                continue
            up.add_metric([name], 1)
            yield from families
        yield up

    def describe(self):
        return []  # collected lazily at scrape time (no database access at registration)

    def _outbox(self):
        from activation.selectors import outbox_oldest_due, outbox_open_counts

        now = timezone.now()
        rows = GaugeMetricFamily(
            "cible_outbox_messages",
            "Outbox rows still in flight, by channel and state",
            labels=["channel", "state"],
        )
        counts = outbox_open_counts()
        for channel in ("email", "sms", "push"):
            for state in ("queued", "deferred", "sending"):
                rows.add_metric([channel, state], counts.get((channel, state), 0))
        yield rows
        oldest = GaugeMetricFamily(
            "cible_outbox_oldest_due_age_seconds",
            "Age of the oldest due (queued or deferred) message, 0 when none",
            labels=["channel"],
        )
        for channel, at in outbox_oldest_due(now=now).items():
            oldest.add_metric([channel], max(0.0, (now - at).total_seconds()) if at else 0.0)
        yield oldest

    def _heartbeats(self):
        from ops.models import WorkerHeartbeat

        now = timezone.now()
        ages = GaugeMetricFamily(
            "cible_heartbeat_age_seconds",
            "Seconds since beat / a worker (host, or host/queue) last recorded its heartbeat",
            labels=["worker"],
        )
        for worker, seen in WorkerHeartbeat.objects.values_list("worker", "last_seen_at"):
            ages.add_metric([worker], max(0.0, (now - seen).total_seconds()))
        yield ages

    def _segments(self):
        from segments.models import Segment

        durations = GaugeMetricFamily(
            "cible_segment_compute_seconds",
            "Duration of the last computation of each active segment",
            labels=["segment"],
        )
        rows = Segment.objects.filter(is_active=True, last_compute_ms__isnull=False)
        for name, ms in rows.values_list("name", "last_compute_ms"):
            durations.add_metric([name], ms / 1000.0)
        yield durations

    def _counters(self):
        from activation.metrics import metrics_outcome_totals, metrics_task_failure_totals

        messages = CounterMetricFamily(
            "cible_messages",
            "Delivery outcomes by channel: sent, retryable, permanent, gave_up, "
            "skipped_consent_withdrawn",
            labels=["channel", "outcome"],
        )
        for key, total in metrics_outcome_totals().items():
            channel, _sep, outcome = key.partition(":")
            messages.add_metric([channel, outcome], total)
        yield messages
        failures = CounterMetricFamily(
            "cible_task_failures", "Celery tasks that ended in an exception", labels=["task"]
        )
        for task, total in metrics_task_failure_totals().items():
            failures.add_metric([task], total)
        yield failures

    def _breakers(self):
        from activation.breaker import breaker_states

        gauge = GaugeMetricFamily(
            "cible_provider_breaker_open",
            "1 while the channel's circuit breaker is open (provider refusing)",
            labels=["channel"],
        )
        for channel, state in breaker_states().items():
            gauge.add_metric([channel], 1 if state["state"] == "open" else 0)
        yield gauge


_registered = False


def metrics_register() -> None:
    """Register the collector in prometheus_client's default registry (once per process)."""
    global _registered
    if _registered:
        return
    from prometheus_client import REGISTRY

    REGISTRY.register(CibleCollector())
    _registered = True
