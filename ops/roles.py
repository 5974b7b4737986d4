"""Roles (Django groups), the permissions each one carries, and the role matrix.

A role grants actions on every model of an app (``"*"``) or on named models. The groups are
created by a data migration; permissions are (re)attached after every ``migrate`` so models
added by later migrations are covered. Permissions an administrator adds by hand are kept.

The role matrix is data: the permission every admin action, custom admin page and API
operation needs (``ADMIN_ACTIONS``, ``ADMIN_PAGES``, ``API_OPERATIONS``) and who alone may hold
the sensitive ones (``EXCLUSIVE_PERMISSIONS``). ``manage.py role_matrix`` writes it as the table
of docs/operations.md; tests/ops/test_role_matrix.py checks every registered action, page and
API operation against it, for every role and API-key scope.
"""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission
from django.db.models import Q

ROLE_PERMISSIONS: dict[str, dict[str, dict[str, tuple[str, ...]]]] = {
    "Marketer": {
        "contacts": {"*": ("view",), "contact": ("view", "add", "change")},
        "consent": {"*": ("view",)},
        "segments": {"*": ("view", "add", "change", "delete")},
        "segments_ml": {"*": ("view", "add", "change")},
        "scoring": {"*": ("view",)},
        "activation": {
            "*": ("view", "add", "change", "delete"),
            "campaign": ("approve", "launch"),
        },
        "journeys": {"*": ("view", "add", "change", "delete")},
        "experiments": {"*": ("view", "add", "change", "delete")},
    },
    "Analyst": {
        "contacts": {"*": ("view",)},
        "consent": {"*": ("view",)},
        "segments": {"*": ("view", "add", "change")},
        "segments_ml": {"*": ("view", "add", "change")},
        "scoring": {"*": ("view", "add", "change")},
        "activation": {"*": ("view",), "campaign": ("view", "approve")},
        "journeys": {"*": ("view",), "campaignapproval": ("view", "change")},
        "experiments": {"*": ("view", "add", "change")},
    },
    "DPO": {
        "contacts": {"*": ("view", "change", "delete")},
        "consent": {"*": ("view", "add", "change"), "rightsrequest": ("carry_out", "export")},
        "segments": {"*": ("view",)},
        "segments_ml": {"*": ("view",)},
        "scoring": {"*": ("view",)},
        "activation": {"*": ("view",)},
        "journeys": {"*": ("view",)},
        "experiments": {"*": ("view",)},
    },
}


def role_permissions(role: str) -> list[Permission]:
    """The permissions a role should carry, among those that exist now."""
    query = Q(pk__in=[])
    for app_label, grants in ROLE_PERMISSIONS[role].items():
        for model, actions in grants.items():
            for action in actions:
                clause = Q(content_type__app_label=app_label, codename__startswith=f"{action}_")
                if model != "*":
                    clause &= Q(content_type__model=model)
                query |= clause
    return list(Permission.objects.filter(query))


def roles_sync(**_: object) -> None:
    for role in ROLE_PERMISSIONS:
        group, _created = Group.objects.get_or_create(name=role)
        group.permissions.add(*role_permissions(role))


# --- The role matrix ------------------------------------------------------------------------

# Who alone may hold these permissions (superusers aside): DPO alone exports and erases, the
# Marketer alone launches, an Analyst or a second Marketer approves (the requester cannot).
EXCLUSIVE_PERMISSIONS: dict[str, frozenset[str]] = {
    "consent.carry_out_rightsrequest": frozenset({"DPO"}),
    "consent.export_contact": frozenset({"DPO"}),
    "contacts.delete_contact": frozenset({"DPO"}),
    "activation.launch_campaign": frozenset({"Marketer"}),
    "activation.approve_campaign": frozenset({"Marketer", "Analyst"}),
}

# Every admin action but Django's own "delete selected" (which needs the model's delete
# permission): "<app_label>.<model>.<action>" -> the permission it needs.
ADMIN_ACTIONS: dict[str, str] = {
    "contacts.contact.merge_selected": "contacts.delete_contact",  # and change_contact
    "contacts.pushsubscription.deactivate": "contacts.change_pushsubscription",
    "contacts.apikey.revoke": "contacts.change_apikey",
    "consent.rightsrequest.carry_out": "consent.carry_out_rightsrequest",
    "segments.segment.recompute_now": "segments.change_segment",
    "segments_ml.clustermodel.train_now": "segments_ml.change_clustermodel",
    "segments_ml.clustermodelversion.activate": "segments_ml.change_clustermodel",
    "activation.campaign.dry_run": "activation.view_campaign",
    "activation.campaign.launch": "activation.launch_campaign",
    "activation.campaignrun.retry_failed": "activation.change_campaignrun",
    "activation.campaignrun.cancel": "activation.change_campaignrun",
    "activation.outboxmessage.retry_failed": "activation.change_outboxmessage",
    "journeys.campaignschedule.launch_now": "activation.launch_campaign",
    "journeys.campaignschedule.pause": "journeys.change_campaignschedule",
    "journeys.campaignschedule.resume": "journeys.change_campaignschedule",
    "journeys.campaignschedule.cancel": "journeys.change_campaignschedule",
    "journeys.campaignapproval.approve": "activation.approve_campaign",
    "journeys.campaignapproval.reject": "activation.approve_campaign",
    "experiments.experiment.start_experiments": "experiments.change_experiment",
    "experiments.variant.send_to_remainder": "activation.launch_campaign",
    "axes.accessattempt.cleanup_expired_attempts": "axes.delete_accessattempt",
    "django_celery_beat.periodictask.enable_tasks": "django_celery_beat.change_periodictask",
    "django_celery_beat.periodictask.disable_tasks": "django_celery_beat.change_periodictask",
    "django_celery_beat.periodictask.toggle_tasks": "django_celery_beat.change_periodictask",
    "django_celery_beat.periodictask.run_tasks": "django_celery_beat.change_periodictask",
}

# Every custom admin page (a ModelAdmin's own URLs) and app page behind a login:
# URL name -> (HTTP method it answers, permission it needs).
ADMIN_PAGES: dict[str, tuple[str, str]] = {
    "admin:auth_user_password_change": ("GET", "auth.change_user"),
    "admin:contacts_importjob_upload": ("GET", "contacts.add_importjob"),
    "admin:contacts_importjob_mapping": ("GET", "contacts.add_importjob"),
    "admin:consent_timeline": ("GET", "consent.view_consentevent"),
    "admin:consent_rightsrequest_export": ("GET", "consent.export_contact"),
    "admin:segments_segment_estimate": ("POST", "segments.view_segment"),
    "admin:segments_segment_overlap": ("GET", "segments.view_segment"),
    "admin:segments_segment_explain": ("GET", "segments.view_segment"),
    "admin:segments_segment_status": ("GET", "segments.view_segment"),
    "admin:segments_segment_export": ("GET", "segments.view_segment"),
    "admin:segments_ml_version_segment_from_leaf": ("POST", "segments.add_segment"),
    "admin:scoring_scoringmodel_report": ("GET", "scoring.view_scoringmodel"),
    "admin:scoring_cohorts": ("GET", "scoring.view_scoringmodel"),
    "admin:scoring_cohorts_csv": ("GET", "scoring.view_scoringmodel"),
    "admin:scoring_train": ("POST", "scoring.add_scoringjob"),
    "admin:scoring_train_status": ("GET", "scoring.view_scoringmodel"),
    "admin:activation_template_preview": ("GET", "activation.view_template"),
    "admin:activation_campaign_report": ("GET", "activation.view_campaignrun"),
    "admin:activation_campaign_report_csv": ("GET", "activation.view_campaignrun"),
    "admin:activation_campaignrun_report": ("GET", "activation.view_campaignrun"),
    "admin:activation_campaignrun_report_csv": ("GET", "activation.view_campaignrun"),
    "admin:activation_mail_sink": ("GET", "activation.view_outboxmessage"),
    "admin:activation_mail_sink_message": ("GET", "activation.view_outboxmessage"),
    "admin:journeys_calendar": ("GET", "journeys.view_campaignschedule"),
    "admin:journeys_workflow_funnel": ("GET", "journeys.view_workflow"),
    # Buttons on an object's own page (unfold actions_detail): GET = the confirmation page
    # stating the effect, POST (confirm=yes) = the service.
    "admin:activation_campaign_launch_button": ("GET", "activation.launch_campaign"),
    "admin:activation_campaign_dry_run_button": ("GET", "activation.view_campaign"),
    "admin:activation_campaign_test_send_button": ("GET", "activation.change_campaign"),
    "admin:activation_campaign_pause_button": ("GET", "activation.change_campaign"),
    "admin:activation_campaign_resume_button": ("GET", "activation.change_campaign"),
    "admin:activation_campaign_cancel_button": ("GET", "activation.change_campaign"),
    "admin:experiments_experiment_start_button": ("GET", "experiments.change_experiment"),
    "admin:experiments_experiment_stop_button": ("GET", "experiments.change_experiment"),
    "admin:experiments_experiment_send_winner_button": ("GET", "activation.launch_campaign"),
    "admin:segments_segment_recompute_button": ("GET", "segments.change_segment"),
    "admin:segments_ml_clustermodel_train_button": ("GET", "segments_ml.change_clustermodel"),
    "admin:consent_rightsrequest_carry_out_button": ("GET", "consent.carry_out_rightsrequest"),
    "experiments:results": ("GET", "experiments.view_experiment"),
    "experiments:results-csv": ("GET", "experiments.view_experiment"),
    "experiments:plan": ("GET", "experiments.view_experiment"),
}

# Every API operation: "<METHOD> <path>" -> the API-key scope it needs. An admin session needs
# the scope's model permissions instead (contacts.api_keys.SCOPE_PERMISSIONS); None = public.
API_OPERATIONS: dict[str, str | None] = {
    "GET /api/v1/schema/": None,
    "GET /api/v1/docs/": None,
    "POST /api/v1/contacts/bulk": "contacts:write",
    "POST /api/v1/events/bulk": "events:write",
    "GET /api/v1/contacts/{external_id}": "contacts:read",
    "POST /api/v1/consents/bulk": "consent:write",
    "GET /api/v1/consents/{external_id}": "consent:read",
    "GET /api/v1/segments": "segments:read",
    "POST /api/v1/segments": "segments:write",
    "GET /api/v1/segments/{segment_id}": "segments:read",
    "PUT /api/v1/segments/{segment_id}": "segments:write",
    "GET /api/v1/segments/{segment_id}/members": "segments:read",
    "GET /api/v1/experiments/{pk}/results": "experiments:read",
}


def permissions_of_role(role: str) -> set[str]:
    """``"app_label.codename"`` of every permission the role carries (from the database)."""
    return {
        f"{p.content_type.app_label}.{p.codename}"
        for p in Permission.objects.filter(group__name=role).select_related("content_type")
    }


def role_matrix_markdown() -> str:
    """The role matrix as Markdown tables (the text between the markers in docs/operations.md)."""
    from contacts.api_keys import SCOPE_PERMISSIONS

    roles = list(ROLE_PERMISSIONS)
    held = {role: permissions_of_role(role) for role in roles}

    def row(label: str, needs: tuple[str, ...], extra: str = "") -> str:
        cells = ["yes" if set(needs) <= held[role] else "—" for role in roles]
        return f"| {label} | {' | '.join(cells)} | {extra}`{'`, `'.join(needs)}` |"

    head = f"| | {' | '.join(roles)} | needs |"
    rule = "|---" * (len(roles) + 2) + "|"
    lines = [
        "Admin actions (plus *Delete selected*, offered only with the model's delete permission,",
        "and not at all on read-only records such as events or the consent ledger):",
    ]
    lines += ["", head, rule]
    for key, perm in sorted(ADMIN_ACTIONS.items()):
        needs = (perm, "contacts.change_contact") if key.endswith("merge_selected") else (perm,)
        lines.append(row(f"`{key}`", needs))
    lines += ["", "Admin and app pages:", "", head, rule]
    for name, (method, perm) in sorted(ADMIN_PAGES.items()):
        lines.append(row(f"{method} `{name}`", (perm,)))
    lines += ["", "API operations (an API key needs the scope; an admin session the permissions):"]
    lines += ["", f"| | {' | '.join(roles)} | scope: needs |", rule]
    for operation, scope in sorted(API_OPERATIONS.items(), key=lambda i: i[0].split()[::-1]):
        if scope is None:
            lines.append(f"| `{operation}` | {' | '.join('yes' for _ in roles)} | public |")
        else:
            lines.append(row(f"`{operation}`", SCOPE_PERMISSIONS[scope], f"`{scope}`: "))
    lines += ["", "A superuser may do everything; a staff user without a role nothing but log in."]
    return "\n".join(lines) + "\n"
