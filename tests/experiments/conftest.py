import pytest


@pytest.fixture
def marketer(db):
    """A staff user in the Marketer role (which may view, add and change experiments)."""
    from django.contrib.auth.models import Group, User

    from ops.roles import roles_sync

    roles_sync()
    user = User.objects.create_user("camille", password="pw-secret-123", is_staff=True)
    user.groups.add(Group.objects.get(name="Marketer"))
    return user


@pytest.fixture
def marketer_client(client, marketer):
    client.force_login(marketer)
    return client


# Activation's fixtures (a consenting audience and a campaign targeting it) for the
# end-to-end sending tests of experiments.
from tests.activation.conftest import *  # noqa: E402, F403
