"""The buttons on a campaign's own page: each shows its effect (computed now) before it
happens, runs the one service on confirmation, and is neither shown nor accepted without the
permission."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.core import mail

from activation.journeys.models import ScheduledOccurrence
from activation.models import CampaignRun, CampaignStatus
from ops.roles import roles_sync
from tests.activation.conftest import quiet_hours_elsewhere
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db


def person(client, role: str, email: str = "") -> User:
    roles_sync()
    user = User.objects.create_user(role.lower(), email=email, password="x", is_staff=True)
    user.groups.add(Group.objects.get(name=role))
    client.force_login(user)
    return user


@pytest.fixture
def campaign(consenting, make_campaign):
    contacts = consenting(3) + ContactFactory.create_batch(2)  # 2 without consent
    return make_campaign(contacts, status=CampaignStatus.ACTIVE, **quiet_hours_elsewhere())


def page(campaign) -> str:
    return f"/admin/activation/campaign/{campaign.pk}/change/"


def test_launch_confirmation_states_counts_and_reasons_then_launches(client, campaign):
    person(client, "Marketer")
    assert f"/admin/activation/campaign/{campaign.pk}/launch/" in client.get(page(campaign)).text

    confirm = client.get(f"/admin/activation/campaign/{campaign.pk}/launch/")

    assert confirm.status_code == 200
    text = confirm.text
    assert (
        "Send to 3 contacts of 5 — 2 excluded: no consent for this purpose and channel (2)." in text
    )
    assert CampaignRun.objects.count() == 0  # nothing happened yet
    done = client.post(
        f"/admin/activation/campaign/{campaign.pk}/launch/", {"confirm": "yes"}, follow=True
    )
    assert "is being launched" in done.text
    assert (
        ScheduledOccurrence.objects.filter(schedule__campaign=campaign).count() == 0
    )  # after commit


def test_launch_refusal_is_shown_and_no_confirm_button(client, campaign):
    person(client, "Marketer")
    campaign.status = CampaignStatus.DRAFT
    campaign.save()

    confirm = client.get(f"/admin/activation/campaign/{campaign.pk}/launch/")

    assert "is a draft" in confirm.text
    assert 'id="confirm-button"' not in confirm.text
    client.post(f"/admin/activation/campaign/{campaign.pk}/launch/", {"confirm": "yes"})
    assert not CampaignRun.objects.exists()


def test_analyst_sees_no_launch_button_and_a_forged_post_is_refused(client, campaign):
    person(client, "Analyst")
    shown = client.get(page(campaign)).text
    assert f"/{campaign.pk}/launch/" not in shown
    assert f"/{campaign.pk}/dry-run/" in shown  # the Analyst may dry-run

    forged = client.post(f"/admin/activation/campaign/{campaign.pk}/launch/", {"confirm": "yes"})

    assert forged.status_code == 403
    assert not ScheduledOccurrence.objects.exists() and not CampaignRun.objects.exists()


def test_dry_run_button_records_a_dry_run(client, campaign):
    person(client, "Analyst")
    done = client.post(
        f"/admin/activation/campaign/{campaign.pk}/dry-run/", {"confirm": "yes"}, follow=True
    )
    assert "3 of 5 contacts would receive it" in done.text
    assert CampaignRun.objects.get().dry_run


def test_test_send_goes_to_the_logged_in_user(client, campaign, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    person(client, "Marketer", email="camille@shop.example.fr")
    confirm = client.get(f"/admin/activation/campaign/{campaign.pk}/test-send/")
    assert "camille@shop.example.fr" in confirm.text

    done = client.post(
        f"/admin/activation/campaign/{campaign.pk}/test-send/", {"confirm": "yes"}, follow=True
    )

    assert "Test message sent to camille@shop.example.fr" in done.text
    assert [m.to for m in mail.outbox] == [["camille@shop.example.fr"]]
    assert mail.outbox[0].subject.startswith("[TEST]")


def test_pause_resume_cancel_buttons(client, campaign):
    person(client, "Marketer")
    url = f"/admin/activation/campaign/{campaign.pk}/"
    assert "held until you resume" in client.get(url + "pause/").text
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.ACTIVE  # the confirmation page changes nothing
    client.post(url + "pause/", {"confirm": "yes"})
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.PAUSED
    client.post(url + "resume/", {"confirm": "yes"})
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.ACTIVE
    client.post(url + "cancel/", {"confirm": "yes"})
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.ARCHIVED


def test_launch_confirmation_in_french_with_french_numbers(client, consenting, make_campaign):
    contacts = consenting(1234) + ContactFactory.create_batch(2)
    campaign = make_campaign(contacts, status=CampaignStatus.ACTIVE, **quiet_hours_elsewhere())
    person(client, "Marketer")

    text = client.get(
        f"/admin/activation/campaign/{campaign.pk}/launch/", HTTP_ACCEPT_LANGUAGE="fr"
    ).text

    shown = text.replace("\u00a0", " ").replace("\u202f", " ").replace("&nbsp;", " ")
    assert "Envoyer à 1 234 contacts sur 1 236 — 2 exclus :" in shown
    assert "Oui, l’envoyer maintenant" in text
