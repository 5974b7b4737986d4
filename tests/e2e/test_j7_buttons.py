"""J7 — actions are buttons on the object's own page, each confirmed with its real effect.

A Marketer opens a campaign from the sidebar, sends a test to herself (it arrives at the SMTP
server), presses *Launch*, reads the confirmation with the real counts and reasons ("Send to 5
contacts of 7 — 2 excluded: no consent …"), confirms, and a real worker delivers the 5 emails.
An Analyst sees no *Launch* button and a forged POST (with a valid CSRF token) is refused. The
Marketer starts an A/B test and recomputes a segment from their pages; the DPO carries out an
erasure request from its page after its confirmation; an Analyst trains a cluster model from its
page and watches the worker's progress (queued → running → succeeded) on that page.
"""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from tests.activation.conftest import grant, quiet_hours_elsewhere, segment_with
from tests.e2e.admin_ui import messages_shown, submit
from tests.factories import CampaignFactory, ContactFactory, TemplateFactory
from tests.workers import wait_until


def from_sidebar(page, changelist: str, row_text: str) -> None:
    """Click the sidebar entry of ``changelist`` (its URL), then the row showing ``row_text``."""
    with page.expect_navigation():
        page.locator(f'#nav-sidebar-inner a[href="{changelist}"]').first.click()
    with page.expect_navigation():
        page.locator("#result_list tbody tr", has_text=row_text).locator("th a, td a").first.click()


def press(page, label: str) -> None:
    """Press the button ``label`` at the top of an object's page (unfold's actions_detail)."""
    with page.expect_navigation():
        page.locator("a", has_text=label).first.click()


def confirmation(page) -> str:
    return page.locator("#cible-confirm").inner_text()


def confirm(page) -> None:
    submit(page, "#confirm-button")


def newsletter_campaign(name: str = "Rentrée 2026"):
    """7 people in the campaign's segment, 5 of them with newsletter consent by email."""
    consenting = ContactFactory.create_batch(5, locale="fr", first_name="Camille")
    for contact in consenting:
        grant(contact)
    others = ContactFactory.create_batch(2, locale="fr")
    segment = segment_with(consenting + others, name="Abonnés rentrée")
    campaign = CampaignFactory(
        name=name,
        channel="email",
        template=TemplateFactory(channel="email", name="Rentrée"),
        status="active",
        **quiet_hours_elsewhere(),
    )
    campaign.segments.add(segment)
    return campaign, consenting


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_marketer_tests_then_launches_from_the_campaign_page(
    journey, workers, smtp_sink, smtp_settings
):
    from django.contrib.auth.models import User

    sink, _port = smtp_sink
    campaign, consenting = newsletter_campaign()
    User.objects.filter(username="marketer").update(email="camille.martin@boutique.example.fr")
    page = journey.login("Marketer")
    from_sidebar(page, "/admin/activation/campaign/", "Rentrée 2026")

    press(page, "Test send to myself")
    assert "camille.martin@boutique.example.fr" in confirmation(page)
    confirm(page)
    assert "Test message sent to camille.martin@boutique.example.fr" in messages_shown(page)
    wait_until(lambda: len(sink.messages) == 1, timeout=30, what="the test email")
    assert sink.messages[0]["To"] == "camille.martin@boutique.example.fr"
    assert sink.messages[0]["Subject"].startswith("[TEST]")

    press(page, "Launch")
    text = confirmation(page)
    assert "Send to 5 contacts of 7 — 2 excluded: no consent for this purpose and channel (2)." in (
        text
    ), text
    journey.shot(page, "j7-launch-confirmation")
    assert len(sink.messages) == 1  # the confirmation page sent nothing
    with workers():
        confirm(page)
        assert "is being launched" in messages_shown(page)
        wait_until(lambda: len(sink.messages) == 6, timeout=120, what="5 campaign emails")
    received = sorted(m["To"] for m in sink.messages[1:])
    assert received == sorted(c.email for c in consenting)


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_analyst_sees_no_launch_button_and_a_forged_post_is_refused(journey):
    from activation.models import CampaignRun

    campaign, _people = newsletter_campaign()
    page = journey.login("Analyst")
    from_sidebar(page, "/admin/activation/campaign/", "Rentrée 2026")
    assert page.locator("a", has_text="Dry run").count() >= 1
    assert page.locator(f'a[href$="/{campaign.pk}/launch/"]').count() == 0

    url = f"{journey.url}/admin/activation/campaign/{campaign.pk}/launch/"
    assert journey.open(page, url.removeprefix(journey.url)).status == 403
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    forged = page.request.post(
        url, form={"confirm": "yes"}, headers={"X-CSRFToken": token, "Referer": url}
    )
    assert forged.status == 403
    assert not CampaignRun.objects.exists()


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_marketer_starts_an_experiment_and_recomputes_a_segment_from_buttons(journey):
    from experiments.models import Experiment
    from segments.services import segment_create
    from tests.factories import ExperimentFactory, VariantFactory

    campaign, _people = newsletter_campaign()
    experiment = ExperimentFactory(name="Objet de la rentrée", campaign=campaign)
    VariantFactory(experiment=experiment, key="A", is_control=True, position=0)
    VariantFactory(experiment=experiment, key="B", subject="Dernière chance", position=1)
    ContactFactory.create_batch(3, country="BE")
    segment_create(
        name="Belgique", rule={"type": "field", "field": "country", "op": "eq", "value": "BE"}
    )
    page = journey.login("Marketer")

    from_sidebar(page, "/admin/experiments/experiment/", "Objet de la rentrée")
    press(page, "Start")
    assert "keeps it for the life of the experiment" in confirmation(page)
    confirm(page)
    assert "Objet de la rentrée started." in messages_shown(page)
    assert Experiment.objects.get(pk=experiment.pk).status == "running"

    from_sidebar(page, "/admin/segments/segment/", "Belgique")
    press(page, "Recompute now")
    assert "not been computed yet" in confirmation(page)
    confirm(page)
    assert "“Belgique” recomputed: 3 contacts (before: 0)." in messages_shown(page)


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_dpo_carries_out_an_erasure_from_its_page(journey):
    from consent.models import RightsRequest
    from contacts.models import Contact

    contact = ContactFactory(
        external_id="CLI-4242", email="lea.durand@example.fr", first_name="Léa", last_name="Durand"
    )
    RightsRequest.objects.create(
        kind="erasure", contact=contact, requester=contact.email, received_at=timezone.now()
    )
    page = journey.login("DPO")

    from_sidebar(page, "/admin/consent/rightsrequest/", "Léa Durand")
    press(page, "Carry out this request")
    text = confirmation(page)
    assert "erased for good" in text and "CLI-4242" in text
    assert Contact.objects.get(pk=contact.pk).email == "lea.durand@example.fr"
    journey.shot(page, "j7-erasure-confirmation")
    confirm(page)
    assert "is carried out" in messages_shown(page)
    assert Contact.objects.get(pk=contact.pk).email == ""
    assert RightsRequest.objects.get().completed_at is not None


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_analyst_trains_a_cluster_model_from_its_page_and_sees_progress(journey, workers):
    from segments.ml.models import ClusterModel
    from segments.services import features_refresh

    call_command("seed_demo", contacts=300, events_per_contact=10, seed=7, stdout=StringIO())
    features_refresh()
    ClusterModel.objects.create(name="profils", k=3, seed=2, sample_size=300)
    page = journey.login("Analyst")

    from_sidebar(page, "/admin/segments_ml/clustermodel/", "profils")
    assert "Never trained." in page.locator("#content").inner_text()
    press(page, "Train now")
    assert "fits 3 clusters" in confirmation(page)
    confirm(page)
    assert "This page follows its progress" in messages_shown(page)
    assert page.locator("#training-progress").get_attribute("data-status") == "queued"
    journey.shot(page, "j7-training-queued")
    seen = set()
    with workers():
        # The page reloads itself while the training is queued or running.
        def finished() -> bool:
            state = page.locator("#training-progress").get_attribute("data-status")
            seen.add(state)
            return state in ("succeeded", "failed")

        wait_until(finished, timeout=180, what="the training to finish on the page")
    text = page.locator("#training-progress").inner_text()
    assert page.locator("#training-progress").get_attribute("data-status") == "succeeded", text
    assert "queued" in seen
