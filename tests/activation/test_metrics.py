"""/metrics: Prometheus exposition with django-prometheus' request metrics and Cible's own
gauges and counters (outbox by state, oldest due age, messages by channel and outcome,
segment computation durations, task failures, breaker state)."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families


@pytest.fixture(autouse=True)
def _empty_cache():
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.mark.django_db
def test_metrics_expose_outbox_outcomes_segments_and_task_failures(
    client, smtp_settings, consenting, make_campaign
):
    from activation.metrics import metrics_task_failure_count
    from activation.services import campaign_run_launch, outbox_deliver_pending
    from segments.models import Segment
    from tests.activation.conftest import NOW

    ok, refused, waiting = consenting(3)
    smtp_settings.rcpt_replies[refused.email] = ["550 no such user"]
    smtp_settings.rcpt_replies[waiting.email] = ["451 later"]
    run = campaign_run_launch(campaign=make_campaign([ok, refused, waiting]), now=NOW)
    outbox_deliver_pending(channel="email", budget_seconds=30)
    Segment.objects.filter(pk=run.campaign.segments.get().pk).update(last_compute_ms=1250)
    metrics_task_failure_count("activation.tasks.deliver")

    response = client.get("/metrics")

    assert response.status_code == 200
    values = samples(response.content.decode())
    assert values[("cible_outbox_messages", (("channel", "email"), ("state", "deferred")))] == 1
    assert values[("cible_messages_total", (("channel", "email"), ("outcome", "sent")))] == 1
    assert values[("cible_messages_total", (("channel", "email"), ("outcome", "permanent")))] == 1
    assert values[("cible_messages_total", (("channel", "email"), ("outcome", "retryable")))] == 1
    segment = run.campaign.segments.get().name
    assert values[("cible_segment_compute_seconds", (("segment", segment),))] == 1.25
    assert values[("cible_task_failures_total", (("task", "activation.tasks.deliver"),))] == 1
    assert values[("cible_provider_breaker_open", (("channel", "email"),))] == 0
    assert values[("cible_metrics_probe_up", (("probe", "outbox"),))] == 1
    assert any(name.startswith("django_http_requests") for name, _labels in values)


@pytest.mark.django_db
def test_metrics_token_when_configured(client, settings):
    settings.OPS_METRICS_TOKEN = "s3cret"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret").status_code == 200
