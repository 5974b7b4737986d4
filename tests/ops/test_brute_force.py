"""Guessing is slowed down: admin logins lock out (django-axes), bad API keys get 429."""

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from contacts.api_keys import api_key_create

pytestmark = pytest.mark.django_db


def login(client, password: str, ip: str = "203.0.113.7"):
    return client.post(
        "/admin/login/?next=/admin/",
        {"username": "marie", "password": password},
        REMOTE_ADDR=ip,
    )


def test_wrong_passwords_lock_the_admin_login_even_for_the_right_password(client):
    User.objects.create_superuser("marie", "marie@example.fr", "the-right-one")
    for _ in range(settings.AXES_FAILURE_LIMIT + 5):
        assert login(client, "guess").status_code in (200, 429)
    response = login(client, "the-right-one")
    assert response.status_code == 429
    assert "too many login attempts" in response.content.decode()
    assert client.get("/admin/").status_code == 302  # not logged in
    # Another address is not locked out by this one's failures.
    assert login(client, "the-right-one", ip="198.51.100.9").status_code == 302
    assert client.get("/admin/").status_code == 200


def test_a_few_typos_then_the_right_password_logs_in(client):
    User.objects.create_superuser("marie", "marie@example.fr", "the-right-one")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert login(client, "typo").status_code == 200
    assert login(client, "the-right-one").status_code == 302
    assert client.get("/admin/").status_code == 200


def test_bad_api_keys_from_one_address_get_429_with_retry_after():
    _key, good = api_key_create(name="crm", scopes=["segments:read"])
    client = APIClient()
    limit = settings.CIBLE_API_KEY_FAILURES_PER_WINDOW
    statuses = [
        client.get(
            "/api/v1/segments",
            HTTP_AUTHORIZATION=f"Api-Key bogus{n}.secret",
            REMOTE_ADDR="203.0.113.7",
        ).status_code
        for n in range(limit + 5)
    ]
    assert statuses[:limit] == [401] * limit
    assert statuses[limit:] == [429] * 5
    # Once blocked, even a good key from that address waits; other addresses are unaffected.
    blocked = client.get(
        "/api/v1/segments", HTTP_AUTHORIZATION=f"Api-Key {good}", REMOTE_ADDR="203.0.113.7"
    )
    assert blocked.status_code == 429
    assert 1 <= int(blocked["Retry-After"]) <= settings.CIBLE_API_KEY_FAILURE_WINDOW_SECONDS
    other = client.get(
        "/api/v1/segments", HTTP_AUTHORIZATION=f"Api-Key {good}", REMOTE_ADDR="198.51.100.9"
    )
    assert other.status_code == 200


def test_behind_a_trusted_proxy_the_forwarded_client_is_counted(settings):
    settings.CIBLE_TRUSTED_PROXIES = 1
    client = APIClient()
    limit = settings.CIBLE_API_KEY_FAILURES_PER_WINDOW

    def call(forwarded_for: str) -> int:
        return client.get(
            "/api/v1/segments",
            HTTP_AUTHORIZATION="Api-Key bogus.secret",
            HTTP_X_FORWARDED_FOR=forwarded_for,
            REMOTE_ADDR="10.0.0.1",  # the proxy
        ).status_code

    # The attacker varies what it sends; the proxy appends the address it really saw.
    statuses = [call(f"198.18.0.{n}, 203.0.113.7") for n in range(limit + 1)]
    assert statuses[-1] == 429
    # Another client behind the same proxy is not blocked by the attacker.
    assert call("198.51.100.9") == 401


@pytest.mark.parametrize("forwarded_for", ["", "not-an-address", "999.1.1.1"])
def test_a_login_from_no_or_a_garbled_address_is_recorded_not_a_500(settings, forwarded_for):
    """django-axes stores the client address in an IP column (PostgreSQL refuses anything
    else): a request without REMOTE_ADDR, or a garbled forwarded address, still logs in."""
    from django.test import Client

    settings.CIBLE_TRUSTED_PROXIES = 1
    User.objects.create_user("marie", password="Juste-2026!", is_staff=True)
    client = Client(REMOTE_ADDR="")
    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": "marie", "password": "Juste-2026!"},
        HTTP_X_FORWARDED_FOR=forwarded_for,
    )
    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


@pytest.mark.postgres
def test_force_login_on_postgresql_records_a_valid_address(client):
    """The same on PostgreSQL, where a non-IP value in axes' address column is an error."""
    user = User.objects.create_user("marie", password="Juste-2026!", is_staff=True)
    client.force_login(user)
    assert client.get("/admin/").status_code == 200
