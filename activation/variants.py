"""Variant assignment hook: experiments (a higher app) registers itself here.

An assigner is ``fn(*, run, contact_ids: list[int]) -> dict[int, str | None]``: the variant key
of each contact (``None`` = holdout: the outbox row is recorded ``skipped`` with reason
``holdout``). It is called in chunks of at most ``VARIANT_CHUNK`` contact ids, in id order, and
must be deterministic for a given run and contact. Contacts missing from the returned dict get
variant ``""``. With no assigner registered, every contact gets variant ``""``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

VariantAssigner = Callable[..., dict[int, str | None]]
VARIANT_CHUNK = 20_000

_assigners: list[VariantAssigner] = []


def register_variant_assigner(fn: VariantAssigner) -> VariantAssigner:
    """Register ``fn`` (idempotent; usable as a decorator). Experiments call it in ready()."""
    if fn not in _assigners:
        _assigners.append(fn)
    return fn


def unregister_variant_assigner(fn: VariantAssigner) -> None:
    if fn in _assigners:
        _assigners.remove(fn)


def assign_variants(*, run: Any, contact_ids: list[int]) -> dict[int, str | None]:
    """Ask every registered assigner; a later assigner's answer wins for the same contact."""
    result: dict[int, str | None] = {}
    for assigner in _assigners:
        result.update(assigner(run=run, contact_ids=contact_ids))
    return result


def has_variant_assigner() -> bool:
    return bool(_assigners)


# --- variant content -------------------------------------------------------------------------
# A content provider is ``fn(*, run, variant: str) -> dict | None``: what to change in the
# message for contacts of that variant. Keys: ``template`` (a ``Template`` to use instead of the
# campaign's), any of ``subject``, ``html``, ``text``, ``sms_body``, ``push_title``,
# ``push_body``, ``push_url`` (template source replacing that field), ``channel`` (the variant's
# rows are sent on that channel, eligibility re-checked there) and ``send_time`` (a
# ``datetime.time``: the variant's rows wait for that time in each contact's zone). Channel and
# send time are read when the run is prepared; content once per ``(run, variant)`` per
# delivery batch. ``None``/``{}`` = the campaign's message. experiments registers the
# provider of the product (``experiments.hooks``).

VariantContent = Callable[..., dict | None]
_content_providers: list[VariantContent] = []


def register_variant_content(fn: VariantContent) -> VariantContent:
    """Register a content provider (idempotent; usable as a decorator)."""
    if fn not in _content_providers:
        _content_providers.append(fn)
    return fn


def unregister_variant_content(fn: VariantContent) -> None:
    if fn in _content_providers:
        _content_providers.remove(fn)


def variant_content(*, run: Any, variant: str) -> dict:
    """Overrides for ``variant`` of ``run`` from every provider (later providers win)."""
    content: dict = {}
    for provider in _content_providers:
        content.update(provider(run=run, variant=variant) or {})
    return content


# --- experiment links ------------------------------------------------------------------------
# A link provider is ``fn(*, campaign_id: int) -> list[tuple[str, str]]``: ``(name, url)`` of
# the results page of each experiment the campaign carries, for its campaign report.
# experiments registers the provider of the product (``experiments.hooks``).

ExperimentLinks = Callable[..., list[tuple[str, str]]]
_link_providers: list[ExperimentLinks] = []


def register_experiment_links(fn: ExperimentLinks) -> ExperimentLinks:
    """Register a link provider (idempotent; usable as a decorator)."""
    if fn not in _link_providers:
        _link_providers.append(fn)
    return fn


def experiment_links(*, campaign_id: int) -> list[tuple[str, str]]:
    """``(name, results URL)`` of the campaign's experiments, from every provider."""
    links: list[tuple[str, str]] = []
    for provider in _link_providers:
        links.extend(provider(campaign_id=campaign_id) or [])
    return links
