"""J4 — the DPO answers rights requests; a Marketer and an Analyst cannot.

The DPO records an access request, downloads its ZIP (a real browser download) and finds
everything Cible holds about the person; records an erasure request, carries it out through a
confirmation step, and afterwards no table holds the person's email, phone or name. The same
erasure and export are refused to a Marketer and to an Analyst, even when they forge the POST.
"""

from __future__ import annotations

import io
import json
import zipfile
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.activation.conftest import grant, segment_with
from tests.e2e.admin_ui import errors_shown, messages_shown, save, submit
from tests.factories import ContactFactory, EventFactory

IDENTIFIERS = ("lea.dubois@example.fr", "+33612345678", "Léa", "Dubois", "12 rue des Lilas")


def person():
    """Léa Dubois: profile, three events (one carrying her street address), consent by email,
    one segment membership."""
    now = timezone.now()
    lea = ContactFactory(
        external_id="CRM-LEA",
        email="lea.dubois@example.fr",
        phone="+33612345678",
        first_name="Léa",
        last_name="Dubois",
    )
    EventFactory(
        contact=lea,
        type="purchase",
        occurred_at=now - timedelta(days=3),
        properties={"amount": 59.9, "shipping_address": "12 rue des Lilas"},
    )
    EventFactory(contact=lea, type="page_view", occurred_at=now - timedelta(days=2))
    EventFactory(contact=lea, type="email_open", occurred_at=now - timedelta(days=1))
    grant(lea, at=now - timedelta(days=30))
    segment_with([lea], name="Clientes fidèles")
    ContactFactory.create_batch(3)  # other people, untouched
    return lea


def add_rights_request(journey, page, *, kind_label: str, contact) -> int:
    from consent.models import RightsRequest

    journey.open(page, "/admin/consent/rightsrequest/add/")
    page.select_option("#id_kind", label=kind_label)
    page.fill("#id_contact", str(contact.pk))
    page.fill("#id_requester", "lea.dubois@example.fr (formulaire web)")
    now = timezone.localtime()
    page.fill("#id_received_at_0", now.date().isoformat())
    page.fill("#id_received_at_1", now.strftime("%H:%M:%S"))
    save(page)
    assert "was added successfully" in messages_shown(page), errors_shown(page)
    return RightsRequest.objects.latest("pk").pk


def personal_data_left(identifiers=IDENTIFIERS) -> list[str]:
    """Every stored row (any model) whose values contain one of ``identifiers``."""
    from django.apps import apps

    found = []
    for model in apps.get_models():
        if model._meta.db_table == "django_session":
            continue
        for row in model.objects.values():
            text = json.dumps(row, default=str, ensure_ascii=False)
            if any(identifier in text for identifier in identifiers):
                found.append(f"{model._meta.label} #{row.get('id', '?')}")
    return found


def forged_action(page, *, changelist: str, action: str, pk: int) -> int:
    """POST the admin action from the user's own session (as a crafted form would)."""
    return page.evaluate(
        """async ([url, action, pk]) => {
            const csrf = document.querySelector('[name=csrfmiddlewaretoken]');
            const body = new URLSearchParams({
                csrfmiddlewaretoken: csrf ? csrf.value : '', action: action,
                _selected_action: String(pk), index: '0'});
            const response = await fetch(url, {method: 'POST', body: body});
            return response.status;
        }""",
        [changelist, action, pk],
    )


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_dpo_exports_and_erases_a_person_and_other_roles_cannot(journey):
    from consent.models import ErasedContact, RightsRequest

    lea = person()
    changelist = "/admin/consent/rightsrequest/"
    dpo = journey.login("DPO")

    # Access request → ZIP downloaded in the browser, complete, and the request completed.
    access = add_rights_request(
        journey, dpo, kind_label="Access / portability (Art. 15, 20)", contact=lea
    )
    journey.shot(dpo, "j4-rights-requests")
    dpo.click(f"a[href$='/{access}/export.zip']")  # says what the ZIP holds; a POST downloads
    with dpo.expect_download() as download_info:
        dpo.click("button:has-text('Download the ZIP')")
    download = download_info.value
    assert download.suggested_filename == f"contact-{lea.pk}.zip"
    with zipfile.ZipFile(io.BytesIO(open(download.path(), "rb").read())) as archive:
        exported = json.loads(archive.read("contact.json"))
    assert exported["profile"]["email"] == "lea.dubois@example.fr"
    assert exported["profile"]["phone"] == "+33612345678"
    assert (exported["profile"]["first_name"], exported["profile"]["last_name"]) == (
        "Léa",
        "Dubois",
    )
    assert sorted(e["type"] for e in exported["events"]) == [
        "email_open",
        "page_view",
        "purchase",
    ]
    purchase = next(e for e in exported["events"] if e["type"] == "purchase")
    assert purchase["properties"]["shipping_address"] == "12 rue des Lilas"
    assert [(c["purpose"], c["channel"], c["granted"]) for c in exported["consents"]["ledger"]] == [
        ("newsletter", "email", True)
    ]
    assert [m["segment"] for m in exported["memberships"]] == ["Clientes fidèles"]
    assert [r["kind"] for r in exported["rights_requests"]] == ["access"]
    journey.open(dpo, f"{changelist}?status=done")
    assert dpo.locator("#result_list tbody tr").count() == 1

    erasure = add_rights_request(journey, dpo, kind_label="Erasure (Art. 17)", contact=lea)

    # A Marketer and an Analyst: no erasure (even forged), no export.
    for role in ("Marketer", "Analyst"):
        page = journey.login(role)
        response = journey.open(page, changelist)
        if response.status == 200:
            offered = page.locator("select[name=action] option").evaluate_all(
                "options => options.map(o => o.value)"
            )
            assert "carry_out" not in offered, role
            forged_action(page, changelist=changelist, action="carry_out", pk=erasure)
        else:
            assert response.status == 403, role
        export = page.request.get(f"{journey.url}{changelist}{access}/export.zip")
        assert export.status == 403, role
        assert not ErasedContact.objects.exists(), role
        assert RightsRequest.objects.get(pk=erasure).completed_at is None, role

    # The DPO carries the erasure out, through a confirmation step.
    journey.open(dpo, f"{changelist}?status=open")
    dpo.check(f"input[name=_selected_action][value='{erasure}']")
    dpo.select_option("select[name=action]", "carry_out")
    submit(dpo, "button[name=index]")
    assert not ErasedContact.objects.exists(), "erased without a confirmation step"
    confirm = dpo.locator("#content form [type=submit]", has_text="Yes").or_(
        dpo.locator("#content form input[type=submit][value*='Yes']")
    )
    journey.shot(dpo, "j4-erasure-confirmation")
    with dpo.expect_navigation():
        confirm.first.click()
    assert "1 request(s) carried out." in messages_shown(dpo)
    assert ErasedContact.objects.filter(contact_id=lea.pk).count() == 1
    assert personal_data_left() == []

    journey.open(dpo, "/admin/contacts/contact/?q=lea.dubois%40example.fr")
    assert dpo.locator("#result_list tbody tr").count() == 0
