"""A/B/n tests send what each variant says: the experiments app's own wiring (no stand-in
hook), a campaign launched as the product launches it, the real delivery path, real local
SMTP and SMS servers. Each recipient's message is checked against the variant it was given."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from activation.models import OutboxMessage, TemplateVersion
from activation.services import campaign_run_launch, outbox_deliver_batch
from experiments.models import Assignment
from experiments.services import experiment_start
from tests.activation.conftest import NOW, grant
from tests.factories import ExperimentFactory, TemplateFactory, VariantFactory

pytestmark = pytest.mark.django_db


def deliver(channel, now=NOW):
    sent = 0
    while True:
        stats = outbox_deliver_batch(channel=channel, limit=50, now=now)
        sent += stats.sent
        if not stats.claimed:
            return sent


def variant_of(experiment) -> dict[int, str]:
    return dict(
        Assignment.objects.filter(experiment=experiment).values_list("contact_id", "variant__key")
    )


def template(name, channel="email", **locales):
    """A template with one version per locale: ``fr={"subject": …, "html": …}``."""
    made = TemplateFactory(name=name, channel=channel, versions=False)
    for locale, fields in locales.items():
        TemplateVersion.objects.create(template=made, locale=locale, **fields)
    return made


def test_each_recipient_gets_the_subject_body_and_template_of_their_variant(
    smtp_settings, consenting, make_campaign
):
    contacts = consenting(24, locale="fr") + consenting(24, locale="en")
    campaign = make_campaign(contacts)
    rentree = template(
        "Rentrée",
        fr={"subject": "Rentrée : -30 %", "html": "<p>La rentrée, {{ contact.first_name }}</p>"},
        en={"subject": "Back to school: 30% off", "html": "<p>Back to school</p>"},
    )
    experiment = ExperimentFactory(campaign=campaign)
    VariantFactory(experiment=experiment, key="A", is_control=True)
    VariantFactory(experiment=experiment, key="B", subject="B : {{ contact.first_name }}, -20 %")
    VariantFactory(
        experiment=experiment, key="C", subject="Offre C", content="<p>Contenu C pour vous</p>"
    )
    VariantFactory(experiment=experiment, key="D", template=rentree)
    experiment_start(experiment=experiment, now=NOW - timedelta(minutes=1))

    campaign_run_launch(campaign=campaign, now=NOW)
    assert deliver("email") == 48

    given = variant_of(experiment)
    assert set(given.values()) == {"A", "B", "C", "D"}
    for contact in contacts:
        [mail] = smtp_settings.to(contact.email)
        html = mail.get_body(("html",)).get_content()
        text = mail.get_body(("plain",)).get_content()
        key, french = given[contact.pk], contact.locale == "fr"
        if key == "A":
            assert mail["Subject"] == ("Bonjour Camille !" if french else "Hello Camille!")
            assert ("Bonjour Camille," if french else "Hello Camille,") in html
        elif key == "B":
            assert mail["Subject"] == "B : Camille, -20 %"
            assert ("Bonjour Camille," if french else "Hello Camille,") in html
        elif key == "C":
            assert mail["Subject"] == "Offre C"
            assert "Contenu C pour vous" in html and "Contenu C pour vous" in text
            assert "Bonjour" not in html + text and "Hello" not in html + text
        else:
            assert mail["Subject"] == ("Rentrée : -30 %" if french else "Back to school: 30% off")
            assert ("La rentrée, Camille" if french else "Back to school") in html
    assert set(OutboxMessage.objects.values_list("variant", flat=True)) == {"A", "B", "C", "D"}


def test_channel_override_sends_the_variants_contacts_an_sms_instead_of_an_email(
    smtp_settings, sms_provider, consenting, make_campaign
):
    server, _answers = sms_provider
    contacts = consenting(30)
    for contact in contacts:
        grant(contact, channel="sms")
    campaign = make_campaign(contacts)
    sms = template("Flash SMS", channel="sms", fr={"sms_body": "Flash {{ contact.first_name }}"})
    experiment = ExperimentFactory(campaign=campaign)
    VariantFactory(experiment=experiment, key="A", is_control=True)
    VariantFactory(experiment=experiment, key="S", channel="sms", template=sms)
    experiment_start(experiment=experiment, now=NOW - timedelta(minutes=1))

    run = campaign_run_launch(campaign=campaign, now=NOW)
    deliver("email")
    deliver("sms")

    given = variant_of(experiment)
    by_phone = {call.json()["recipient"]: call.json()["content"] for call in server.calls}
    for contact in contacts:
        if given[contact.pk] == "S":
            assert by_phone[contact.phone.lstrip("+")].startswith("Flash Camille")
            assert smtp_settings.to(contact.email) == []
        else:
            assert len(smtp_settings.to(contact.email)) == 1
            assert contact.phone.lstrip("+") not in by_phone
    assert 0 < len(server.calls) < 30
    rows = OutboxMessage.objects.filter(run=run)
    assert set(rows.filter(variant="S").values_list("channel", "state")) == {("sms", "sent")}


def test_channel_override_checks_consent_on_the_variants_channel(
    smtp_settings, sms_provider, consenting, make_campaign
):
    contacts = consenting(30)  # email consent only
    campaign = make_campaign(contacts)
    sms = template("SMS sans consentement", channel="sms", fr={"sms_body": "Hello"})
    experiment = ExperimentFactory(campaign=campaign)
    VariantFactory(experiment=experiment, key="A", is_control=True)
    VariantFactory(experiment=experiment, key="S", channel="sms", template=sms)
    experiment_start(experiment=experiment, now=NOW - timedelta(minutes=1))

    run = campaign_run_launch(campaign=campaign, now=NOW)
    deliver("sms")

    server, _answers = sms_provider
    assert server.calls == []
    s_rows = OutboxMessage.objects.filter(run=run, variant="S")
    assert s_rows.exists()
    assert set(s_rows.values_list("state", "skip_reason")) == {("skipped", "no_consent")}


def test_send_time_override_waits_for_that_time_in_each_contacts_zone(
    smtp_settings, consenting, make_campaign
):
    paris = consenting(20, timezone="Europe/Paris")
    new_york = consenting(20, timezone="America/New_York")
    campaign = make_campaign(
        paris + new_york, quiet_hours_start=time(23, 0), quiet_hours_end=time(5, 0)
    )
    experiment = ExperimentFactory(campaign=campaign)
    VariantFactory(experiment=experiment, key="A", is_control=True)
    VariantFactory(experiment=experiment, key="L", send_time=time(18, 0))
    experiment_start(experiment=experiment, now=NOW - timedelta(minutes=1))

    campaign_run_launch(campaign=campaign, now=NOW)  # 12:00 in Paris, 06:00 in New York
    given = variant_of(experiment)
    late = {c.email for c in paris + new_york if given[c.pk] == "L"}
    assert late and len(late) < 40

    deliver("email", now=NOW)
    assert not late & set(smtp_settings.recipients())
    assert len(smtp_settings.recipients()) == 40 - len(late)

    paris_six_pm = datetime(2026, 6, 10, 16, 0, tzinfo=UTC)  # 18:00 CEST
    deliver("email", now=paris_six_pm)
    arrived = set(smtp_settings.recipients())
    assert {c.email for c in paris if c.email in late} <= arrived
    assert not {c.email for c in new_york if c.email in late} & arrived

    new_york_six_pm = datetime(2026, 6, 10, 22, 0, tzinfo=UTC)  # 18:00 EDT
    deliver("email", now=new_york_six_pm)
    assert late <= set(smtp_settings.recipients())


def test_waiting_variant_message_keeps_its_content_after_the_experiment_ends(
    smtp_settings, consenting, make_campaign
):
    """A variant's message waiting for its send time keeps its content after the test ends."""
    contacts = consenting(20)
    campaign = make_campaign(contacts)
    experiment = ExperimentFactory(campaign=campaign)
    VariantFactory(experiment=experiment, key="A", is_control=True)
    VariantFactory(experiment=experiment, key="B", subject="Sujet B", send_time=time(18, 0))
    experiment_start(experiment=experiment, now=NOW - timedelta(minutes=1))
    campaign_run_launch(campaign=campaign, now=NOW)
    experiment.status = "completed"
    experiment.save(update_fields=["status"])

    deliver("email", now=datetime(2026, 6, 10, 16, 0, tzinfo=UTC))

    given = variant_of(experiment)
    for contact in contacts:
        [mail] = smtp_settings.to(contact.email)
        expected = "Sujet B" if given[contact.pk] == "B" else "Bonjour Camille !"
        assert mail["Subject"] == expected


@pytest.mark.parametrize(
    ("campaign_channel", "variant_channel", "expected"),
    [
        ("email", "", {"subject": "S", "html": "C", "text": ""}),
        ("sms", "", {"sms_body": "C"}),
        ("push", "", {"push_title": "S", "push_body": "C"}),
        ("email", "push", {"channel": "push", "push_title": "S", "push_body": "C"}),
    ],
)
def test_subject_and_content_go_to_the_fields_of_the_variants_channel(
    campaign_channel, variant_channel, expected
):
    from experiments.hooks import variant_message_overrides
    from experiments.models import Variant

    variant = Variant(key="B", subject="S", content="C", channel=variant_channel)
    assert variant_message_overrides(variant, campaign_channel=campaign_channel) == expected


def test_sms_campaign_variant_content_reaches_the_sms_provider(
    sms_provider, consenting, make_campaign
):
    server, _answers = sms_provider
    contacts = consenting(20, channel="sms")
    campaign = make_campaign(contacts, channel="sms")
    experiment = ExperimentFactory(campaign=campaign)
    VariantFactory(experiment=experiment, key="A", is_control=True)
    VariantFactory(
        experiment=experiment, key="B", content="Variante B pour {{ contact.first_name }}"
    )
    experiment_start(experiment=experiment, now=NOW - timedelta(minutes=1))
    campaign_run_launch(campaign=campaign, now=NOW)
    deliver("sms")

    given = variant_of(experiment)
    by_phone = {call.json()["recipient"]: call.json()["content"] for call in server.calls}
    assert len(by_phone) == 20
    for contact in contacts:
        body = by_phone[contact.phone.lstrip("+")]
        if given[contact.pk] == "B":
            assert body.startswith("Variante B pour Camille")
        else:
            assert body.startswith("Bonjour Camille, -20% ce week-end.")


def test_ab_test_built_and_launched_in_the_admin_sends_each_variants_message(
    admin_client, smtp_settings, consenting, make_campaign, django_capture_on_commit_callbacks
):
    """The marketer's path: experiment and variants typed in the admin, started and launched
    with the admin actions; a worker (Celery, in this process) prepares and delivers."""
    from config.celery import app
    from experiments.models import Experiment
    from tests.activation.conftest import quiet_hours_elsewhere
    from tests.experiments.test_admin import experiment_form_data

    contacts = consenting(30)
    campaign = make_campaign(contacts, **quiet_hours_elsewhere())
    rentree = template("Rentrée", fr={"subject": "Rentrée !", "html": "<p>C'est la rentrée</p>"})
    admin_client.post(
        "/admin/experiments/experiment/add/",
        experiment_form_data(
            campaign,
            [
                {"key": "A", "is_control": "on"},
                {"key": "B", "subject": "Pour vous, {{ contact.first_name }}"},
                {"key": "C", "template": rentree.pk},
            ],
        ),
    )
    experiment = Experiment.objects.get()
    admin_client.post(
        "/admin/experiments/experiment/",
        {"action": "start_experiments", "_selected_action": [experiment.pk]},
    )
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            page = admin_client.post(
                "/admin/activation/campaign/",
                {"action": "launch", "_selected_action": [campaign.pk]},
                follow=True,
            ).content.decode()
    finally:
        app.conf.task_always_eager = eager
    assert "is being launched" in page

    given = variant_of(experiment)
    assert set(given.values()) == {"A", "B", "C"}
    expected = {"A": "Bonjour Camille !", "B": "Pour vous, Camille", "C": "Rentrée !"}
    for contact in contacts:
        [mail] = smtp_settings.to(contact.email)
        assert mail["Subject"] == expected[given[contact.pk]]
