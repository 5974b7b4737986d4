"""Contact lifecycle (erasure, merge, export), the run_campaign command and the admin."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from activation.models import CampaignRun, DeliveryAttempt, OutboxMessage
from activation.services import campaign_run_launch, outbox_deliver_batch
from tests.activation.conftest import NOW, quiet_hours_elsewhere
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser("admin", "admin@example.fr", "x"))
    return client


def test_erasure_cancels_pending_messages_and_scrubs_errors(consenting, make_campaign):
    from consent.services import erase_contact

    contact = consenting(1)[0]
    run = campaign_run_launch(campaign=make_campaign([contact]), now=NOW)
    OutboxMessage.objects.filter(run=run).update(error="550 <contact0@example.fr> unknown")

    erase_contact(contact=contact, actor="dpo")

    row = OutboxMessage.objects.get(run=run)
    assert row.state == "cancelled" and row.error == ""
    assert outbox_deliver_batch(channel="email", limit=10).claimed == 0
    assert mail.outbox == []


def test_merge_moves_outbox_rows_and_never_doubles_a_message(consenting, make_campaign):
    from activation.receivers import on_contacts_merged

    survivor, duplicate, sent_dup = consenting(3)
    both = campaign_run_launch(campaign=make_campaign([survivor, duplicate]), now=NOW)
    only_dup = campaign_run_launch(campaign=make_campaign([duplicate]), now=NOW)
    survivor_sent = campaign_run_launch(campaign=make_campaign([survivor, sent_dup]), now=NOW)
    survivor_sent.messages.filter(contact=sent_dup).update(state="sent", sent_at=NOW)

    # What contacts.services.merge_contacts sends inside its transaction.
    on_contacts_merged(None, survivor_id=survivor.pk, merged_ids=[duplicate.pk, sent_dup.pk])

    assert OutboxMessage.objects.filter(run=both).count() == 1  # one message, not two
    assert OutboxMessage.objects.get(run=only_dup).contact_id == survivor.pk
    # The message already sent to the duplicate is the one kept: nobody gets it twice.
    kept = OutboxMessage.objects.get(run=survivor_sent)
    assert (kept.contact_id, kept.state) == (survivor.pk, "sent")


def test_export_contains_the_messages_section(consenting, make_campaign):
    from consent.services import export_contact_data

    contact = consenting(1)[0]
    campaign = make_campaign([contact], name="Soldes d'été")
    campaign_run_launch(campaign=campaign, now=NOW)
    outbox_deliver_batch(channel="email", limit=10)

    data = export_contact_data(contact=contact)

    [message] = data["messages"]
    assert message["campaign"] == "Soldes d'été"
    assert message["state"] == "sent" and message["channel"] == "email"


def test_run_campaign_command_dry_run_prints_counts_and_samples(consenting, make_campaign):
    contacts = consenting(2) + ContactFactory.create_batch(1, external_id="NOPE-1")
    campaign = make_campaign(contacts, **quiet_hours_elsewhere())
    out = StringIO()

    call_command("run_campaign", campaign.pk, "--dry-run", stdout=out)

    text = out.getvalue()
    assert "audience 3" in text
    assert "would receive: 2" in text
    assert "No consent for this purpose and channel: 1" in text
    assert "e.g. NOPE-1" in text
    assert not OutboxMessage.objects.exists()


def test_run_campaign_command_delivers(consenting, make_campaign):
    contacts = consenting(2)
    out = StringIO()
    campaign = make_campaign(contacts, **quiet_hours_elsewhere())
    call_command("run_campaign", campaign.pk, "--deliver", stdout=out)
    assert "sent 2" in out.getvalue()
    assert sorted(m.to[0] for m in mail.outbox) == sorted(c.email for c in contacts)


def test_run_campaign_unknown_id_fails_with_a_clear_message():
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="campaign 999 does not exist"):
        call_command("run_campaign", 999)


def test_admin_template_preview_for_a_sample_contact_and_test_send(admin_client, consenting):
    from tests.factories import TemplateFactory

    template = TemplateFactory(channel="email")
    contact = consenting(1, first_name="Inès", locale="fr")[0]
    url = f"/admin/activation/template/{template.pk}/preview/"

    page = admin_client.get(url, {"contact": contact.pk}).content.decode()
    assert "Bonjour Inès !" in page
    assert "Bonjour Inès," in page

    response = admin_client.post(
        url, {"contact": contact.pk, "locale": "en", "to": "marketing@example.fr", "action": "send"}
    )
    assert response.status_code == 200
    [message] = mail.outbox
    assert message.to == ["marketing@example.fr"]
    assert message.subject == "[TEST] Hello Inès!"
    assert not OutboxMessage.objects.exists()  # a test send is not a campaign message


def test_admin_template_editor_shows_sms_segments_and_rejects_broken_syntax(admin_client):
    from tests.factories import TemplateFactory

    template = TemplateFactory(channel="sms")
    page = admin_client.get(f"/admin/activation/template/{template.pk}/change/").content.decode()
    assert re.search(r"GSM-7, \d+ characters, 1 SMS", page)

    data = {
        "name": template.name,
        "channel": "sms",
        "default_locale": "fr",
        "versions-TOTAL_FORMS": "1",
        "versions-INITIAL_FORMS": "0",
        "versions-0-locale": "fr",
        "versions-0-sms_body": "Bonjour {% if contact.first_name %}{{ contact.first_name }}",
    }
    TemplateFactory._meta.model.objects.filter(pk=template.pk).first().versions.all().delete()
    response = admin_client.post(f"/admin/activation/template/{template.pk}/change/", data)
    assert response.status_code == 200  # form redisplayed with the error
    assert "errorlist" in response.content.decode()
    assert "Unclosed tag on line 1: &#x27;if&#x27;" in response.content.decode()


def test_admin_dry_run_action_then_run_page_shows_counts(admin_client, consenting, make_campaign):
    campaign = make_campaign(
        consenting(3) + ContactFactory.create_batch(2), **quiet_hours_elsewhere()
    )

    response = admin_client.post(
        "/admin/activation/campaign/",
        {"action": "dry_run", "_selected_action": [campaign.pk]},
        follow=True,
    )
    assert "3 of 5 contacts would receive it" in response.content.decode()
    run = CampaignRun.objects.get(campaign=campaign)
    page = admin_client.get(f"/admin/activation/campaignrun/{run.pk}/change/").content.decode()
    assert "No consent for this purpose and channel" in page


def test_admin_run_progress_and_retry_failed(admin_client, consenting, make_campaign):
    contacts = consenting(4)
    run = campaign_run_launch(campaign=make_campaign(contacts), now=NOW)
    outbox_deliver_batch(channel="email", limit=2)
    OutboxMessage.objects.filter(run=run, contact=contacts[3]).update(state="failed", error="x")

    listing = admin_client.get("/admin/activation/campaignrun/").content.decode()
    assert "75%" in listing  # progress counts sent, failed, skipped and cancelled as done

    response = admin_client.post(
        "/admin/activation/outboxmessage/",
        {
            "action": "retry_failed",
            "_selected_action": list(run.messages.values_list("pk", flat=True)),
        },
        follow=True,
    )
    assert "1 failed message queued again." in response.content.decode()
    assert not run.messages.filter(state="failed").exists()
    assert run.messages.get(contact=contacts[3]).state == "queued"
    filtered = admin_client.get("/admin/activation/outboxmessage/", {"state": "sent"})
    assert filtered.status_code == 200
    log = admin_client.get("/admin/activation/deliveryattempt/", {"outcome": "sent"})
    assert log.status_code == 200 and DeliveryAttempt.objects.count() == 2


def test_admin_pages_render(admin_client, consenting, make_campaign):
    campaign = make_campaign(consenting(1))
    campaign_run_launch(campaign=campaign, now=timezone.now())
    for url in (
        "/admin/activation/template/",
        "/admin/activation/campaign/",
        f"/admin/activation/campaign/{campaign.pk}/change/",
        "/admin/activation/campaignrun/",
        "/admin/activation/outboxmessage/",
        "/admin/activation/deliveryattempt/",
        "/admin/activation/attribution/",
    ):
        assert admin_client.get(url).status_code == 200, url


def test_admin_launch_enqueues_the_launch_once_the_request_commits(
    admin_client, consenting, make_campaign, django_capture_on_commit_callbacks
):
    campaign = make_campaign(consenting(2))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = admin_client.post(
            "/admin/activation/campaign/",
            {"action": "launch", "_selected_action": [campaign.pk]},
            follow=True,
        )
    assert f"“{campaign.name}” is being launched" in response.content.decode()
    assert not CampaignRun.objects.exists()  # a worker launches it
    assert len(callbacks) == 1  # the task is sent only once the request commits
