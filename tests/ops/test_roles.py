import pytest
from django.contrib.auth.models import Group, User

pytestmark = pytest.mark.django_db


def user_in(role: str) -> User:
    user = User.objects.create_user(f"{role.lower()}-user", password="x", is_staff=True)
    user.groups.add(*Group.objects.filter(name=role))
    return user


def test_roles_exist_with_their_permissions():
    marketer, analyst, dpo = user_in("Marketer"), user_in("Analyst"), user_in("DPO")
    assert marketer.has_perm("contacts.change_contact")
    assert not marketer.has_perm("contacts.delete_contact")
    assert analyst.has_perm("contacts.view_event")
    assert not analyst.has_perm("contacts.change_contact")
    assert dpo.has_perm("contacts.delete_contact")


def test_marketer_sees_contacts_in_admin_but_cannot_delete(client):
    client.force_login(user_in("Marketer"))
    assert client.get("/admin/contacts/contact/").status_code == 200
    assert client.get("/admin/ops/workerheartbeat/").status_code == 403


def test_every_app_is_covered_by_every_role():
    from django.apps import apps

    from ops.roles import ROLE_PERMISSIONS

    domain_labels = {
        config.label
        for config in apps.get_app_configs()
        if config.name.split(".")[0]
        in {"contacts", "consent", "segments", "activation", "experiments"}
    }
    for role, grants in ROLE_PERMISSIONS.items():
        assert domain_labels <= set(grants), f"{role} misses {domain_labels - set(grants)}"


def test_analyst_can_see_clusters_and_scores():
    analyst = user_in("Analyst")
    assert analyst.has_perm("segments_ml.view_clustermodel")
    assert analyst.has_perm("scoring.view_scoringmodel")
