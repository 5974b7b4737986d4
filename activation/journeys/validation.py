"""Checks run when a schedule or a workflow is saved, so mistakes are refused at save time
(with a message naming the step or field), not discovered at 3 a.m. during the run.

- ``workflow_problems``: no send step, an unknown or self ``go to``, a step no contact can
  reach, a step from which no contact can ever leave (a loop without way out), a loop without
  a wait (would spin), a branch or wait missing its settings, a send step without template
  or with a template of another channel or with unknown variables.
- ``template_unknown_variables`` (``activation.rendering``): unknown variables per field.
- ``schedule_problems``: a one-off date in the past, a crontab beat cannot parse, an unknown
  time zone, a trigger without its segment or event type, a local send time inside the
  campaign's quiet hours.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.utils.translation import gettext as _

from activation.journeys.models import BranchCondition, ScheduleKind, StepKind
from activation.rendering import template_unknown_variables
from activation.selectors import in_quiet_window


@dataclass(frozen=True)
class StepSpec:
    """What validation needs of a step (built from a model instance or form data)."""

    position: int
    kind: str
    channel: str = ""
    template: object = None
    wait_hours: int | None = None
    wait_until: object = None
    condition: str = ""
    condition_step: int | None = None
    condition_segment: object = None
    condition_event_type: str = ""
    yes_goto: int | None = None
    no_goto: int | None = None

    @classmethod
    def of(cls, step) -> StepSpec:
        return cls(**{name: getattr(step, name) for name in cls.__dataclass_fields__})


def template_problems(template, *, channel: str, campaign=None, label: str = "") -> list[str]:
    """Messages for a template that cannot be used on ``channel``."""
    prefix = f"{label}: " if label else ""
    if template is None:
        return [prefix + _("choose a template.")]
    if template.channel != channel:
        return [
            prefix
            + _("the template “%(template)s” is a %(has)s template, not %(wanted)s.")
            % {"template": template, "has": template.channel, "wanted": channel}
        ]
    if not template.versions.exists():
        return [prefix + _("the template “%(template)s” has no version.") % {"template": template}]
    messages = []
    for where, names in template_unknown_variables(template, campaign=campaign).items():
        messages.append(
            prefix
            + _("template “%(template)s” (%(where)s) uses unknown variables: %(names)s.")
            % {"template": template, "where": where, "names": ", ".join(names)}
        )
    return messages


def _successors(step: StepSpec, following: int | None) -> list[int | None]:
    if step.kind == StepKind.EXIT:
        return [None]
    if step.kind == StepKind.BRANCH:
        return [step.yes_goto or following, step.no_goto or following]
    return [following]


def workflow_problems(steps: list[StepSpec], *, campaign=None) -> list[str]:
    """Every reason to refuse this list of steps (empty list = valid)."""
    problems: list[str] = []
    if not steps:
        return [_("A workflow needs at least one step.")]
    by_position = {s.position: s for s in steps}
    if len(by_position) != len(steps):
        problems.append(_("Two steps have the same position."))
    order = sorted(by_position)
    following = {p: (order[i + 1] if i + 1 < len(order) else None) for i, p in enumerate(order)}
    if not any(s.kind == StepKind.SEND for s in steps):
        problems.append(_("A workflow needs at least one send step."))
    for step in steps:
        label = _("Step %(n)s") % {"n": step.position}
        for target in (step.yes_goto, step.no_goto):
            if target is None:
                continue
            if target == step.position:
                problems.append(label + ": " + _("a step cannot go to itself."))
            elif target not in by_position:
                problems.append(label + ": " + _("there is no step %(n)s.") % {"n": target})
        if step.kind != StepKind.BRANCH and (step.yes_goto or step.no_goto):
            problems.append(label + ": " + _("only a branch step has “go to” targets."))
        if step.kind == StepKind.SEND:
            problems += template_problems(
                step.template, channel=step.channel, campaign=campaign, label=label
            )
        elif step.kind == StepKind.WAIT:
            if not step.wait_hours and step.wait_until is None:
                problems.append(label + ": " + _("give a duration or a time of day to wait."))
        elif step.kind == StepKind.BRANCH:
            problems += _branch_problems(step, by_position, label)
    if problems:
        return problems
    return _graph_problems(by_position, order, following)


def _branch_problems(step: StepSpec, by_position: dict, label: str) -> list[str]:
    if not step.condition:
        return [label + ": " + _("choose the condition of the branch.")]
    if step.condition in (BranchCondition.OPENED, BranchCondition.CLICKED):
        ref = by_position.get(step.condition_step)
        if ref is None or ref.kind != StepKind.SEND:
            return [label + ": " + _("name the send step whose message is checked.")]
        if ref.position >= step.position:
            return [label + ": " + _("the checked message must come before the branch.")]
        if step.condition == BranchCondition.OPENED and ref.channel != "email":
            return [label + ": " + _("only emails have opens; use “clicked” for SMS and push.")]
    if step.condition == BranchCondition.IN_SEGMENT and step.condition_segment is None:
        return [label + ": " + _("choose the segment.")]
    if step.condition == BranchCondition.EVENT_SINCE_ENTRY and not step.condition_event_type:
        return [label + ": " + _("give the event type.")]
    return []


def _graph_problems(by_position: dict, order: list[int], following: dict) -> list[str]:
    END = None
    edges: dict[int, list[int | None]] = {
        p: _successors(by_position[p], following[p]) for p in order
    }
    reachable: set[int] = set()
    stack = [order[0]]
    while stack:
        p = stack.pop()
        if p is END or p in reachable:
            continue
        reachable.add(p)
        stack.extend(edges[p])
    problems = [
        _("Step %(n)s can never be reached (no step leads to it).") % {"n": p}
        for p in order
        if p not in reachable
    ]
    # Steps from which the end can be reached: reverse walk from END.
    reverse: dict[int | None, list[int]] = defaultdict(list)
    for p, targets in edges.items():
        for t in targets:
            reverse[t].append(p)
    can_end: set[int] = set()
    stack = list(reverse[END])
    while stack:
        p = stack.pop()
        if p in can_end:
            continue
        can_end.add(p)
        stack.extend(reverse[p])
    for p in order:
        if p in reachable and p not in can_end:
            problems.append(
                _("The workflow has no exit from step %(n)s: contacts would loop forever.")
                % {"n": p}
            )
    if not problems:
        problems += _loops_without_wait(by_position, edges, reachable)
    return problems


def _loops_without_wait(by_position, edges, reachable) -> list[str]:
    """A cycle made only of send/branch steps would run in one sweep without end."""
    instant = {p for p in reachable if by_position[p].kind != StepKind.WAIT}
    colour: dict[int, int] = {}

    def visit(p: int) -> bool:
        colour[p] = 1
        for t in edges[p]:
            if t is None or t not in instant:
                continue
            if colour.get(t) == 1 or (colour.get(t) is None and visit(t)):
                return True
        colour[p] = 2
        return False

    for p in sorted(instant):
        if colour.get(p) is None and visit(p):
            return [_("Steps loop back without a wait step in between (step %(n)s).") % {"n": p}]
    return []


def schedule_problems(schedule, *, now: datetime) -> dict[str, str]:
    """Reasons to refuse ``schedule`` per form field (``"__all__"`` for the whole form)."""
    from celery.schedules import crontab

    problems: dict[str, str] = {}
    try:
        zone = ZoneInfo(schedule.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return {"timezone": _("Unknown time zone “%(zone)s”.") % {"zone": schedule.timezone}}
    kind = schedule.kind
    if kind == ScheduleKind.ONE_OFF:
        if schedule.run_at is None:
            problems["run_at"] = _("Give the date and time of the send.")
        elif schedule.run_at <= now:
            problems["run_at"] = _(
                "This date is in the past (%(local)s, %(utc)s UTC): choose a time to come."
            ) % {
                "local": schedule.run_at.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
                "utc": schedule.run_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
            }
    elif kind == ScheduleKind.RECURRING:
        try:
            crontab(
                minute=schedule.cron_minute,
                hour=schedule.cron_hour,
                day_of_week=schedule.cron_day_of_week,
                day_of_month=schedule.cron_day_of_month,
                month_of_year=schedule.cron_month_of_year,
            )
        except (ValueError, TypeError) as exc:
            problems["__all__"] = _("The crontab is not valid: %(error)s") % {"error": exc}
    elif kind == ScheduleKind.SEGMENT_ENTRY and schedule.trigger_segment_id is None:
        problems["trigger_segment"] = _("Choose the segment whose new members get the campaign.")
    elif kind == ScheduleKind.EVENT and not schedule.trigger_event_type:
        problems["trigger_event_type"] = _("Give the event type that starts the campaign.")
    if schedule.local_send_time is not None:
        if kind not in (ScheduleKind.ONE_OFF, ScheduleKind.RECURRING, ScheduleKind.MANUAL):
            problems["local_send_time"] = _("Local send time applies to scheduled sends only.")
        else:
            campaign = schedule.campaign
            if in_quiet_window(
                schedule.local_send_time, campaign.quiet_hours_start, campaign.quiet_hours_end
            ):
                problems["local_send_time"] = _(
                    "%(time)s falls in the campaign's quiet hours (%(start)s–%(end)s)."
                ) % {
                    "time": schedule.local_send_time.strftime("%H:%M"),
                    "start": campaign.quiet_hours_start.strftime("%H:%M"),
                    "end": campaign.quiet_hours_end.strftime("%H:%M"),
                }
    if schedule.reentry == "every_n_days" and not schedule.reentry_days:
        problems["reentry_days"] = _("Give the number of days before a contact may re-enter.")
    return problems


def default_zone() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)
