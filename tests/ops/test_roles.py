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
