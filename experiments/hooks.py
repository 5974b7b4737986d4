"""Wiring with activation, imported only by ``ExperimentsConfig.ready``.

Registers with ``activation.variants``:

- the variant assigner (:func:`experiments.integration.variants_for_run`);
- the content provider :func:`variant_overrides`, which turns a :class:`Variant`'s override
  fields into what activation changes in that variant's messages — so an A/B test sends what
  each variant says;

and the rollout hook (:func:`experiments.integration.launch_rollout_run`).
"""

from __future__ import annotations

from activation.models import MessageChannel
from experiments.models import Variant


def variant_message_overrides(variant: Variant, *, campaign_channel: str) -> dict:
    """What ``variant`` changes in the message (contract of ``activation.variants``):

    - ``template``: the variant's template, sent instead of the campaign's (all its locales);
    - ``channel``: the variant's channel when it differs from the campaign's;
    - ``subject``: the email subject, or the push title;
    - ``content``: the email HTML body (plain text then derived from it), the SMS body or the
      push body, for the variant's channel;
    - ``send_time``: the contact's local time the variant's messages wait for.
    Blank fields keep the campaign's value."""
    channel = variant.channel or campaign_channel
    overrides: dict = {}
    if variant.template_id is not None:
        overrides["template"] = variant.template
    if channel != campaign_channel:
        overrides["channel"] = channel
    if variant.subject:
        if channel == MessageChannel.EMAIL:
            overrides["subject"] = variant.subject
        elif channel == MessageChannel.PUSH:
            overrides["push_title"] = variant.subject
    if variant.content:
        if channel == MessageChannel.EMAIL:
            overrides.update(html=variant.content, text="")
        elif channel == MessageChannel.SMS:
            overrides["sms_body"] = variant.content
        else:
            overrides["push_body"] = variant.content
    if variant.send_time is not None:
        overrides["send_time"] = variant.send_time
    return overrides


def variant_overrides(*, run, variant: str) -> dict:
    """Activation's content provider: the overrides of ``variant`` for ``run``."""
    from experiments.selectors import variant_of_run

    found = variant_of_run(
        campaign_id=run.campaign_id, key=variant, run_created_at=getattr(run, "created_at", None)
    )
    if found is None:
        return {}
    return variant_message_overrides(found, campaign_channel=run.campaign.channel)


def experiment_results_links(*, campaign_id: int) -> list[tuple[str, str]]:
    """``(name, results page URL)`` of every experiment of the campaign, newest first."""
    from django.urls import reverse

    from experiments.models import Experiment

    return [
        (name, reverse("experiments:results", args=[pk]))
        for pk, name in Experiment.objects.filter(campaign_id=campaign_id)
        .order_by("-created_at", "-pk")
        .values_list("pk", "name")
    ]


def register_with_activation() -> None:
    """Register the assigner, the content provider and the rollout hook (idempotent)."""
    from activation.variants import (
        register_experiment_links,
        register_variant_assigner,
        register_variant_content,
    )
    from experiments import rollout
    from experiments.integration import launch_rollout_run, variants_for_run

    register_variant_assigner(variants_for_run)
    register_variant_content(variant_overrides)
    register_experiment_links(experiment_results_links)
    if launch_rollout_run not in rollout.hooks:
        rollout.hooks.append(launch_rollout_run)
