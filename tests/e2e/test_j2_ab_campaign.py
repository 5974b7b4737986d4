"""J2 — a Marketer and an Analyst run an A/B/n email campaign.

The Marketer writes two email templates in French and English, a campaign on a segment, and an
experiment with A (control), B (subject override), C (another template) and D (content
override);
starts it, dry-runs the campaign (who would receive it, who not and why), launches it — refused
above the approval threshold until an Analyst approves the dry-run report — and a worker
delivers. Every recipient's email, read back from the SMTP server, carries its variant's subject
and body in the recipient's language. Recipients open (one of them through an Apple-MPP-like
machine open) and click through the real tracking links of the email they got, and the results
page shows those counts per variant.

Runs on SQLite with the embedded filesystem broker, and on PostgreSQL with Redis.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.activation.conftest import grant, quiet_hours_elsewhere, segment_with
from tests.e2e.admin_ui import (
    add_inline_row,
    choose_in_filter,
    errors_shown,
    messages_shown,
    run_action,
    save,
    submit,
)
from tests.factories import ContactFactory
from tests.workers import wait_until

APPROVAL_THRESHOLD = 20

TEMPLATES = {
    "Soldes d'été": {
        "fr": (
            "Les soldes commencent",
            "<p>Bonjour {{ contact.first_name }}, les soldes d'été commencent.</p>",
        ),
        "en": (
            "The summer sale starts",
            "<p>Hello {{ contact.first_name }}, the summer sale starts.</p>",
        ),
    },
    "Soldes d'été — court": {
        "fr": ("Soldes : -30 %", "<p>{{ contact.first_name }}, -30 % sur tout.</p>"),
        "en": ("Sale: 30% off", "<p>{{ contact.first_name }}, 30% off everything.</p>"),
    },
}
LINK = (
    '<p><a href="https://shop.example.fr/soldes">Voir / See</a></p>'
    '<p><a href="{{ unsubscribe_url }}">Se désabonner / Unsubscribe</a></p>'
)
B_SUBJECT = "Dernière chance — Last chance"
D_CONTENT = (
    "<html><body><p>{{ contact.first_name }}, offre privée : -40 % ce soir.</p>"
    + LINK
    + "</body></html>"
)


def audience():
    """42 people in the "Clients newsletter" segment: 20 French and 20 English speakers with
    newsletter consent by email, and 2 without consent (the dry run says why they are out)."""
    now = timezone.now()
    french = ContactFactory.create_batch(20, locale="fr", first_name="Camille")
    english = ContactFactory.create_batch(20, locale="en", first_name="Alex")
    no_consent = ContactFactory.create_batch(2, locale="fr")
    for person in french + english:
        grant(person, at=now - timedelta(days=30))
    segment_with(french + english + no_consent, name="Clients newsletter")
    return french + english


def write_template(journey, page, name: str) -> None:
    journey.open(page, "/admin/activation/template/add/")
    page.fill("#id_name", name)
    page.select_option("#id_channel", "email")
    for locale, (subject, body) in TEMPLATES[name].items():
        row = add_inline_row(page, "versions")
        page.select_option(f"#id_versions-{row}-locale", locale)
        page.fill(f"#id_versions-{row}-subject", subject)
        page.fill(f"#id_versions-{row}-html", f"<html><body>{body}{LINK}</body></html>")
    save(page)
    assert "was added successfully" in messages_shown(page), errors_shown(page)


def write_campaign(journey, page) -> None:
    quiet = quiet_hours_elsewhere()  # the launch happens now, whatever the hour in Paris
    journey.open(page, "/admin/activation/campaign/add/")
    page.fill("#id_name", "Soldes d'été 2026")
    page.select_option("#id_purpose", label="newsletter")
    page.select_option("#id_channel", "email")
    page.select_option("#id_template", label="Soldes d'été")
    choose_in_filter(page, "segments", "Clients newsletter")
    page.fill("#id_quiet_hours_start", quiet["quiet_hours_start"].strftime("%H:%M"))
    page.fill("#id_quiet_hours_end", quiet["quiet_hours_end"].strftime("%H:%M"))
    page.select_option("#id_status", "active")
    journey.shot(page, "j2-campaign")
    save(page)
    assert "was added successfully" in messages_shown(page), errors_shown(page)


def write_experiment(journey, page) -> None:
    journey.open(page, "/admin/experiments/experiment/add/")
    page.fill("#id_name", "Objet et contenu des soldes")
    page.select_option("#id_campaign", label="Soldes d'été 2026")
    page.select_option("#id_primary_metric", "click")
    variants = [
        {"key": "A", "name": "Contrôle", "is_control": True},
        {"key": "B", "name": "Objet urgent", "subject": B_SUBJECT},
        {"key": "C", "name": "Version courte", "template": "Soldes d'été — court"},
        {"key": "D", "name": "Offre privée", "content": D_CONTENT},
    ]
    for position, variant in enumerate(variants):
        row = add_inline_row(page, "variants")
        prefix = f"#id_variants-{row}-"
        page.fill(prefix + "position", str(position))
        page.fill(prefix + "key", variant["key"])
        page.fill(prefix + "name", variant["name"])
        page.fill(prefix + "weight", "1")
        if variant.get("is_control"):
            page.check(prefix + "is_control")
        if "subject" in variant:
            page.fill(prefix + "subject", variant["subject"])
        if "template" in variant:
            page.select_option(prefix + "template", label=variant["template"])
        if "content" in variant:
            page.fill(prefix + "content", variant["content"])
    journey.shot(page, "j2-experiment-variants")
    save(page)
    assert "was added successfully" in messages_shown(page), errors_shown(page)
    run_action(
        page,
        url=f"{journey.url}/admin/experiments/experiment/",
        rows=["Objet et contenu des soldes"],
        action="start_experiments",
    )
    assert "Objet et contenu des soldes started." in messages_shown(page)


def expected_email(contact, variant: str) -> tuple[str, str]:
    """(subject, a sentence of the body) the contact must receive for ``variant``."""
    template = "Soldes d'été — court" if variant == "C" else "Soldes d'été"
    subject, body = TEMPLATES[template][contact.locale]
    if variant == "D":
        body = D_CONTENT.split("<p>")[1].split("</p>")[0]
    sentence = re.sub(r"<[^>]+>", "", body).replace("{{ contact.first_name }}", contact.first_name)
    return (B_SUBJECT if variant == "B" else subject), sentence


def html_of(message) -> str:
    return message.get_body(("html",)).get_content()


def tracking_links(message) -> tuple[str, str]:
    """(open pixel URL, tracked link to the shop) of a received email."""
    html = html_of(message)
    pixel = re.search(r'<img[^>]+src="([^"]+/t/o/[^"]+)"', html).group(1)
    clicks = re.findall(r'href="([^"]+/t/c/[^"]+)"', html)
    return pixel.replace("&amp;", "&"), clicks[0].replace("&amp;", "&")


def run_ab_campaign(journey, start_worker, smtp_sink, settings) -> None:
    from activation.models import OutboxMessage
    from contacts.models import Event

    sink, _port = smtp_sink
    settings.JOURNEYS_APPROVAL_THRESHOLD = APPROVAL_THRESHOLD
    people = audience()
    by_pk = {p.pk: p for p in people}
    marketer = journey.login("Marketer")
    write_template(journey, marketer, "Soldes d'été")
    write_template(journey, marketer, "Soldes d'été — court")
    write_campaign(journey, marketer)
    write_experiment(journey, marketer)
    campaigns = f"{journey.url}/admin/activation/campaign/"

    # Dry run: who would receive it, who not and why.
    run_action(marketer, url=campaigns, rows=["Soldes d'été 2026"], action="dry_run")
    assert "40 of 42 contacts would receive it" in messages_shown(marketer)
    submit(marketer, "ul.messagelist a >> nth=0")
    report = marketer.locator("#content").inner_text()
    assert "No consent for this purpose and channel" in report
    journey.shot(marketer, "j2-dry-run")

    env = {"JOURNEYS_APPROVAL_THRESHOLD": str(APPROVAL_THRESHOLD)}
    with start_worker(**env):
        # 42 contacts in the audience, above the threshold of 20: refused until approved.
        run_action(marketer, url=campaigns, rows=["Soldes d'été 2026"], action="launch")
        refusal = messages_shown(marketer)
        assert "approv" in refusal.lower(), refusal
        assert not OutboxMessage.objects.exists()

        journey.open(marketer, "/admin/journeys/campaignapproval/add/")
        marketer.select_option("#id_campaign", label="Soldes d'été 2026")
        save(marketer)
        assert "was added successfully" in messages_shown(marketer), errors_shown(marketer)

        analyst = journey.login("Analyst")
        journey.open(analyst, "/admin/journeys/campaignapproval/")
        analyst.locator("#result_list tbody tr", has_text="Soldes d'été 2026").locator(
            "th a, td a"
        ).first.click()
        assert "40" in analyst.locator(".field-report_table").inner_text()
        journey.shot(analyst, "j2-approval")
        submit(analyst, "input[name=_approve], button[name=_approve]")
        assert "Soldes d'été 2026 approved." in messages_shown(analyst)

        run_action(marketer, url=campaigns, rows=["Soldes d'été 2026"], action="launch")
        assert "is being launched" in messages_shown(marketer), messages_shown(marketer)
        wait_until(lambda: len(sink.messages) == 40, timeout=120, what="40 emails at the server")

    # Every recipient got their variant's subject and body, in their language.
    sent = {m.contact_id: m.variant for m in OutboxMessage.objects.filter(state="sent")}
    assert sorted(sent) == sorted(by_pk)
    assert set(sent.values()) == set("ABCD"), "every variant has recipients"
    received = {m["To"]: m for m in sink.messages}
    assert len(received) == 40
    for contact_id, variant in sent.items():
        contact = by_pk[contact_id]
        message = received[contact.email]
        subject, sentence = expected_email(contact, variant)
        assert message["Subject"] == subject, (contact.locale, variant)
        assert sentence in html_of(message), (contact.locale, variant)

    # Opens and clicks through the tracking links of the emails received.
    first = {v: next(c for c, var in sent.items() if var == v) for v in "ABCD"}
    machine = journey.browser.new_context(user_agent="Mozilla/5.0")  # Apple MPP's proxy
    journey.contexts.append(machine)
    pixel, _click = tracking_links(received[by_pk[first["A"]].email])
    assert machine.request.get(pixel).status == 200
    assert Event.objects.get(contact_id=first["A"], type="email_open").properties["machine_open"]
    reader = journey.browser.new_context(
        user_agent="Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Thunderbird/128.0"
    )
    journey.contexts.append(reader)
    for variant in "BCD":
        pixel, click = tracking_links(received[by_pk[first[variant]].email])
        assert reader.request.get(pixel).status == 200
        redirect = reader.request.get(click, max_redirects=0)
        assert redirect.status == 302
        assert redirect.headers["location"] == "https://shop.example.fr/soldes"

    journey.open(marketer, "/admin/experiments/experiment/")
    marketer.click("text=Objet et contenu des soldes")
    marketer.click("text=Open results")
    marketer.wait_for_selector("#arms")
    journey.shot(marketer, "j2-results")
    rows = {key: marketer.locator(f"#arms tr[data-variant='{key}']").inner_text() for key in "ABCD"}
    assigned = {
        key: marketer.locator(f"#arms tr[data-variant='{key}'] td.assigned").inner_text()
        for key in "ABCD"
    }
    for key in "ABCD":
        assert assigned[key] == str(list(sent.values()).count(key)), rows
    # A: one machine open (not counted), no click; B, C and D: one open and one click each.
    headers = marketer.locator("#arms thead th").all_inner_texts()
    opens = next(i for i, h in enumerate(headers) if h.lower().startswith("open"))
    clicks = next(i for i, h in enumerate(headers) if h.lower().startswith("click"))
    shown = {
        key: (
            count_in(marketer.locator(f"#arms tr[data-variant='{key}'] td").nth(opens)),
            count_in(marketer.locator(f"#arms tr[data-variant='{key}'] td").nth(clicks)),
        )
        for key in "ABCD"
    }
    assert shown == {"A": (0, 0), "B": (1, 1), "C": (1, 1), "D": (1, 1)}, (headers, rows)


def count_in(cell) -> int:
    """The count under a rate in a results cell ("5.56 %\n1 · 0.99 % – 25.76 %" → 1)."""
    lines = cell.inner_text().strip().split("\n")
    return int(lines[1].split("·")[0].strip()) if len(lines) > 1 else 0


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_ab_campaign_sends_each_variant_and_counts_opens_and_clicks(
    journey, workers, smtp_sink, settings
):
    run_ab_campaign(journey, workers, smtp_sink, settings)


@pytest.mark.e2e
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_ab_campaign_on_postgresql_and_redis(journey, redis_workers, smtp_sink, settings):
    run_ab_campaign(journey, redis_workers, smtp_sink, settings)
