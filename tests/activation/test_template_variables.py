"""A template using a variable the message cannot resolve (``{{ contact.loyalty_tier }}``) is
refused at save with the field and the variable named, and listed by a dry run — instead of
rendering blank in every message sent."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from activation.models import CampaignRun, Template, TemplateVersion

pytestmark = pytest.mark.django_db


def template_form(**fr_fields) -> dict:
    data = {
        "name": "Fidélité",
        "channel": "email",
        "default_locale": "fr",
        "versions-TOTAL_FORMS": 1,
        "versions-INITIAL_FORMS": 0,
        "versions-MIN_NUM_FORMS": 0,
        "versions-MAX_NUM_FORMS": 1000,
        "versions-0-locale": "fr",
    }
    data.update({f"versions-0-{k}": v for k, v in fr_fields.items()})
    return data


def test_unknown_variable_is_refused_at_save_naming_field_and_variable(admin_client):
    response = admin_client.post(
        "/admin/activation/template/add/",
        template_form(
            subject="Votre statut {{ contact.loyalty_tier }}",
            html="<p>Bonjour {{ contact.first_name }}, {{ features.score_fidelite|default:'' }}</p>",
        ),
    )
    assert response.status_code == 200
    errors = response.context["inline_admin_formsets"][0].formset.errors[0]
    assert "contact.loyalty_tier" in errors["subject"][0]
    assert "features.score_fidelite" in errors["html"][0]
    assert "contact.attributes.<key>" in errors["subject"][0]  # what may be used instead
    assert "contact.loyalty_tier" in response.content.decode()
    assert not Template.objects.exists()


def test_known_variables_save(admin_client):
    response = admin_client.post(
        "/admin/activation/template/add/",
        template_form(
            subject="{{ contact.first_name }}, statut {{ contact.attributes.loyalty_tier }}",
            html=(
                "<p>{{ features.recency_days }} jours — {{ campaign.name }}</p>"
                '{% for x in "ab" %}{{ x }}{{ forloop.counter }}{% endfor %}'
                '<a href="{{ unsubscribe_url }}">désabonnement</a>'
                '<a href="{{ preferences_url }}">préférences</a>'
            ),
        ),
    )
    assert response.status_code == 302
    assert TemplateVersion.objects.get().subject.startswith("{{ contact.first_name }}")


def test_dry_run_lists_unknown_variables_of_a_template_saved_before_the_check(
    admin_client, consenting, make_campaign
):
    campaign = make_campaign(consenting(2))
    # Saved before this check existed (or by code): the database holds it as is.
    TemplateVersion.objects.filter(template=campaign.template, locale="en").update(
        subject="Your tier: {{ contact.loyalty_tier }}"
    )
    page = admin_client.post(
        "/admin/activation/campaign/",
        {"action": "dry_run", "_selected_action": [campaign.pk]},
        follow=True,
    ).content.decode()
    assert (
        "(en.subject) uses unknown variables, which would render blank: contact.loyalty_tier"
        in (page.replace("&quot;", '"'))
    )
    run = CampaignRun.objects.get(dry_run=True)
    run_page = admin_client.get(f"/admin/activation/campaignrun/{run.pk}/change/").content
    assert b"en.subject" in run_page and b"contact.loyalty_tier" in run_page
    out = StringIO()
    call_command("run_campaign", campaign.pk, "--dry-run", stdout=out)
    assert (
        "unknown variables in the template (en.subject), rendered blank: contact.loyalty_tier"
        in (out.getvalue())
    )


@pytest.mark.parametrize(
    "html",
    [
        "{{ features.recency_days|divisibleby:0 }}",
        '{% include "admin/base.html" %}',
        "{% if 1 %}" * 3000 + "x" + "{% endif %}" * 3000,
    ],
)
def test_a_source_that_fails_to_render_is_refused_not_a_500(admin_client, html):
    response = admin_client.post("/admin/activation/template/add/", template_form(html=html))
    assert response.status_code == 200
    errors = response.context["inline_admin_formsets"][0].formset.errors[0]
    assert errors["html"]
    assert not Template.objects.exists()
