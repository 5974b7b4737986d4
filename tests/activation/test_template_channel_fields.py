"""A template's versions show only their channel's fields: an email its subject, HTML and text,
an SMS its text and length, a push its title, body and link. A template whose channel is changed
comes back with the new channel's fields and what they need, never a server error."""

from __future__ import annotations

import pytest

from activation.models import Template, TemplateVersion

pytestmark = pytest.mark.django_db

EMAIL = ("subject", "html", "text")
SMS = ("sms_body",)
PUSH = ("push_title", "push_body", "push_url")


def inputs_on(page: str) -> set[str]:
    return {name for name in (*EMAIL, *SMS, *PUSH) if f'name="versions-0-{name}"' in page}


def template_with_version(channel: str, **fields) -> Template:
    template = Template.objects.create(name=f"Bienvenue ({channel})", channel=channel)
    TemplateVersion.objects.create(template=template, locale="fr", **fields)
    return template


@pytest.mark.parametrize(
    ("channel", "fields", "shown"),
    [
        ("email", {"subject": "Bonjour", "html": "<p>Bonjour</p>"}, set(EMAIL)),
        ("sms", {"sms_body": "Bonjour"}, set(SMS)),
        ("push", {"push_title": "Bonjour", "push_body": "Nouveautés"}, set(PUSH)),
    ],
)
def test_saved_template_shows_only_its_channel_fields(admin_client, channel, fields, shown):
    template = template_with_version(channel, **fields)

    page = admin_client.get(f"/admin/activation/template/{template.pk}/change/")

    assert page.status_code == 200
    assert inputs_on(page.content.decode()) == shown
    assert ("characters" in page.content.decode()) == (channel == "sms")  # the SMS length


def test_new_template_offers_every_field_until_a_channel_is_saved(admin_client):
    page = admin_client.get("/admin/activation/template/add/").content.decode()

    for name in (*EMAIL, *SMS, *PUSH):
        assert f'name="versions-__prefix__-{name}"' in page
    assert "cible/template_channel" in page  # hides the other channels' fields once picked


def test_changing_the_channel_brings_its_fields_back_with_what_they_need(admin_client):
    template = template_with_version("email", subject="Bonjour", html="<p>Bonjour</p>")
    version = template.versions.get()
    data = {
        "name": template.name,
        "channel": "sms",
        "default_locale": "fr",
        "versions-TOTAL_FORMS": "1",
        "versions-INITIAL_FORMS": "1",
        "versions-0-id": str(version.pk),
        "versions-0-template": str(template.pk),
        "versions-0-locale": "fr",
    }

    response = admin_client.post(f"/admin/activation/template/{template.pk}/change/", data)

    assert response.status_code == 200  # redisplayed, not saved
    page = response.content.decode()
    assert inputs_on(page) == set(SMS)
    assert "This SMS template needs this content in every locale." in page
    template.refresh_from_db()
    assert template.channel == "email"

    data["versions-0-sms_body"] = "Bonjour, -10 % ce week-end"
    response = admin_client.post(f"/admin/activation/template/{template.pk}/change/", data)

    assert response.status_code == 302
    version.refresh_from_db()
    template.refresh_from_db()
    assert (template.channel, version.sms_body) == ("sms", "Bonjour, -10 % ce week-end")
    assert version.subject == "Bonjour"  # the email content is kept, not erased
