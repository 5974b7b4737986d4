"""Template test send: ``{{ unsubscribe_url }}`` is a real, working unsubscribe link (it used to
render ``href=''``), in the preview and in the message that leaves."""

from __future__ import annotations

import re

import pytest

from consent.selectors import contactable
from contacts.models import Contact
from tests.factories import TemplateFactory

pytestmark = pytest.mark.django_db


def test_test_send_carries_a_working_unsubscribe_link(
    admin_client, smtp_settings, consenting, make_campaign
):
    contact = consenting(1)[0]
    campaign = make_campaign([contact])  # its template's link must withdraw its purpose
    url = f"/admin/activation/template/{campaign.template_id}/preview/"

    preview = admin_client.get(url, {"contact": contact.pk}).content.decode()
    assert "href=&#x27;&#x27;" not in preview and "/consent/unsubscribe/" in preview

    response = admin_client.post(
        url, {"contact": contact.pk, "to": "qa@example.fr", "action": "send"}, follow=True
    )
    assert "Test message sent." in response.content.decode()
    [mail] = smtp_settings.to("qa@example.fr")
    assert mail["Subject"].startswith("[TEST]")
    html = mail.get_body(("html",)).get_content()
    assert 'href=""' not in html
    link = re.search(r'href="(http[^"]*/consent/unsubscribe/[^"]+)"', html).group(1)

    path = link.split("://", 1)[1].partition("/")[2]
    assert admin_client.get("/" + path).status_code == 200  # the confirmation page
    admin_client.post("/" + path)
    reachable = contactable(
        Contact.objects.filter(pk=contact.pk), purpose=campaign.purpose, channel="email"
    )
    assert not reachable.exists()


def test_test_send_of_a_template_no_campaign_uses_yet_still_has_a_link(
    admin_client, smtp_settings, consenting
):
    contact = consenting(1)[0]
    template = TemplateFactory()
    admin_client.post(
        f"/admin/activation/template/{template.pk}/preview/",
        {"contact": contact.pk, "to": "qa@example.fr", "action": "send"},
    )
    html = smtp_settings.to("qa@example.fr")[0].get_body(("html",)).get_content()
    assert re.search(r'href="http[^"]*/consent/unsubscribe/[^"]+"', html)
