"""Everything that writes or decides in experiments: start, assignment, targeting, auto-winner.

Assignment contract: a contact's variant is ``hash(salt, contact id)`` mapped onto the variants'
cumulative weights (``experiments.assignment``), computed once and stored in ``Assignment``
(bulk insert, conflicts ignored): later calls — other runs, other workers, after a weight edit —
read the stored row, so a contact keeps its variant for the life of the experiment.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.db import connection, transaction
from django.db.models import Min, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from contacts.models import Contact
from experiments.assignment import (
    bucket_boundaries,
    buckets_for,
    in_test_sample,
    variant_index_for,
)
from experiments.models import (
    Assignment,
    DecisionKind,
    DecisionLog,
    Experiment,
    ExperimentKind,
    ExperimentStatus,
    Fallback,
    Variant,
)
from experiments.outcomes import outcomes_refresh

logger = logging.getLogger(__name__)

CHUNK = 20_000


class ExperimentError(ValueError):
    """An experiment cannot do what was asked; the message says why (translated)."""


def _ordered_variants(experiment: Experiment) -> list[Variant]:
    return list(experiment.variants.order_by("position", "pk"))


def experiment_validate(*, experiment: Experiment) -> list[str]:
    """Reasons (translated) why the experiment cannot start; empty when it can."""
    variants = _ordered_variants(experiment)
    problems = []
    if len(variants) < 2:
        problems.append(_("An experiment needs at least two variants."))
    if sum(v.is_control for v in variants) != 1:
        problems.append(_("Exactly one variant must be the control."))
    treatments = [v for v in variants if not v.is_control and not v.is_holdout]
    if experiment.auto_winner and not treatments:
        problems.append(_("Auto-winner needs at least one variant to compare with the control."))
    if experiment.kind == ExperimentKind.TARGETING and any(v.is_holdout for v in variants):
        problems.append(_("A targeting experiment compares strategies; it has no holdout."))
    for variant in variants:
        for message in variant_problems(variant=variant, campaign=experiment.campaign).values():
            problems.append(
                _("Variant %(key)s: %(problem)s") % {"key": variant.key, "problem": message}
            )
    return problems


def variant_problems(*, variant: Variant, campaign: Any) -> dict[str, str]:
    """Per-field reasons (translated) why ``variant``'s overrides cannot be sent through
    ``campaign`` (None: only the template sources are checked); empty when they can."""
    from activation.models import MessageChannel
    from activation.rendering import source_error, template_lacks_content_for
    from activation.selectors import in_quiet_window

    problems: dict[str, str] = {}
    for name in ("subject", "content"):
        error = source_error(getattr(variant, name))
        if error:
            problems[name] = error
    if campaign is None:
        return problems
    channel = variant.channel or campaign.channel
    channel_label = MessageChannel(channel).label
    template = variant.template if variant.template_id is not None else campaign.template
    if template.channel != channel:
        problems["template"] = _(
            "The template “%(template)s” is for %(template_channel)s; this variant sends "
            "%(channel)s. Choose a template of that channel."
        ) % {
            "template": template,
            "template_channel": MessageChannel(template.channel).label,
            "channel": channel_label,
        }
    elif not variant.content:
        missing = template_lacks_content_for(template, channel)
        if missing:
            problems["template"] = _(
                "The template “%(template)s” has no %(channel)s content (%(locales)s): "
                "choose another template or write the variant's content."
            ) % {
                "template": template,
                "channel": channel_label,
                "locales": ", ".join(missing) if missing != ["*"] else _("no version"),
            }
    if variant.subject and channel == MessageChannel.SMS:
        problems["subject"] = _("An SMS has no subject: leave it blank or send email or push.")
    if variant.send_time is not None and in_quiet_window(
        variant.send_time, campaign.quiet_hours_start, campaign.quiet_hours_end
    ):
        problems["send_time"] = _(
            "%(time)s falls in the campaign's quiet hours (%(start)s–%(end)s)."
        ) % {
            "time": variant.send_time.strftime("%H:%M"),
            "start": campaign.quiet_hours_start.strftime("%H:%M"),
            "end": campaign.quiet_hours_end.strftime("%H:%M"),
        }
    return problems


def experiment_start(*, experiment: Experiment, now: datetime | None = None) -> Experiment:
    """Move a draft experiment to running. Raises :class:`ExperimentError` if it is invalid."""
    if experiment.status != ExperimentStatus.DRAFT:
        raise ExperimentError(_("Only a draft experiment can be started."))
    problems = experiment_validate(experiment=experiment)
    if problems:
        raise ExperimentError(" ".join(problems))
    experiment.status = ExperimentStatus.RUNNING
    experiment.started_at = now or timezone.now()
    experiment.save(update_fields=["status", "started_at"])
    return experiment


def experiment_stop(*, experiment: Experiment, now: datetime | None = None) -> Experiment:
    """End a running (or waiting) experiment without sending any variant to the remainder:
    it becomes *completed*, no new contact is assigned, its results stay readable. Raises
    :class:`ExperimentError` when it is not running or waiting for a decision."""
    if experiment.status not in (ExperimentStatus.RUNNING, ExperimentStatus.AWAITING_DECISION):
        raise ExperimentError(_("Only a running experiment can be stopped."))
    experiment.status = ExperimentStatus.COMPLETED
    experiment.decided_at = now or timezone.now()
    experiment.save(update_fields=["status", "decided_at"])
    return experiment


def winner_to_send(*, experiment: Experiment, now: datetime | None = None):
    """``(variant, reason)``: the variant the results declare the significant winner (the
    auto-winner's rule: Holm-adjusted, healthy sample ratio, no guardrail harmed), or
    ``(None, why not)`` — also when the experiment is not running."""
    from experiments.results import experiment_results

    if experiment.status not in (ExperimentStatus.RUNNING, ExperimentStatus.AWAITING_DECISION):
        return None, _("The experiment is not running: there is no winner to send.")
    recommendation = experiment_results(
        experiment=experiment, now=now or timezone.now()
    ).auto_winner_recommendation()
    if recommendation.variant_key is None:
        return None, recommendation.reason
    return experiment.variants.get(key=recommendation.variant_key), recommendation.reason


# --------------------------------------------------------------------------------------------
# Assignment
# --------------------------------------------------------------------------------------------


def _stored_assignments(experiment: Experiment, ids: np.ndarray) -> dict[int, int]:
    out: dict[int, int] = {}
    for start in range(0, ids.size, 5_000):  # stay under SQLite's bound-parameter limit
        rows = Assignment.objects.filter(
            experiment=experiment, contact_id__in=ids[start : start + 5_000].tolist()
        )
        out.update(rows.values_list("contact_id", "variant_id"))
    return out


def _existing_contacts(ids: np.ndarray) -> np.ndarray:
    found: list[int] = []
    for start in range(0, ids.size, 5_000):  # stay under SQLite's bound-parameter limit
        found.extend(
            Contact.objects.filter(pk__in=ids[start : start + 5_000].tolist()).values_list(
                "pk", flat=True
            )
        )
    return np.asarray(found, dtype=np.int64)


def _variant_case_sql(variants: list[Variant], bucket: str) -> str:
    """SQL ``CASE`` mapping a bucket column to its variant's id (``variant_index_for``)."""
    bounds = bucket_boundaries([v.weight for v in variants])
    whens = " ".join(
        f"WHEN {bucket} < {int(bound)} THEN {int(v.pk)}"
        for bound, v in zip(bounds[:-1], variants[:-1], strict=True)
    )
    return f"CASE {whens} ELSE {int(variants[-1].pk)} END"


def _assignments_ensure_postgresql(
    *,
    experiment: Experiment,
    ids: np.ndarray,
    targeted: np.ndarray,
    variants: list[Variant],
    now: datetime,
) -> tuple[np.ndarray, np.ndarray]:
    """PostgreSQL: ``(contact ids, variant ids)`` stored for the test-sample contacts of
    ``ids`` (sorted, unique), inserting the missing ones in one statement.

    numpy keeps the test sample and computes each contact's bucket (``buckets_for``: 1M ids in
    a few hundredths of a second, against ~2 s for the same hash in SQL); the ids, targeting
    flags and buckets travel by binary COPY into a temporary table, and one
    ``INSERT … SELECT … ON CONFLICT DO NOTHING`` maps each bucket to its variant and inserts, in
    ascending contact order, the contacts that exist; then the stored rows are read back by
    binary COPY: the inserted ones by the statement's ``RETURNING``, and when some contacts of
    the sample were not inserted, every stored row of the sample (the stored row is the truth:
    earlier calls, other workers)."""
    from segments.binary_copy import copy_in_rows, copy_out_float_matrix

    table = Assignment._meta.db_table
    source = f"experiments_assign_{uuid.uuid4().hex[:16]}"
    # Only the test sample is assigned; a row stored while the share was larger stays out of
    # the test too (the read-back below joins the sample's ids only).
    sampled = in_test_sample(experiment.salt, ids, experiment.effective_sample_share)
    ids, targeted = ids[sampled], targeted[sampled]
    if ids.size == 0:
        return ids, ids
    buckets = buckets_for(experiment.salt, ids)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE {source} "
            "(c bigint NOT NULL, t boolean NOT NULL, b integer NOT NULL)"
        )
        try:
            copy_in_rows(
                cursor.cursor,
                f"{source} (c, t, b)",
                [(">i8", ids), ("u1", targeted), (">i4", buckets)],
            )
            cursor.execute(f"ANALYZE {source}")
            # COPY of the INSERT's RETURNING: the new rows come back in the same statement.
            # Only contacts that exist are assigned (the table has no database foreign keys).
            stored_ids, stored = copy_out_float_matrix(
                cursor.cursor,
                f"INSERT INTO {table} "  # noqa: S608 — identifiers and integers only
                "(experiment_id, contact_id, variant_id, bucket, targeted, assigned_at, revenue) "
                f"SELECT %s, s.c, {_variant_case_sql(variants, 's.b')}, s.b, s.t, %s, 0 "
                f"FROM {source} AS s WHERE EXISTS "
                f"(SELECT 1 FROM {Contact._meta.db_table} AS ct WHERE ct.id = s.c) "
                "ORDER BY s.c ON CONFLICT (experiment_id, contact_id) DO NOTHING "
                "RETURNING contact_id, variant_id::float8",
                1,
                [experiment.pk, now],
            )
            if stored_ids.size < ids.size:
                # Some were stored before (or by another worker meanwhile), or do not exist:
                # read every stored row of the sample.
                stored_ids, stored = copy_out_float_matrix(
                    cursor.cursor,
                    f"SELECT a.contact_id, a.variant_id::float8 FROM {source} AS s "  # noqa: S608
                    f"JOIN {table} AS a ON a.contact_id = s.c "
                    f"WHERE a.experiment_id = {int(experiment.pk)}",
                    1,
                )
        finally:
            cursor.execute(f"DROP TABLE {source}")
    return stored_ids, stored[:, 0].astype(np.int64)


def assignments_ensure(
    *,
    experiment: Experiment,
    contact_ids: Iterable[int],
    now: datetime | None = None,
    targeted: np.ndarray | None = None,
) -> dict[int, Variant]:
    """Give each contact of the *test sample* its variant and store it; return them all.

    Contacts outside the test sample of an auto-winner experiment (``sample_share``) are not
    assigned and are absent from the result. Already-assigned contacts keep their stored
    variant. ``targeted`` (same length as ``contact_ids``, targeting experiments) records
    whether the arm's strategy selects the contact; it is only written for new rows.
    Set-based: on PostgreSQL one ``INSERT … SELECT … ON CONFLICT DO NOTHING`` hashing in SQL
    (``_assignments_ensure_postgresql``); elsewhere numpy bucketing per chunk of 20,000 and
    ``bulk_create(ignore_conflicts=True)``. Both give every contact the same variant.
    """
    ids = np.asarray(list(contact_ids) if not isinstance(contact_ids, np.ndarray) else contact_ids)
    ids = ids.astype(np.int64)
    # Sorted and unique: concurrent workers insert in the same (ascending) order, so their
    # uniqueness checks wait on each other instead of deadlocking.
    if targeted is not None:
        ids, first = np.unique(ids, return_index=True)
        targeted = np.asarray(targeted)[first].astype(bool)
    else:
        ids = np.unique(ids)
        targeted = np.ones(ids.size, dtype=bool)
    variants = _ordered_variants(experiment)
    if len(variants) < 2:
        raise ExperimentError(_("An experiment needs at least two variants."))
    by_pk = {v.pk: v for v in variants}
    now = now or timezone.now()
    if ids.size == 0:
        return {}
    if connection.vendor == "postgresql":
        stored_ids, stored_variants = _assignments_ensure_postgresql(
            experiment=experiment, ids=ids, targeted=targeted, variants=variants, now=now
        )
        return dict(
            zip(stored_ids.tolist(), map(by_pk.__getitem__, stored_variants.tolist()), strict=True)
        )
    weights = [v.weight for v in variants]
    variant_pks = np.array([v.pk for v in variants], dtype=np.int64)
    result: dict[int, Variant] = {}
    for start in range(0, ids.size, CHUNK):
        chunk = ids[start : start + CHUNK]
        # Only contacts that exist are assigned (the table has no database foreign keys).
        sampled = in_test_sample(
            experiment.salt, chunk, experiment.effective_sample_share
        ) & np.isin(chunk, _existing_contacts(chunk))
        chunk_ids = chunk[sampled]
        if chunk_ids.size == 0:
            continue
        # Insert every sampled contact, conflicts ignored (already assigned), then read
        # back: the stored row is the truth.
        buckets = buckets_for(experiment.salt, chunk_ids)
        index = variant_index_for(buckets, weights)
        Assignment.objects.bulk_create(
            [
                Assignment(
                    experiment_id=experiment.pk,
                    contact_id=int(cid),
                    variant_id=int(vid),
                    bucket=int(b),
                    targeted=bool(t),
                    assigned_at=now,
                )
                for cid, vid, b, t in zip(
                    chunk_ids,
                    variant_pks[index],
                    buckets,
                    targeted[start : start + CHUNK][sampled],
                    strict=True,
                )
            ],
            ignore_conflicts=True,
            batch_size=1000,
        )
        stored = _stored_assignments(experiment, chunk_ids)
        result.update({cid: by_pk[vid] for cid, vid in stored.items()})
    return result


def assign_variant(
    *, experiment: Experiment, contact_id: int, now: datetime | None = None
) -> Variant | None:
    """The stored (or newly stored) variant of one contact; None outside the test sample."""
    return assignments_ensure(experiment=experiment, contact_ids=[contact_id], now=now).get(
        contact_id
    )


def targeting_assign(
    *,
    experiment: Experiment,
    audiences: Mapping[str, QuerySet | Iterable[int]],
    now: datetime | None = None,
) -> dict[int, Variant]:
    """Randomise the union of the arms' audiences into the arms (targeting experiment).

    ``audiences`` maps each variant key to the contact IDs its strategy selects (a queryset of
    IDs, e.g. ``segment.members.values_list("contact_id", flat=True)``, or any iterable). Every
    contact of the union is assigned an arm by the usual hash; ``targeted`` records whether that
    arm's strategy selects the contact. Analysis is per assigned contact (intention to treat),
    so the comparison is not biased by whom each strategy selects; only targeted contacts are
    sent the arm's message.
    """
    if experiment.kind != ExperimentKind.TARGETING:
        raise ExperimentError(_("Only a targeting experiment randomises audiences."))
    variants = _ordered_variants(experiment)
    keys = {v.key for v in variants}
    if set(audiences) != keys:
        raise ExperimentError(
            _("Give one audience per variant (%(keys)s).") % {"keys": ", ".join(sorted(keys))}
        )
    members = {
        key: np.unique(np.fromiter((int(i) for i in ids), dtype=np.int64))
        for key, ids in audiences.items()
    }
    union = np.unique(np.concatenate(list(members.values()))) if members else np.array([])
    if union.size == 0:
        return {}
    weights = [v.weight for v in variants]
    arm = variant_index_for(buckets_for(experiment.salt, union), weights)
    targeted = np.zeros(union.size, dtype=bool)
    for index, variant in enumerate(variants):
        in_arm = arm == index
        targeted[in_arm] = np.isin(union[in_arm], members[variant.key])
    return assignments_ensure(experiment=experiment, contact_ids=union, now=now, targeted=targeted)


def variant_keys_for_contacts(
    *, experiment: Experiment, contact_ids: list[int], now: datetime | None = None
) -> dict[int, str | None]:
    """What activation sends each contact: a variant key, or None (receives nothing now).

    - Running: test-sample contacts get their variant (None for the holdout, and for contacts
      of a targeting arm whose strategy does not select them); contacts outside the sample of
      an auto-winner experiment get None (they wait for the decision).
    - Rolling out / completed with a winner: the remainder (contacts never assigned) gets the
      winner; contacts of the test sample get None (they already received their variant).
    - Draft or awaiting the marketer's decision: None for everyone.
    """
    ids = [int(i) for i in contact_ids]
    out: dict[int, str | None] = dict.fromkeys(ids)
    if experiment.status == ExperimentStatus.RUNNING:
        assigned = assignments_ensure(experiment=experiment, contact_ids=ids, now=now)
        if experiment.kind == ExperimentKind.TARGETING:
            untargeted = set(
                Assignment.objects.filter(
                    experiment=experiment, contact_id__in=list(assigned), targeted=False
                ).values_list("contact_id", flat=True)
            )
        else:
            untargeted = set()
        for cid, variant in assigned.items():
            if not variant.is_holdout and cid not in untargeted:
                out[cid] = variant.key
    elif experiment.winner_id and experiment.status in (
        ExperimentStatus.ROLLING_OUT,
        ExperimentStatus.COMPLETED,
    ):
        winner_key = experiment.winner.key
        already = set()
        for start in range(0, len(ids), CHUNK):
            already.update(
                Assignment.objects.filter(
                    experiment=experiment, contact_id__in=ids[start : start + CHUNK]
                ).values_list("contact_id", flat=True)
            )
        for cid in ids:
            if cid not in already:
                out[cid] = winner_key
    return out


def assignments_move_merged(*, survivor_id: int, merged_ids: list[int]) -> int:
    """After a contact merge: the survivor keeps its own assignments; for experiments where it
    had none, it takes the oldest assignment of the merged contacts; the others are deleted (a
    contact is counted once per experiment). Returns the number of rows moved."""
    with transaction.atomic():
        taken = Assignment.objects.filter(contact_id=survivor_id).values("experiment_id")
        candidates = Assignment.objects.filter(contact_id__in=merged_ids).exclude(
            experiment_id__in=taken
        )
        keep = (
            candidates.values("experiment_id")
            .annotate(first=Min("pk"))
            .values_list("first", flat=True)
        )
        moved = Assignment.objects.filter(pk__in=list(keep)).update(contact_id=survivor_id)
        Assignment.objects.filter(contact_id__in=merged_ids).delete()
        # The survivor now owns the merged contacts' events: recompute its outcomes.
        for experiment in Experiment.objects.filter(assignments__contact_id=survivor_id):
            outcomes_refresh(experiment=experiment, contact_ids=[survivor_id])
    return moved


def outcomes_refresh_running(*, now: datetime | None = None, full: bool = True) -> int:
    """Outcome refresh of every experiment neither draft nor completed (beat); rows written.

    ``full`` (hourly) recomputes every assignment, which also catches events committed late
    under a lower id than the watermark; otherwise (every few minutes) only the contacts with
    events stored since the watermark, so that a results page opened next catches up a few
    minutes of events inline, not an hour's (at 10M contacts, 1.5M new events kept a first
    visit waiting over 120 s: docs/scaling.md, "Scale run")."""
    written = 0
    for experiment in Experiment.objects.exclude(status=ExperimentStatus.DRAFT).exclude(
        status=ExperimentStatus.COMPLETED
    ):
        written += outcomes_refresh(experiment=experiment, full=full, now=now)
    return written


# --------------------------------------------------------------------------------------------
# Auto-winner
# --------------------------------------------------------------------------------------------


def _rollout_hooks() -> list[Any]:
    from experiments import rollout

    return rollout.hooks


def _decide(
    *,
    experiment: Experiment,
    kind: str,
    variant: Variant | None,
    reason: str,
    numbers: dict,
    now: datetime,
    decided_by: str = "auto-winner",
) -> DecisionLog:
    log = DecisionLog.objects.create(
        experiment=experiment,
        decided_at=now,
        kind=kind,
        variant=variant,
        reason=reason,
        numbers=numbers,
        decided_by=decided_by,
    )
    if variant is not None:
        experiment.winner = variant
        experiment.status = ExperimentStatus.ROLLING_OUT
    else:
        experiment.status = ExperimentStatus.AWAITING_DECISION
    experiment.decided_at = now
    experiment.save(update_fields=["winner", "status", "decided_at"])
    if variant is not None:
        transaction.on_commit(lambda: [hook(experiment=experiment) for hook in _rollout_hooks()])
    return log


def auto_winner_decide(
    *, experiment: Experiment, now: datetime | None = None
) -> DecisionLog | None:
    """Decide the variant sent to the remainder of an auto-winner experiment, once.

    Runs when the experiment is running with auto-winner on and ``decision_wait_hours`` have
    passed since it started; otherwise returns None and writes nothing. The best treatment
    (largest effect on the primary metric) wins only if its Holm-adjusted p-value (always-valid
    in sequential mode) is below alpha, the sample ratio is healthy, and no guardrail metric
    (unsubscribes, complaints) is significantly worse than the control's. Otherwise the
    fallback applies: the control is sent, or the experiment waits for a marketer. The decision
    and its numbers are written to ``DecisionLog``.
    """
    from experiments.results import experiment_results

    now = now or timezone.now()
    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().get(pk=experiment.pk)
        if not (experiment.auto_winner and experiment.status == ExperimentStatus.RUNNING):
            return None
        if experiment.started_at is None or now < experiment.started_at + timedelta(
            hours=experiment.decision_wait_hours
        ):
            return None
        results = experiment_results(experiment=experiment, now=now)
        decision = results.auto_winner_recommendation()
        numbers = results.decision_numbers()
        control = next(v for v in _ordered_variants(experiment) if v.is_control)
        if decision.variant_key is not None:
            winner = experiment.variants.get(key=decision.variant_key)
            return _decide(
                experiment=experiment,
                kind=DecisionKind.WINNER,
                variant=winner,
                reason=decision.reason,
                numbers=numbers,
                now=now,
            )
        kind_if_control = DecisionKind.BLOCKED_GUARDRAIL if decision.blocked_by_guardrail else None
        if experiment.fallback == Fallback.CONTROL:
            return _decide(
                experiment=experiment,
                kind=kind_if_control or DecisionKind.FALLBACK_CONTROL,
                variant=control,
                reason=decision.reason,
                numbers=numbers,
                now=now,
            )
        return _decide(
            experiment=experiment,
            kind=DecisionKind.ASK_MARKETER,
            variant=None,
            reason=decision.reason,
            numbers=numbers,
            now=now,
        )


def winner_choose(
    *, experiment: Experiment, variant: Variant, decided_by: str, now: datetime | None = None
) -> DecisionLog:
    """A marketer picks the variant sent to the remainder (after "ask the marketer")."""
    from experiments.results import experiment_results

    now = now or timezone.now()
    if variant.experiment_id != experiment.pk:
        raise ExperimentError(_("This variant belongs to another experiment."))
    if variant.is_holdout:
        raise ExperimentError(_("The holdout cannot be sent to the remainder."))
    if experiment.status not in (ExperimentStatus.RUNNING, ExperimentStatus.AWAITING_DECISION):
        raise ExperimentError(_("A variant has already been chosen for this experiment."))
    numbers = experiment_results(experiment=experiment, now=now).decision_numbers()
    return _decide(
        experiment=experiment,
        kind=DecisionKind.MANUAL,
        variant=variant,
        reason=_("Chosen by %(user)s.") % {"user": decided_by},
        numbers=numbers,
        now=now,
        decided_by=decided_by,
    )


def auto_winner_due(*, now: datetime | None = None) -> list[DecisionLog]:
    """Decide every running auto-winner experiment whose wait is over (beat task)."""
    now = now or timezone.now()
    due = Experiment.objects.filter(
        auto_winner=True, status=ExperimentStatus.RUNNING, started_at__isnull=False
    )
    logs = []
    for experiment in due:
        log = auto_winner_decide(experiment=experiment, now=now)
        if log is not None:
            logs.append(log)
    return logs
