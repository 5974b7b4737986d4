"""Roles (Django groups) and the permissions each one carries.

A role grants actions on every model of an app (``"*"``) or on named models. The groups are
created by a data migration; permissions are (re)attached after every ``migrate`` so models
added by later migrations are covered. Permissions an administrator adds by hand are kept.
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
        "activation": {"*": ("view", "add", "change", "delete"), "campaign": ("approve",)},
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
        "consent": {"*": ("view", "add", "change")},
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
