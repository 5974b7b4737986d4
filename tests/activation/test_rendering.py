"""Template rendering: fallbacks, escaping per field, locale choice, features in context."""

from __future__ import annotations

import pytest

from activation.models import TemplateVersion
from activation.rendering import message_render, template_version_for
from tests.factories import ContactFactory, TemplateFactory

pytestmark = pytest.mark.django_db


def test_html_is_escaped_but_subject_text_and_sms_are_not():
    contact = ContactFactory(first_name="Tom & <Jerry>")
    version = TemplateVersion(
        locale="fr",
        subject="Pour {{ contact.first_name }}",
        html="<p>{{ contact.first_name }}</p>",
        sms_body="{{ contact.first_name }}",
    )
    rendered = message_render(version=version, contact=contact)
    assert rendered.subject == "Pour Tom & <Jerry>"
    assert rendered.sms_body == "Tom & <Jerry>"
    assert rendered.html == "<p>Tom &amp; &lt;Jerry&gt;</p>"
    assert rendered.text == "Tom & <Jerry>"  # derived from the HTML when left empty


def test_fallbacks_and_features_in_context():
    contact = ContactFactory(first_name="")
    version = TemplateVersion(
        locale="fr",
        subject="Bonjour {{ contact.first_name|default:'à vous' }}",
        text="{% if features %}{{ features.frequency_90d }} achats{% else %}Bienvenue{% endif %}",
    )
    rendered = message_render(version=version, contact=contact, features=None)
    assert (rendered.subject, rendered.text) == ("Bonjour à vous", "Bienvenue")

    class Features:
        frequency_90d = 4

    assert message_render(version=version, contact=contact, features=Features()).text == "4 achats"


@pytest.mark.parametrize(
    ("locale", "expected"), [("fr", "fr"), ("en", "en"), ("en-GB", "en"), ("de", "fr"), ("", "fr")]
)
def test_version_for_locale_falls_back_to_the_default_locale(locale, expected):
    template = TemplateFactory()
    assert template_version_for(template, locale).locale == expected


def test_marketers_see_french_labels():
    from django.utils import translation

    from activation.models import SkipReason

    with translation.override("fr"):
        assert (
            str(SkipReason.NO_CONSENT.label)
            == "Pas de consentement pour cette finalité et ce canal"
        )
        assert str(SkipReason.QUIET_HOURS.label) == "Heures de silence dans le fuseau du contact"
