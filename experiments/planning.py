"""Before launch: contacts needed per variant, and the "audience too small" warning."""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.utils.translation import gettext as _

from experiments import statistics as st
from experiments.models import Experiment
from experiments.wording import number, percent


@dataclass
class SamplePlan:
    per_variant: int
    arms: int
    total_in_test: int
    audience_needed: int


def plan_sample(
    *,
    baseline_rate: float,
    relative_mde: float,
    alpha: float = 0.05,
    power: float = 0.8,
    treatments: int = 1,
    weights: list[int] | None = None,
    sample_share: float = 1.0,
) -> SamplePlan:
    """Contacts needed per variant (Holm-safe for ``treatments`` comparisons) and in total.

    ``audience_needed`` is the audience size that gives the *smallest* arm ``per_variant``
    contacts, given the weights and the share of the audience in the test.
    """
    per_variant = st.sample_size_per_variant(
        baseline_rate, relative_mde, alpha, power, comparisons=max(treatments, 1)
    )
    weights = weights or [1] * (treatments + 1)
    smallest_share = min(weights) / sum(weights)
    audience = math.ceil(per_variant / smallest_share / sample_share)
    return SamplePlan(
        per_variant=per_variant,
        arms=len(weights),
        total_in_test=per_variant * len(weights),
        audience_needed=audience,
    )


def audience_warning(*, experiment: Experiment, audience_size: int) -> str | None:
    """A (translated) warning when ``audience_size`` is too small for the experiment's MDE."""
    if experiment.baseline_rate is None:
        return None
    variants = list(experiment.variants.order_by("position", "pk"))
    treatments = sum(1 for v in variants if not v.is_control and not v.is_holdout)
    try:
        plan = plan_sample(
            baseline_rate=experiment.baseline_rate,
            relative_mde=experiment.minimum_detectable_effect,
            alpha=experiment.alpha,
            power=experiment.power,
            treatments=treatments,
            weights=[v.weight for v in variants] if variants else None,
            sample_share=experiment.effective_sample_share,
        )
    except ValueError:
        return None
    if audience_size >= plan.audience_needed:
        return None
    return _(
        "The audience (%(audience)s contacts) is too small to detect a change of %(mde)s with "
        "%(power)s power: about %(needed)s contacts are needed (%(per)s per variant)."
    ) % {
        "audience": number(audience_size),
        "mde": percent(experiment.minimum_detectable_effect),
        "power": percent(experiment.power, 0),
        "needed": number(plan.audience_needed),
        "per": number(plan.per_variant),
    }
