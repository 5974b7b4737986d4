"""The role matrix (docs/operations.md, generated from ops/roles.py) is what the product does.

One walk over every registered admin action, every custom admin page and every API operation,
for every actor: anonymous, each role, a staff user without a role, a superuser, and API keys of
each scope (and none). An action, page or operation added without an entry fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.models import AnonymousUser, Group, User
from django.test import Client, RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.test import APIClient
from rest_framework.views import APIView

from contacts.api_keys import KNOWN_SCOPES, SCOPE_PERMISSIONS, api_key_create
from ops.management.commands.role_matrix import documented_matrix
from ops.roles import (
    ADMIN_ACTIONS,
    ADMIN_PAGES,
    API_OPERATIONS,
    EXCLUSIVE_PERMISSIONS,
    ROLE_PERMISSIONS,
    permissions_of_role,
    role_matrix_markdown,
)

pytestmark = pytest.mark.django_db

ROLES = list(ROLE_PERMISSIONS)
DOC = Path(settings.BASE_DIR) / "docs" / "operations.md"
DENIED = (401, 403)


def written_matrix() -> dict[str, dict[str, bool]]:
    """{row label: {role: allowed}} read from the tables of docs/operations.md."""
    table = documented_matrix(DOC.read_text(encoding="utf-8")) or ""
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != len(ROLES) + 2 or not cells[0] or set(cells[0]) <= {"-"}:
            continue
        label = re.sub(r"^(GET|POST|PUT|PATCH|DELETE) ", "", cells[0]).strip("`")
        rows[label] = {role: cell == "yes" for role, cell in zip(ROLES, cells[1:-1], strict=True)}
    return rows


@pytest.fixture
def actors() -> dict[str, object]:
    """Every human actor: anonymous, each role, a staff user without a role, a superuser."""
    people: dict[str, object] = {"anonymous": AnonymousUser()}
    for role in ROLES:
        user = User.objects.create_user(f"{role.lower()}-m", password="x", is_staff=True)
        user.groups.add(Group.objects.get(name=role))
        people[role] = user
    people["staff without role"] = User.objects.create_user("nobody", password="x", is_staff=True)
    people["superuser"] = User.objects.create_superuser("root", password="x")
    return people


def expected(actor: str, label: str, written: dict[str, dict[str, bool]]) -> bool:
    if actor == "superuser":
        return True
    if actor in ("anonymous", "staff without role"):
        return False
    return written[label][actor]


def test_written_matrix_is_the_generated_one_and_keeps_the_policy():
    assert documented_matrix(DOC.read_text(encoding="utf-8")) == role_matrix_markdown(), (
        "docs/operations.md is out of date: run manage.py role_matrix --write"
    )
    for permission, holders in EXCLUSIVE_PERMISSIONS.items():
        held_by = {role for role in ROLES if permission in permissions_of_role(role)}
        assert held_by == holders, f"{permission} is held by {held_by}, policy says {holders}"


def test_every_admin_action_is_offered_to_exactly_the_actors_the_matrix_names(actors):
    written = written_matrix()
    missing, wrong = [], []
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        for _func, name, _description in model_admin._get_base_actions():
            key = f"{opts.app_label}.{opts.model_name}.{name}"
            if name == "delete_selected":
                needs = f"{opts.app_label}.delete_{opts.model_name}"
                allowed_roles = {r: needs in permissions_of_role(r) for r in ROLES}
            elif key not in ADMIN_ACTIONS or key not in written:
                missing.append(key)
                continue
            else:
                allowed_roles = written[key]
            for actor, user in actors.items():
                request = RequestFactory().post("/admin/")
                request.user = user
                offered = model_admin.has_view_or_change_permission(
                    request
                ) and name in model_admin.get_actions(request)
                want = actor == "superuser" or (actor in ROLES and allowed_roles[actor])
                if name == "delete_selected" and want:
                    continue  # read-only admins offer no deletion even with the permission
                if offered != want:
                    wrong.append(f"{key} for {actor}: offered={offered}, matrix={want}")
    assert missing == [], f"admin actions missing from ops.roles.ADMIN_ACTIONS / docs: {missing}"
    assert wrong == []


def _custom_admin_urls() -> dict[str, URLPattern]:
    found = {}
    for model, model_admin in admin.site._registry.items():
        plain = {p.name for p in admin.ModelAdmin(model, admin.site).get_urls()}
        for pattern in model_admin.get_urls():
            if isinstance(pattern, URLPattern) and pattern.name and pattern.name not in plain:
                found[f"admin:{pattern.name}"] = pattern
    for pattern in get_resolver("experiments.urls").url_patterns:
        found[f"experiments:{pattern.name}"] = pattern
    return found


def _sample_kwargs(pattern: URLPattern) -> dict[str, object]:
    """Values for a URL's parameters: an id that exists nowhere, a well-formed token."""
    converters = pattern.pattern.converters
    return {
        name: 999_999 if type(conv).__name__ == "IntConverter" else "0" * 32
        for name, conv in converters.items()
    }


def test_every_custom_admin_page_answers_exactly_the_actors_the_matrix_names(actors):
    written = written_matrix()
    pages = _custom_admin_urls()
    missing = sorted(set(pages) - set(ADMIN_PAGES)) + sorted(set(ADMIN_PAGES) - set(pages))
    assert missing == [], f"custom pages and ops.roles.ADMIN_PAGES differ: {missing}"
    wrong = []
    for name, pattern in sorted(pages.items()):
        method, _needs = ADMIN_PAGES[name]
        url = reverse(name, kwargs=_sample_kwargs(pattern))
        for actor, user in actors.items():
            client = Client()
            if actor != "anonymous":
                client.force_login(user)
            response = getattr(client, method.lower())(url)
            refused = response.status_code in DENIED or (
                response.status_code == 302 and "/login/" in response["Location"]
            )
            if refused == expected(actor, name, written):
                wrong.append(f"{method} {name} for {actor}: {response.status_code}")
    assert wrong == []


def _api_operations() -> dict[str, type[APIView]]:
    """{"METHOD /api/v1/path/{param}": view class} from the URL resolver."""
    found: dict[str, type[APIView]] = {}

    def walk(patterns, prefix: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, route)
                continue
            view = getattr(pattern.callback, "cls", None)
            if not route.startswith("api/v1/") or view is None:
                continue
            path = "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)
            for method in view.http_method_names:
                if method not in ("options", "head") and hasattr(view, method):
                    found[f"{method.upper()} {path}"] = view

    walk(get_resolver().url_patterns, "")
    return found


def _api_call(client: APIClient, operation: str):
    method, path = operation.split(" ", 1)
    path = re.sub(r"\{\w*id\}|\{pk\}", "999999", path).replace("{external_id}", "C-missing")
    if method in ("POST", "PUT", "PATCH"):
        return getattr(client, method.lower())(path, {}, format="json")
    return getattr(client, method.lower())(path)


def test_every_api_operation_answers_exactly_the_actors_and_keys_the_matrix_names(actors):
    written = written_matrix()
    operations = _api_operations()
    missing = sorted(set(operations) ^ set(API_OPERATIONS))
    assert missing == [], f"API operations and ops.roles.API_OPERATIONS differ: {missing}"
    assert set(SCOPE_PERMISSIONS) == set(KNOWN_SCOPES)
    wrong = []
    for operation, scope in sorted(API_OPERATIONS.items()):
        for actor, user in actors.items():
            client = APIClient()
            if actor != "anonymous":
                client.force_login(user)
            status = _api_call(client, operation).status_code
            want = scope is None or expected(actor, operation, written)
            if (status not in DENIED) != want:
                wrong.append(f"{operation} for {actor}: {status}")
        for scopes in [[s] for s in KNOWN_SCOPES] + [["*"], []]:
            _key, raw = api_key_create(name=f"key {scopes}", scopes=scopes)
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
            status = _api_call(client, operation).status_code
            want = scope is None or "*" in scopes or scope in scopes
            if (status not in DENIED) != want:
                wrong.append(f"{operation} for key {scopes}: {status}")
    assert wrong == []
