"""Eligibility of a campaign run: reasons per excluded contact, dry run, outbox snapshot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from activation.models import CampaignRun, OutboxMessage, RunStatus
from activation.services import campaign_run_launch, eligibility_report
from activation.variants import register_variant_assigner, unregister_variant_assigner
from consent.services import suppression_add
from tests.activation.conftest import NOW, segment_with
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db


def previous_sends(contact, n, *, campaign, at):
    run = CampaignRun.objects.create(campaign=campaign, status=RunStatus.DONE, created_at=at)
    for i in range(n):
        OutboxMessage.objects.create(
            run=run,
            contact=contact,
            step=i,
            channel="email",
            state="sent",
            sent_at=at,
            next_attempt_at=at,
            created_at=at,
        )


@pytest.fixture
def mixed_audience(consenting, make_campaign):
    ok = consenting(3)
    no_consent = ContactFactory.create_batch(2)
    suppressed = consenting(1, email="bounced@example.fr")
    suppression_add(channel="email", address="bounced@example.fr", reason="hard_bounce", source="t")
    no_email = consenting(1, email="")
    capped = consenting(1)
    new_york = consenting(2, timezone="America/New_York")  # 06:00 there: quiet hours
    campaign = make_campaign(ok + no_consent + suppressed + no_email + capped + new_york)
    previous_sends(capped[0], 3, campaign=campaign, at=NOW - timedelta(days=2))
    return {
        "campaign": campaign,
        "ok": ok,
        "no_consent": no_consent,
        "suppressed": suppressed,
        "no_email": no_email,
        "capped": capped,
        "new_york": new_york,
    }


def test_dry_run_reports_counts_and_samples_per_reason_and_writes_no_outbox(mixed_audience):
    run = campaign_run_launch(campaign=mixed_audience["campaign"], now=NOW, dry_run=True)

    assert run.status == RunStatus.DRY_RUN
    assert run.audience_size == 10
    assert run.counts["eligible"] == 3
    assert run.counts["by_reason"] == {
        "frequency_cap": 1,
        "no_address": 1,
        "no_consent": 2,
        "quiet_hours": 2,
        "suppressed": 1,
    }
    samples = run.report["samples"]
    assert {s["external_id"] for s in samples["no_consent"]} == {
        c.external_id for c in mixed_audience["no_consent"]
    }
    assert samples["suppressed"][0]["email"] == "bounced@example.fr"
    assert not OutboxMessage.objects.filter(run=run).exists()


def test_launch_writes_one_outbox_row_per_contact_with_state_and_reason(mixed_audience):
    run = campaign_run_launch(campaign=mixed_audience["campaign"], now=NOW)

    rows = {m.contact_id: m for m in OutboxMessage.objects.filter(run=run)}
    assert len(rows) == 10
    assert {rows[c.pk].state for c in mixed_audience["ok"]} == {"queued"}
    assert {rows[c.pk].skip_reason for c in mixed_audience["no_consent"]} == {"no_consent"}
    assert rows[mixed_audience["suppressed"][0].pk].skip_reason == "suppressed"
    assert rows[mixed_audience["no_email"][0].pk].skip_reason == "no_address"
    assert rows[mixed_audience["capped"][0].pk].skip_reason == "frequency_cap"
    for contact in mixed_audience["new_york"]:
        row = rows[contact.pk]
        assert (row.state, row.skip_reason) == ("deferred", "quiet_hours")
        # Quiet hours end at 08:00 in New York = 12:00 UTC (EDT).
        assert row.next_attempt_at == datetime(2026, 6, 10, 12, 0, tzinfo=UTC)
    assert run.status == RunStatus.SENDING
    assert run.counts["by_state"]["queued"] == 3
    assert run.counts["by_state"]["deferred"] == 2
    assert run.counts["by_state"]["skipped"] == 5


def test_quiet_hours_skip_policy_skips_instead_of_deferring(consenting, make_campaign):
    contacts = consenting(2, timezone="Asia/Tokyo")  # 19:00 in Tokyo
    campaign = make_campaign(contacts, quiet_hours_policy="skip")
    campaign.quiet_hours_start = datetime(2026, 1, 1, 18, 0).time()
    campaign.save()

    run = campaign_run_launch(campaign=campaign, now=NOW)

    assert set(OutboxMessage.objects.filter(run=run).values_list("state", "skip_reason")) == {
        ("skipped", "quiet_hours")
    }
    assert run.status == RunStatus.DONE


def test_exclusion_segment_members_are_not_in_the_audience(consenting, make_campaign):
    contacts = consenting(4)
    campaign = make_campaign(contacts)
    campaign.exclusion_segments.add(segment_with(contacts[:1], name="VIP exclus"))

    report = eligibility_report(campaign=campaign, now=NOW)

    assert (report.audience, report.eligible) == (3, 3)


def test_a_contact_in_two_target_segments_gets_one_message(consenting, make_campaign):
    contacts = consenting(3)
    campaign = make_campaign(contacts)
    campaign.segments.add(segment_with(contacts, name="doublon"))

    run = campaign_run_launch(campaign=campaign, now=NOW)

    assert OutboxMessage.objects.filter(run=run).count() == 3


def test_consent_is_read_as_of_the_launch_not_the_segment_computation(consenting, make_campaign):
    contacts = consenting(2)
    campaign = make_campaign(contacts)
    from tests.activation.conftest import withdraw

    withdraw(contacts[0], at=NOW - timedelta(hours=1))

    report = eligibility_report(campaign=campaign, now=NOW)
    assert report.by_reason == {"no_consent": 1}
    # Before the withdrawal, both were contactable.
    assert eligibility_report(campaign=campaign, now=NOW - timedelta(hours=2)).eligible == 2


def test_global_frequency_cap_counts_every_channel(consenting, make_campaign, settings):
    settings.ACTIVATION_FREQUENCY_CAPS = {"email": 10, "sms": 10, "push": 10, "global": 2}
    contacts = consenting(2)
    campaign = make_campaign(contacts)
    previous_sends(contacts[0], 2, campaign=campaign, at=NOW - timedelta(days=6))
    previous_sends(contacts[1], 2, campaign=campaign, at=NOW - timedelta(days=8))  # outside

    report = eligibility_report(campaign=campaign, now=NOW)

    assert report.by_reason == {"frequency_cap": 1}
    assert report.eligible == 1


def test_eligibility_of_the_whole_audience_is_one_sql_statement(
    mixed_audience, django_assert_num_queries
):
    from activation.selectors import eligibility_queryset

    qs = eligibility_queryset(campaign=mixed_audience["campaign"], now=NOW)
    with django_assert_num_queries(1):
        reasons = sorted(qs.values_list("exclusion_reason", flat=True))
    assert reasons.count("") == 3


def test_variant_assigner_sets_variants_and_holdouts(consenting, make_campaign):
    contacts = consenting(4)
    campaign = make_campaign(contacts)
    seen = []

    def assigner(*, run, contact_ids):
        seen.append(list(contact_ids))
        return {
            cid: (None if i == 0 else "B" if i % 2 else "A") for i, cid in enumerate(contact_ids)
        }

    register_variant_assigner(assigner)
    try:
        run = campaign_run_launch(campaign=campaign, now=NOW)
    finally:
        unregister_variant_assigner(assigner)

    rows = OutboxMessage.objects.filter(run=run).order_by("contact_id")
    assert seen == [sorted(c.pk for c in contacts)]
    assert [(r.state, r.skip_reason, r.variant) for r in rows] == [
        ("skipped", "holdout", ""),
        ("queued", "", "B"),
        ("queued", "", "A"),
        ("queued", "", "B"),
    ]
    assert run.counts["by_reason"] == {"holdout": 1}


def test_without_assigner_everyone_gets_the_empty_variant(consenting, make_campaign):
    contacts = consenting(2)
    run = campaign_run_launch(campaign=make_campaign(contacts), now=NOW)
    assert set(OutboxMessage.objects.filter(run=run).values_list("variant", flat=True)) == {""}


def test_sms_and_push_reachability(consenting, make_campaign):
    from contacts.models import PushSubscription

    sms_contacts = consenting(2, channel="sms")
    sms_contacts[1].phone = ""
    sms_contacts[1].save()
    report = eligibility_report(campaign=make_campaign(sms_contacts, channel="sms"), now=NOW)
    assert (report.eligible, report.by_reason) == (1, {"no_address": 1})

    push_contacts = consenting(3, channel="push")
    PushSubscription.objects.create(
        contact=push_contacts[0], endpoint="https://push.example/a", p256dh="k", auth="a"
    )
    PushSubscription.objects.create(
        contact=push_contacts[1],
        endpoint="https://push.example/b",
        p256dh="k",
        auth="a",
        active=False,
    )
    report = eligibility_report(campaign=make_campaign(push_contacts, channel="push"), now=NOW)
    assert (report.eligible, report.by_reason) == (1, {"no_address": 2})


def test_a_channel_without_its_own_cap_is_capped_by_the_global_cap_only(
    consenting, make_campaign, settings
):
    settings.ACTIVATION_FREQUENCY_CAPS = {"email": 0, "global": 2}
    at_global, below = consenting(2)
    campaign = make_campaign([at_global, below])
    previous_sends(at_global, 2, campaign=campaign, at=NOW - timedelta(days=1))
    previous_sends(below, 1, campaign=campaign, at=NOW - timedelta(days=1))

    run = campaign_run_launch(campaign=campaign, now=NOW)

    reasons = dict(run.messages.filter(step=0).values_list("contact_id", "skip_reason"))
    assert reasons == {at_global.pk: "frequency_cap", below.pk: ""}
