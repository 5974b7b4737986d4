"""Thin Celery wrappers around experiments.services."""

from celery import shared_task

from experiments import services


@shared_task(name="experiments.tasks.decide_auto_winners")
def decide_auto_winners() -> int:
    """Beat: decide every auto-winner experiment whose wait is over; returns decisions made."""
    return len(services.auto_winner_due())


@shared_task(name="experiments.tasks.refresh_outcomes")
def refresh_outcomes() -> int:
    """Beat: full recompute of assignment outcomes (catches events committed late)."""
    return services.outcomes_refresh_running()


@shared_task(name="experiments.tasks.catch_up_outcomes")
def catch_up_outcomes() -> int:
    """Beat: outcomes of the contacts with events stored since each experiment's watermark."""
    return services.outcomes_refresh_running(full=False)
