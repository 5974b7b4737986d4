"""J6 — a Marketer makes the usual mistakes; each gets a clear message, never a server error.

Cases of issue 15 section 2: a segment URL with a non-numeric id, a template using a variable
that does not exist, an SMS campaign on an email-only template, launching a draft campaign, a
rule without any restricting condition (saved only once confirmed), and a number too large for
any feature (1e400) typed in the rule builder and in the rule's JSON. The ``journey`` fixture
fails the test if any page answered 5xx.
"""

from __future__ import annotations

import pytest

from tests.activation.conftest import segment_with
from tests.e2e.admin_ui import errors_shown, messages_shown, run_action, save, submit
from tests.e2e.conftest import PASSWORD
from tests.factories import CampaignFactory, ContactFactory


def email_only_template():
    from activation.models import Template, TemplateVersion

    template = Template.objects.create(name="Newsletter (email only)", channel="email")
    for locale in ("fr", "en"):
        TemplateVersion.objects.create(
            template=template,
            locale=locale,
            subject="Nouveautés",
            html="<html><body><p>Nouveautés de juin</p></body></html>",
        )
    return template


def type_rule_json(page, rule: str) -> None:
    page.fill("#id_rule", rule)
    page.dispatch_event("#id_rule", "change")


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_marketer_mistakes_get_clear_messages_and_never_a_server_error(
    journey, workers, settings, tmp_path
):
    ContactFactory.create_batch(3)
    segment = segment_with(ContactFactory.create_batch(2), name="Clients")
    template = email_only_template()
    draft = CampaignFactory(name="Rentrée (brouillon)", status="draft", template=template)
    draft.segments.add(segment)
    page = journey.login("Marketer")

    # A segment address with "abc" for an id: back to a page that says so.
    response = journey.open(page, "/admin/segments/segment/abc/change/")
    assert response.status == 200
    assert "doesn’t exist" in messages_shown(page), page.url

    # A template using a variable Cible does not know: refused, field and variable named.
    journey.open(page, "/admin/activation/template/add/")
    page.fill("#id_name", "Fidélité")
    page.select_option("#id_channel", "email")
    page.click("#versions-group a.add-row")
    page.select_option("#id_versions-0-locale", "fr")
    page.fill("#id_versions-0-subject", "Votre statut")
    page.fill(
        "#id_versions-0-html",
        "<html><body><p>Statut : {{ contact.loyalty_tier }}</p></body></html>",
    )
    save(page)
    errors = errors_shown(page)
    assert "loyalty_tier" in errors and "Unknown variable" in errors, errors
    journey.shot(page, "j6-unknown-variable")

    # An SMS campaign on a template that only has email content: refused, with the reason.
    journey.open(page, "/admin/activation/campaign/add/")
    page.fill("#id_name", "Flash SMS")
    page.select_option("#id_purpose", label="newsletter")
    page.select_option("#id_channel", "sms")
    page.select_option("#id_template", label=template.name)
    save(page)
    errors = errors_shown(page)
    assert "The template “Newsletter (email only)” is for Email" in errors, errors

    # Launching a draft: refused, nothing sent.
    run_action(
        page,
        url=f"{journey.url}/admin/activation/campaign/",
        rows=["Rentrée (brouillon)"],
        action="launch",
    )
    assert "is a draft" in messages_shown(page), messages_shown(page)
    from activation.models import CampaignRun

    assert not CampaignRun.objects.filter(campaign=draft, dry_run=False).exists()

    # A rule without any restricting condition: saved only once the marketer confirms.
    journey.open(page, "/admin/segments/segment/add/")
    page.fill("#id_name", "Tout le monde ?")
    type_rule_json(page, '{"all": []}')
    save(page)
    errors = errors_shown(page)
    assert "the segment contains every contact" in errors, errors
    journey.shot(page, "j6-every-contact")
    page.check("#id_confirm_every_contact")
    with workers():
        save(page)
        assert "was added successfully" in messages_shown(page), errors_shown(page)

    # 1e400 typed in the builder's value box, then in the rule's JSON: "out of range".
    journey.open(page, "/admin/segments/segment/add/")
    page.fill("#id_name", "Très gros paniers")
    page.locator("#rule-builder > .rb-group > button", has_text="+ condition").click()
    leaf = page.locator("#rule-builder .rb-leaf").first
    leaf.locator("select").nth(1).select_option(label="total spent")
    leaf.locator("select").nth(2).select_option("gt")
    value = leaf.locator("input").first
    value.fill("1e400")
    value.dispatch_event("change")
    page.click("#rule-preview-button")
    page.wait_for_function("document.querySelector('#rule-preview-text').textContent.length > 0")
    estimate = page.locator("#rule-preview-text").inner_text()
    assert "out of range" in estimate, estimate
    type_rule_json(
        page, '{"type": "feature", "feature": "monetary_total", "op": "gt", "value": 1e400}'
    )
    save(page)
    # The browser's JSON has no number that large (1e400 becomes null before it is sent):
    # the message says the value was too large rather than blaming an empty value.
    errors = errors_shown(page)
    assert "too large" in errors, errors

    # A contacts CSV with a column Cible does not know: before anything is imported, the
    # mapping page names it and shows what will happen to it (kept as a custom attribute,
    # or "(ignore)" if the user prefers) — nothing is dropped without a word.
    # Imports are the administrator's (no role may start one): the demo's superuser.
    from django.contrib.auth.models import User

    from contacts.models import Contact

    settings.MEDIA_ROOT = str(tmp_path / "media")
    User.objects.create_superuser("admin", "admin@example.fr", PASSWORD)
    admin = journey.login("admin")
    journey.open(admin, "/admin/contacts/importjob/upload/")
    admin.select_option("#id_kind", "contacts")
    admin.set_input_files(
        "#id_file",
        files=[
            {
                "name": "crm.csv",
                "mimeType": "text/csv",
                "buffer": b"external_id,email,loyalty_tier\nCRM-9,lea@example.fr,gold\n",
            }
        ],
    )
    admin.fill("#id_source", "crm")
    submit(admin, "button[type=submit].default")
    row = admin.locator("tr", has_text="loyalty_tier").first
    assert row.locator("select option:checked").inner_text() == "attributes.loyalty_tier"
    offered = row.locator("select option").all_inner_texts()
    assert "(ignore)" in offered, offered
    assert not Contact.objects.filter(external_id="CRM-9").exists()

    # The marketers' language: the same mistakes, the same messages, in French.
    page = journey.login("Marketer", language="fr")
    journey.open(page, "/admin/segments/segment/abc/change/")
    assert "n’existe pas" in messages_shown(page), messages_shown(page)
    journey.open(page, "/admin/activation/template/add/")
    page.fill("#id_name", "Fidélité FR")
    page.select_option("#id_channel", "email")
    page.click("#versions-group a.add-row")
    page.select_option("#id_versions-0-locale", "fr")
    page.fill("#id_versions-0-subject", "Votre statut")
    page.fill("#id_versions-0-html", "<p>Statut : {{ contact.loyalty_tier }}</p>")
    save(page)
    assert "Variable inconnue : contact.loyalty_tier" in errors_shown(page), errors_shown(page)
    run_action(
        page,
        url=f"{journey.url}/admin/activation/campaign/",
        rows=["Rentrée (brouillon)"],
        action="launch",
    )
    assert "« Rentrée (brouillon) » est un brouillon" in messages_shown(page)
    journey.shot(page, "j6-draft-launch-fr")
