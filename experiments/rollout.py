"""Who sends the winner to the remainder once it is decided.

``hooks`` are called (after the decision commits) as ``hook(experiment=experiment)``;
``experiments.integration`` adds the one that launches a new run of the experiment's campaign.
"""

from collections.abc import Callable

hooks: list[Callable[..., object]] = []
