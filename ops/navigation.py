"""The workspace's sidebar: pages grouped by the task they serve, each shown to whoever may open it.

django-unfold renders ``UNFOLD["SIDEBAR"]["navigation"]`` (config/settings/base.py points at
:func:`sidebar`). An entry for a model's list is visible with that model's *view* permission, a
custom page with the permission its view checks, so each role sees its own week's work: a
Marketer never sees periodic tasks, users or login attempts, a DPO sees Privacy first. The
technical tables (memberships, features, delivery attempts…) sit in a collapsed section shown to
administrators only. tests/ops/test_navigation.py checks that every admin page is reachable
from here and that each role sees what its permissions open.
"""

from __future__ import annotations

from collections.abc import Callable

from django.urls import reverse_lazy
from django.utils.translation import gettext_lazy as _


def _may(permission: str) -> Callable:
    def check(request) -> bool:
        return request.user.has_perm(permission)

    return check


def _administrator(request) -> bool:
    return request.user.is_superuser


def _model(app_label: str, model: str, title, icon: str) -> dict:
    """The list page of ``app_label.model``, for whoever may view that model."""
    return {
        "title": title,
        "icon": icon,
        "link": reverse_lazy(f"admin:{app_label}_{model}_changelist"),
        "permission": _may(f"{app_label}.view_{model}"),
    }


def _page(url_name: str, title, icon: str, permission: str, **kwargs) -> dict:
    return {
        "title": title,
        "icon": icon,
        "link": reverse_lazy(url_name, kwargs=kwargs or None),
        "permission": _may(permission),
    }


# (section title, entries, collapsible); the order is the order of a marketer's week.
SECTIONS: list[tuple] = [
    (
        _("Home"),
        [
            {
                "title": _("Dashboard"),
                "icon": "dashboard",
                "link": reverse_lazy("admin:index"),
                "permission": lambda request: request.user.is_staff,
            }
        ],
        False,
    ),
    (
        _("Audience"),
        [
            _model("contacts", "contact", _("Contacts"), "group"),
            _model("segments", "segment", _("Segments"), "filter_alt"),
            _model("segments", "segmentfamily", _("Priority families"), "account_tree"),
            _model("segments_ml", "clustermodel", _("Clusters"), "bubble_chart"),
            _model("scoring", "scoringmodel", _("Predictive scores"), "trending_up"),
            _page(
                "admin:scoring_cohorts",
                _("Cohorts"),
                "calendar_view_month",
                "scoring.view_scoringmodel",
            ),
        ],
        False,
    ),
    (
        _("Campaigns"),
        [
            _model("activation", "campaign", _("Campaigns"), "campaign"),
            _model("activation", "template", _("Templates"), "draft"),
            _model("journeys", "campaignschedule", _("Schedules"), "schedule"),
            _page(
                "admin:journeys_calendar",
                _("Calendar"),
                "calendar_month",
                "journeys.view_campaignschedule",
            ),
            _model("journeys", "workflow", _("Workflows"), "route"),
            _model("journeys", "campaignapproval", _("Approvals"), "task_alt"),
            _model("activation", "campaignrun", _("Campaign runs"), "play_circle"),
            _model("activation", "outboxmessage", _("Sent messages"), "outbox"),
            _model("activation", "attribution", _("Conversions"), "euro"),
        ],
        False,
    ),
    (
        _("Experiments"),
        [
            _model("experiments", "experiment", _("A/B tests"), "science"),
            _page(
                "experiments:plan",
                _("Sample-size planner"),
                "calculate",
                "experiments.view_experiment",
            ),
            _model("experiments", "decisionlog", _("Decisions"), "gavel"),
        ],
        False,
    ),
    (
        _("Privacy"),
        [
            _model("consent", "consentevent", _("Consent register"), "verified_user"),
            _model("consent", "rightsrequest", _("Rights requests"), "policy"),
            _model("consent", "suppression", _("Suppression list"), "block"),
            _model("consent", "erasedcontact", _("Erased contacts"), "person_off"),
            _model("consent", "retentionpurge", _("Retention"), "auto_delete"),
            _model("consent", "purpose", _("Purposes"), "checklist"),
        ],
        False,
    ),
    (
        _("Data"),
        [
            _model("contacts", "importjob", _("Imports"), "upload_file"),
            _model("contacts", "event", _("Events"), "timeline"),
            _model("contacts", "apikey", _("API keys"), "key"),
            _model("contacts", "alias", _("Aliases"), "alternate_email"),
            _model("contacts", "duplicatereport", _("Duplicates"), "content_copy"),
            _model("contacts", "contactmerge", _("Merges"), "merge"),
            _model("contacts", "pushsubscription", _("Push subscriptions"), "notifications"),
        ],
        False,
    ),
    (
        _("Settings"),
        [
            _model("auth", "user", _("Users"), "person"),
            _model("auth", "group", _("Roles"), "badge"),
            _model("django_celery_beat", "periodictask", _("Periodic tasks"), "update"),
            _model("ops", "workerheartbeat", _("Worker health"), "monitor_heart"),
            _model("axes", "accessattempt", _("Login attempts"), "lock"),
        ],
        False,
    ),
    (
        _("Technical tables"),
        [
            _model("segments", "segmentmembership", _("Segment memberships"), "table_rows"),
            _model("segments", "contactfeatures", _("Contact features"), "table_rows"),
            _model("segments_ml", "clustermodelversion", _("Cluster versions"), "table_rows"),
            _model("segments_ml", "trainingrun", _("Cluster trainings"), "table_rows"),
            _model("segments_ml", "driftreport", _("Drift reports"), "table_rows"),
            _model("scoring", "scoringjob", _("Score trainings"), "table_rows"),
            _model("scoring", "contactscore", _("Contact scores"), "table_rows"),
            _model("activation", "deliveryattempt", _("Delivery attempts"), "table_rows"),
            _model("journeys", "workflowenrollment", _("Workflow enrolments"), "table_rows"),
            _model("experiments", "variant", _("Variants"), "table_rows"),
            _model("axes", "accesslog", _("Logins"), "table_rows"),
            _model("axes", "accessfailurelog", _("Login failures"), "table_rows"),
            _model("django_celery_beat", "intervalschedule", _("Intervals"), "table_rows"),
            _model("django_celery_beat", "crontabschedule", _("Crontabs"), "table_rows"),
            _model("django_celery_beat", "clockedschedule", _("Clocked"), "table_rows"),
            _model("django_celery_beat", "solarschedule", _("Solar events"), "table_rows"),
        ],
        True,
    ),
]

# The technical tables are for administrators whatever else a role may view.
for _entry in SECTIONS[-1][1]:
    _entry["permission"] = _administrator


def sidebar(request) -> list[dict]:
    """``UNFOLD["SIDEBAR"]["navigation"]`` for ``request``'s user: the sections where they may
    open at least one page (unfold hides each entry they may not open)."""
    return [
        {"title": title, "separator": True, "collapsible": collapsible, "items": items}
        for title, items, collapsible in SECTIONS
        if any(item["permission"](request) for item in items)
    ]
