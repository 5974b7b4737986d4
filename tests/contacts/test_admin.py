import pytest
from django.contrib.auth.models import User

from tests.factories import EventFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_logged(client):
    client.force_login(User.objects.create_superuser("admin", "admin@example.fr", "x"))
    return client


def test_contact_admin_searches_and_filters(admin_client_logged):
    event = EventFactory(contact__email="louise.dupont@example.fr", contact__country="BE")
    page = admin_client_logged.get("/admin/contacts/contact/", {"q": "louise.dupont"})
    assert page.status_code == 200
    assert event.contact.external_id in page.content.decode()
    page = admin_client_logged.get("/admin/contacts/contact/", {"country": "FR"})
    assert event.contact.external_id not in page.content.decode()


def test_events_are_read_only_in_admin(admin_client_logged):
    event = EventFactory()
    assert admin_client_logged.get("/admin/contacts/event/").status_code == 200
    page = admin_client_logged.get(f"/admin/contacts/event/{event.pk}/change/")
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert admin_client_logged.get("/admin/contacts/event/add/").status_code == 403
    assert (
        admin_client_logged.post(
            f"/admin/contacts/event/{event.pk}/delete/", {"post": "yes"}
        ).status_code
        == 403
    )
