"""Duplicate finding and merging (service and admin action with preview)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from contacts.models import Contact, ContactMerge, DuplicateReport, Event, PushSubscription
from contacts.services import duplicate_report_create, merge_contacts
from contacts.signals import contacts_merged
from tests.factories import ContactFactory, EventFactory

pytestmark = pytest.mark.django_db


def test_merge_moves_events_and_subscriptions_fills_blanks_and_audits():
    survivor = ContactFactory(
        external_id="A", email="lea@example.fr", phone="", attributes={"tier": "gold"}
    )
    dup = ContactFactory(
        external_id="B",
        email="lea@example.fr",
        phone="+33612345678",
        city="Lyon",
        attributes={"tier": "silver", "newsletter": True},
    )
    EventFactory(contact=survivor)
    EventFactory.create_batch(2, contact=dup)
    PushSubscription.objects.create(
        contact=dup, endpoint="https://push.example/1", p256dh="k", auth="a"
    )
    seen = []

    def receiver(**kw):
        seen.append(
            (kw["survivor_id"], kw["merged_ids"], Contact.objects.filter(pk=dup.pk).exists())
        )

    contacts_merged.connect(receiver)
    try:
        merge = merge_contacts(survivor=survivor, duplicates=[dup], actor=None, actor_label="test")
    finally:
        contacts_merged.disconnect(receiver)
    assert not Contact.objects.filter(pk=dup.pk).exists()
    survivor.refresh_from_db()
    assert survivor.phone == "+33612345678"  # filled from the duplicate
    assert survivor.city == "Paris"  # the survivor's own value wins
    assert survivor.attributes == {"tier": "gold", "newsletter": True}
    assert Event.objects.filter(contact=survivor).count() == 3
    assert PushSubscription.objects.get().contact == survivor
    assert (merge.moved_events, merge.merged_external_ids, merge.fields_filled) == (
        2,
        ["B"],
        {"phone": "B"},
    )
    # receivers run before the duplicates are deleted, so they can move their own rows
    assert seen == [(survivor.pk, [dup.pk], True)]


def test_duplicate_report_groups_by_email_phone_and_external_id_case():
    a = ContactFactory(external_id="X-1", email="same@example.fr")
    b = ContactFactory(external_id="x-1 ", email="same@example.fr")
    c = ContactFactory(phone="+33700000001")
    d = ContactFactory(phone="+33700000001")
    ContactFactory()
    report = duplicate_report_create()
    groups = {(g["key"], g["value"]): g["contact_ids"] for g in report.groups}
    assert groups == {
        ("email", "same@example.fr"): [a.pk, b.pk],
        ("phone", "+33700000001"): [c.pk, d.pk],
        ("external_id", "x-1"): [a.pk, b.pk],
    }
    assert report.group_counts == {"email": 1, "phone": 1, "external_id": 1}
    assert report.contacts_involved == 4


def test_admin_merge_action_shows_preview_then_merges(client):
    client.force_login(User.objects.create_superuser("admin", "admin@example.fr", "x"))
    old = ContactFactory(external_id="OLD", first_name="", email="z@example.fr")
    new = ContactFactory(external_id="NEW", first_name="Zoé", email="z@example.fr")
    EventFactory(contact=new)
    data = {"action": "merge_selected", "_selected_action": [old.pk, new.pk]}
    page = client.post("/admin/contacts/contact/", data)
    html = page.content.decode()
    assert page.status_code == 200
    assert "1 event(s) will move to the survivor." in html
    assert "first_name will be filled from NEW." in html
    assert Contact.objects.count() == 2  # preview only
    done = client.post(
        "/admin/contacts/contact/", {**data, "survivor": old.pk, "confirm": "yes"}, follow=True
    )
    assert "1 contact(s) merged into OLD; 1 event(s) moved." in done.content.decode()
    assert list(Contact.objects.values_list("external_id", "first_name")) == [("OLD", "Zoé")]
    assert ContactMerge.objects.get().actor.username == "admin"


def test_duplicate_report_admin_links_to_the_group(client):
    client.force_login(User.objects.create_superuser("admin", "admin@example.fr", "x"))
    a, b = ContactFactory(email="d@example.fr"), ContactFactory(email="d@example.fr")
    report = duplicate_report_create()
    page = client.get(f"/admin/contacts/duplicatereport/{report.pk}/change/").content.decode()
    assert f"?id__in={a.pk},{b.pk}" in page
    listing = client.get(f"/admin/contacts/contact/?id__in={a.pk},{b.pk}").content.decode()
    assert a.external_id in listing and b.external_id in listing
    assert DuplicateReport.objects.count() == 1
