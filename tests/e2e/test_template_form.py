"""A Marketer writing a new template sees only the picked channel's fields in each language's
version: an SMS its text, an email its subject, HTML and text — and saves the SMS template
with its text alone."""

from __future__ import annotations

import pytest

from tests.e2e.admin_ui import add_inline_row, errors_shown, messages_shown, save


def visible(page, row: int, name: str) -> bool:
    return page.locator(f"#id_versions-{row}-{name}").is_visible()


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_new_template_shows_only_the_picked_channel_fields(journey):
    from activation.models import Template

    page = journey.login("Marketer")
    journey.open(page, "/admin/activation/template/add/")
    page.fill("#id_name", "Rappel panier (SMS)")
    page.select_option("#id_channel", "sms")
    row = add_inline_row(page, "versions")

    assert visible(page, row, "sms_body")
    assert not any(visible(page, row, name) for name in ("subject", "html", "push_title"))

    page.select_option("#id_channel", "email")
    assert all(visible(page, row, name) for name in ("subject", "html", "text"))
    assert not visible(page, row, "sms_body")

    page.select_option("#id_channel", "sms")
    page.select_option(f"#id_versions-{row}-locale", "fr")
    page.fill(f"#id_versions-{row}-sms_body", "Votre panier vous attend : -10 % jusqu'à ce soir")
    journey.shot(page, "template-sms")
    save(page)

    assert "was added successfully" in messages_shown(page), errors_shown(page)
    template = Template.objects.get(name="Rappel panier (SMS)")
    assert template.channel == "sms"
    assert template.versions.get().sms_body.startswith("Votre panier vous attend")
