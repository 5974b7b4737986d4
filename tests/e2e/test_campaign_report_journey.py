"""Campaign report — a Marketer sends a small campaign through the real worker and reads its report.

Six people are in the segment, five with newsletter consent: the worker sends five emails to
the SMTP server. Two recipients open and click through the real tracking links of the email
they got, a third one's mail is fetched by an Apple-MPP-like proxy (a machine open). The
Marketer opens the run from the sidebar, then its report: the funnel shows what happened (5
sent, 2 human opens, 1 machine open apart, 2 clickers, 1 excluded for lack of consent), the
link's clicks, the chart; downloads the CSV (same numbers); follows the report's link to the
run's sent messages and opens one: its subject, recipient and HTML (without tracking) are shown,
and looking at it records no open. Someone without the permission to view runs gets 403.
"""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.activation.conftest import grant, segment_with
from tests.e2e.admin_ui import messages_shown, run_action
from tests.e2e.conftest import PASSWORD
from tests.e2e.test_j2_ab_campaign import tracking_links, write_campaign, write_template
from tests.factories import ContactFactory
from tests.workers import wait_until

CAMPAIGN = "Soldes d'été 2026"


def small_audience():
    """Five French speakers with newsletter consent by email, one without."""
    people = ContactFactory.create_batch(5, locale="fr", first_name="Camille")
    for person in people:
        grant(person, at=timezone.now() - timedelta(days=30))
    segment_with([*people, ContactFactory(locale="fr")], name="Clients newsletter")
    return people


def sidebar(page, entry: str) -> None:
    """Click the sidebar entry whose text is ``entry`` (its icon's ligature aside)."""
    with page.expect_navigation():
        page.locator("#nav-sidebar-inner a", has_text=entry).first.click()


def funnel_value(page, metric: str) -> str:
    return page.locator(f"#report-funnel tr[data-metric='{metric}'] td").nth(1).inner_text()


def run_campaign_report(journey, start_worker, smtp_sink) -> None:
    from activation.models import OutboxMessage
    from contacts.models import Event

    sink, _port = smtp_sink
    people = small_audience()
    marketer = journey.login("Marketer")
    write_template(journey, marketer, "Soldes d'été")
    write_campaign(journey, marketer)
    with start_worker():
        run_action(
            marketer,
            url=f"{journey.url}/admin/activation/campaign/",
            rows=[CAMPAIGN],
            action="launch",
        )
        assert "is being launched" in messages_shown(marketer), messages_shown(marketer)
        wait_until(lambda: len(sink.messages) == 5, timeout=120, what="5 emails at the server")
        wait_until(
            lambda: OutboxMessage.objects.filter(state="sent").count() == 5,
            timeout=60,
            what="5 rows sent",
        )

    # Two people open and click through the links of the email they got; a proxy fetches the
    # third one's image (Apple Mail Privacy Protection: a machine open).
    received = {m["To"]: m for m in sink.messages}
    reader = journey.browser.new_context(
        user_agent="Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Thunderbird/128.0"
    )
    machine = journey.browser.new_context(user_agent="Mozilla/5.0")
    journey.contexts += [reader, machine]
    for person in people[:2]:
        pixel, click = tracking_links(received[person.email])
        assert reader.request.get(pixel).status == 200
        assert reader.request.get(click, max_redirects=0).status == 302
    pixel, _click = tracking_links(received[people[2].email])
    assert machine.request.get(pixel).status == 200

    # From the sidebar: Campaign runs → the run → its report.
    sidebar(marketer, "Campaign runs")
    with marketer.expect_navigation():
        marketer.locator("#result_list tbody tr", has_text=CAMPAIGN).locator("a").first.click()
    with marketer.expect_navigation():
        marketer.click("#report-link")
    marketer.wait_for_selector("#report-chart .main-svg")
    journey.shot(marketer, "campaign-report")
    assert marketer.locator("#report-audience td").inner_text() == "6"
    no_consent = marketer.locator("#report-exclusions tr[data-reason='no_consent']").inner_text()
    assert "No consent for this purpose and channel" in no_consent and "1" in no_consent
    shown = {
        m: funnel_value(marketer, m)
        for m in ("sent", "delivered", "human_opens", "machine_opens", "clickers", "clicks")
    }
    assert shown == {
        "sent": "5",
        "delivered": "5",
        "human_opens": "2",
        "machine_opens": "1",
        "clickers": "2",
        "clicks": "2",
    }
    link = marketer.locator("#report-links tr", has_text="https://shop.example.fr/soldes")
    assert link.locator("td").all_inner_texts()[1:] == ["2", "2"]

    # The CSV holds the same numbers.
    with marketer.expect_download() as download:
        marketer.click("#report-csv")
    text = open(download.value.path(), encoding="utf-8-sig").read()
    values = {(r[0], r[1], r[2]): r[3] for r in csv.reader(io.StringIO(text))}
    assert values[("sent", "", "")] == "5"
    assert values[("human_opens", "", "")] == "2"
    assert values[("machine_opens", "", "")] == "1"
    assert values[("clickers", "", "")] == "2"
    assert values[("excluded:no_consent", "", "")] == "1"

    # The report's link to the run's sent messages, then one message: what was sent.
    opens_before = Event.objects.filter(type="email_open").count()
    with marketer.expect_navigation():
        marketer.locator("#content-main").get_by_role("link", name="Sent", exact=True).click()
    assert marketer.locator("#result_list tbody tr").count() == 5
    with marketer.expect_navigation():
        marketer.locator("#result_list tbody tr").first.locator("a").first.click()
    assert marketer.locator("#sent-subject").inner_text() == "Les soldes commencent"
    recipient = marketer.locator("#sent-to").inner_text()
    assert recipient in {p.email for p in people}
    body = marketer.frame_locator("#sent-html").locator("body").inner_text()
    assert "les soldes d'été commencent" in body
    journey.shot(marketer, "campaign-report-sent-message")
    assert Event.objects.filter(type="email_open").count() == opens_before

    # Without the permission to view runs: no report, no CSV.
    from django.contrib.auth.models import User

    User.objects.create_user("nobody", password=PASSWORD, is_staff=True)
    nobody = journey.login("Nobody")
    run_id = OutboxMessage.objects.first().run_id
    assert journey.open(nobody, f"/admin/activation/campaignrun/{run_id}/report/").status == 403
    assert journey.open(nobody, f"/admin/activation/campaignrun/{run_id}/report.csv").status == 403
    assert journey.server_errors == []


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_marketer_reads_the_report_of_a_campaign_sent_by_the_worker(journey, workers, smtp_sink):
    run_campaign_report(journey, workers, smtp_sink)
