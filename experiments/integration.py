"""Glue with activation (the app below experiments): variant assigner, deliveries, rollout.

- :func:`variants_for_run` is registered with ``activation.variants`` by ``experiments.hooks``:
  activation calls it with each chunk of a run's eligible contacts and writes the returned
  variant key on the outbox rows (``None`` → the row is skipped, reason ``holdout``).
- :func:`delivered_per_variant` counts the test's sent messages per variant for the results.
- :func:`launch_rollout_run` is the rollout hook: once a winner is decided, a new run of the
  campaign is created and prepared by activation's ``prepare_run`` task; the assigner then
  gives the winner to the contacts never assigned and nothing to the test sample.
"""

from __future__ import annotations

import logging

from django.db.models import Count
from django.utils import timezone

from experiments.models import Experiment, ExperimentStatus

logger = logging.getLogger(__name__)

ACTIVE_STATUSES = (
    ExperimentStatus.RUNNING,
    ExperimentStatus.AWAITING_DECISION,
    ExperimentStatus.ROLLING_OUT,
)


def experiment_for_campaign(campaign_id: int) -> Experiment | None:
    """The active experiment of a campaign (at most one, a database constraint)."""
    return (
        Experiment.objects.filter(campaign_id=campaign_id, status__in=ACTIVE_STATUSES)
        .select_related("winner")
        .first()
    )


def variants_for_run(*, run, contact_ids: list[int]) -> dict[int, str | None]:
    """Activation's variant assigner: ``{contact id: variant key or None}`` for one chunk.

    Campaigns without an active experiment get ``{}`` (every contact keeps the campaign's own
    message). See ``services.variant_keys_for_contacts`` for the rules.
    """
    from experiments.services import variant_keys_for_contacts

    experiment = experiment_for_campaign(run.campaign_id)
    if experiment is None:
        return {}
    # The run's own "now" (snapshot time) is the assignment time of contacts it assigns.
    return variant_keys_for_contacts(
        experiment=experiment, contact_ids=contact_ids, now=getattr(run, "created_at", None)
    )


def delivered_per_variant(experiment: Experiment) -> dict[int, int] | None:
    """Sent first-step messages per variant id during the test (runs created before the
    decision); None when the experiment has no campaign."""
    if experiment.campaign_id is None:
        return None
    from activation.models import OutboxMessage, OutboxState

    rows = OutboxMessage.objects.filter(
        run__campaign_id=experiment.campaign_id, step=0, state=OutboxState.SENT
    )
    if experiment.started_at is not None:
        rows = rows.filter(run__created_at__gte=experiment.started_at)
    if experiment.decided_at is not None:
        rows = rows.filter(run__created_at__lt=experiment.decided_at)
    by_key = dict(rows.values("variant").annotate(n=Count("pk")).values_list("variant", "n"))
    return {v.pk: by_key.get(v.key, 0) for v in experiment.variants.all()}


def campaign_audience_size(experiment: Experiment) -> int | None:
    """Contacts in the experiment's campaign audience now (None without a campaign)."""
    if experiment.campaign_id is None:
        return None
    from activation.selectors import campaign_audience

    return campaign_audience(experiment.campaign).count()


def launch_rollout_run(*, experiment: Experiment) -> int | None:
    """Create a run of the experiment's campaign to send the winner to the remainder.

    Returns the run id (None without a campaign, or when the campaign may not be launched now
    — ``campaign_launch_refusal``). Preparation and delivery happen in activation's
    ``prepare_run`` task.
    """
    if experiment.campaign_id is None:
        return None
    from activation.journeys.services import campaign_launch_refusal
    from activation.services import campaign_run_create
    from activation.tasks import prepare_run

    # The same rules as any launch: a campaign paused, archived or broken since the test is
    # not sent to the remainder behind the marketer's back.
    refusal = campaign_launch_refusal(campaign=experiment.campaign)
    if refusal is not None:
        logger.warning("experiment %s: rollout not launched: %s", experiment.pk, refusal[1])
        return None
    run = campaign_run_create(campaign=experiment.campaign, now=timezone.now())
    prepare_run.delay(run.pk)
    logger.info("experiment %s: rollout run %s created", experiment.pk, run.pk)
    return run.pk
