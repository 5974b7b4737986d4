"""Email delivery through a real SMTP server (aiosmtpd): headers, retries, failures, no doubles."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from activation.models import DeliveryAttempt, OutboxMessage
from activation.services import campaign_run_launch, outbox_deliver_batch
from consent.models import Suppression
from tests.activation.conftest import NOW, withdraw

pytestmark = pytest.mark.django_db


def deliver_all(channel="email", now=None):
    total = 0
    while True:
        stats = outbox_deliver_batch(channel=channel, limit=50, now=now)
        total += stats.sent
        if not stats.claimed:
            return total


def test_marketing_email_arrives_with_html_text_message_id_and_rfc8058_headers(
    smtp_settings, consenting, make_campaign
):
    contact = consenting(1, first_name="Zoé")[0]
    run = campaign_run_launch(campaign=make_campaign([contact]), now=NOW)

    assert deliver_all() == 1

    [message] = smtp_settings.to(contact.email)
    row = OutboxMessage.objects.get(run=run)
    assert row.state == "sent" and row.sent_at is not None
    assert message["Message-ID"] == row.message_id
    assert message["Subject"] == "Bonjour Zoé !"
    assert message["List-Unsubscribe"].strip().startswith("<http")
    assert "/consent/unsubscribe/" in message["List-Unsubscribe"]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    assert "Bonjour Zoé," in html and "Bonjour Zoé," in text
    assert "/t/o/" in html  # open pixel
    assert "/t/c/" in html and "https://shop.example.fr/soldes" not in html  # tracked link
    assert "/consent/unsubscribe/" in html  # our own link is not rewritten
    assert DeliveryAttempt.objects.get(message=row).outcome == "sent"


def test_contact_gets_the_version_of_their_locale(smtp_settings, consenting, make_campaign):
    fr, en = consenting(1, locale="fr")[0], consenting(1, locale="en")[0]
    campaign_run_launch(campaign=make_campaign([fr, en]), now=NOW)
    deliver_all()
    assert smtp_settings.to(fr.email)[0]["Subject"] == "Bonjour Camille !"
    assert smtp_settings.to(en.email)[0]["Subject"] == "Hello Camille!"


def test_withdrawn_consent_after_snapshot_blocks_send(smtp_settings, consenting, make_campaign):
    stays, leaves = consenting(2)
    run = campaign_run_launch(campaign=make_campaign([stays, leaves]), now=NOW)
    assert OutboxMessage.objects.filter(run=run, state="queued").count() == 2

    withdraw(leaves, at=timezone.now() - timedelta(seconds=30))
    deliver_all()

    assert smtp_settings.recipients() == {stays.email: 1}
    row = OutboxMessage.objects.get(run=run, contact=leaves)
    assert (row.state, row.skip_reason) == ("skipped", "consent_withdrawn")


def test_suppressed_after_snapshot_is_not_sent(smtp_settings, consenting, make_campaign):
    from consent.services import suppression_add

    contact = consenting(1)[0]
    run = campaign_run_launch(campaign=make_campaign([contact]), now=NOW)
    suppression_add(channel="email", address=contact.email, reason="complaint", source="t")
    deliver_all()
    assert smtp_settings.messages == []
    assert OutboxMessage.objects.get(run=run).skip_reason == "consent_withdrawn"


def test_temporary_smtp_error_is_retried_with_backoff_then_sent(
    smtp_settings, consenting, make_campaign, settings
):
    settings.ACTIVATION_RETRY_BASE_SECONDS = 60
    contact = consenting(1)[0]
    smtp_settings.rcpt_replies[contact.email] = ["451 4.7.1 Greylisted, try again later"]
    run = campaign_run_launch(campaign=make_campaign([contact]), now=NOW)

    deliver_all()
    row = OutboxMessage.objects.get(run=run)
    assert (row.state, row.attempts) == ("deferred", 1)
    assert "451" in row.error
    wait = (row.next_attempt_at - timezone.now()).total_seconds()
    assert 25 <= wait <= 95  # 60 s × jitter in [0.5, 1.5]
    assert smtp_settings.messages == []

    deliver_all(now=row.next_attempt_at + timedelta(seconds=1))
    row.refresh_from_db()
    assert (row.state, row.attempts) == ("sent", 2)
    assert smtp_settings.recipients() == {contact.email: 1}
    assert list(
        DeliveryAttempt.objects.filter(message=row)
        .order_by("attempt")
        .values_list("outcome", flat=True)
    ) == ["retryable", "sent"]


def test_retries_are_bounded_then_failed_with_reason(
    smtp_settings, consenting, make_campaign, settings
):
    settings.ACTIVATION_MAX_ATTEMPTS = 2
    contact = consenting(1)[0]
    smtp_settings.rcpt_replies[contact.email] = ["451 busy"] * 5
    run = campaign_run_launch(campaign=make_campaign([contact]), now=NOW)

    deliver_all()
    row = OutboxMessage.objects.get(run=run)
    deliver_all(now=row.next_attempt_at + timedelta(seconds=1))

    row.refresh_from_db()
    assert (row.state, row.attempts) == ("failed", 2)
    assert "451 busy" in row.error
    assert DeliveryAttempt.objects.filter(message=row).latest("attempt").outcome == "gave_up"


def test_permanent_smtp_refusal_fails_at_once_and_suppresses_the_address(
    smtp_settings, consenting, make_campaign
):
    contact = consenting(1)[0]
    smtp_settings.rcpt_replies[contact.email] = ["550 5.1.1 No such user"]
    run = campaign_run_launch(campaign=make_campaign([contact]), now=NOW)

    deliver_all()

    row = OutboxMessage.objects.get(run=run)
    assert (row.state, row.attempts) == ("failed", 1)
    assert "550" in row.error
    assert Suppression.objects.filter(
        channel="email", address=contact.email, reason="hard_bounce"
    ).exists()


def test_smtp_server_down_is_retryable(settings, consenting, make_campaign):
    from tests.services import free_port

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 2
    contact = consenting(1)[0]
    run = campaign_run_launch(campaign=make_campaign([contact]), now=NOW)
    deliver_all()
    row = OutboxMessage.objects.get(run=run)
    assert row.state == "deferred" and row.error


def test_a_second_delivery_pass_never_resends_sent_rows(smtp_settings, consenting, make_campaign):
    contacts = consenting(5)
    run = campaign_run_launch(campaign=make_campaign(contacts), now=NOW)
    assert deliver_all() == 5
    # A redelivered task, a restarted worker: nothing left to claim.
    assert outbox_deliver_batch(channel="email", limit=50).claimed == 0
    assert deliver_all(now=timezone.now() + timedelta(days=1)) == 0
    assert set(smtp_settings.recipients().values()) == {1}
    assert run.messages.filter(state="sent").count() == 5


def test_expired_lease_of_a_dead_worker_is_recovered_and_sent_once(
    smtp_settings, consenting, make_campaign, settings
):
    from activation.delivery import outbox_claim

    contacts = consenting(3)
    run = campaign_run_launch(campaign=make_campaign(contacts), now=NOW)
    # A worker claims everything and dies before sending.
    outbox_claim(channel="email", limit=10, now=timezone.now())
    assert run.messages.filter(state="sending").count() == 3
    assert deliver_all() == 0  # the lease is still running: nobody else may send them

    later = timezone.now() + timedelta(seconds=settings.ACTIVATION_LEASE_SECONDS + 1)
    stats = outbox_deliver_batch(channel="email", limit=10, now=later)

    assert (stats.recovered, stats.sent) == (3, 3)
    assert set(smtp_settings.recipients().values()) == {1}


def test_run_is_marked_done_with_final_counts(smtp_settings, consenting, make_campaign):
    from activation.services import outbox_deliver_pending

    contacts = consenting(3)
    run = campaign_run_launch(campaign=make_campaign(contacts), now=NOW)
    stats, next_due = outbox_deliver_pending(channel="email", budget_seconds=30)
    run.refresh_from_db()
    assert stats.sent == 3 and next_due is None
    assert run.status == "done"
    assert run.counts["by_state"]["sent"] == 3


def test_row_of_a_contact_deleted_after_the_snapshot_is_cancelled_not_sent_or_stuck(
    smtp_settings, consenting, make_campaign
):
    kept = consenting(1)[0]
    run = campaign_run_launch(campaign=make_campaign([kept]), now=NOW)
    # What a contact deleted by another process right after the snapshot leaves behind (the
    # outbox has no database-level foreign key): a queued row pointing at no contact.
    vanished = OutboxMessage.objects.create(
        run=run,
        contact_id=kept.pk + 10_000,
        channel="email",
        state="queued",
        next_attempt_at=NOW,
        created_at=NOW,
    )

    assert deliver_all() == 1

    assert [m["To"] for m in smtp_settings.messages] == [kept.email]
    vanished.refresh_from_db()
    assert vanished.state == "cancelled"
    assert not run.messages.filter(state__in=["queued", "sending"]).exists()


def test_deleting_a_contact_through_django_deletes_its_outbox_rows(consenting, make_campaign):
    contact, other = consenting(2)
    run = campaign_run_launch(campaign=make_campaign([contact, other]), now=NOW)

    contact.delete()

    assert list(run.messages.values_list("contact_id", flat=True)) == [other.pk]
