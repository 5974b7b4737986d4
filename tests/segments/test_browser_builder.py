"""The rule builder in headless Chromium: an Analyst builds "top 20 % predicted CLV" from the
forms (no JSON typed) and saves it; the page then says it is computing."""

from __future__ import annotations

import os

import pytest

from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS, require_chromium


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_analyst_builds_a_top_20_percent_clv_segment_in_the_builder(live_server):
    require_chromium()
    from django.contrib.auth.models import Group, User
    from playwright.sync_api import sync_playwright

    from ops.roles import roles_sync
    from segments.models import Segment

    roles_sync()
    user = User.objects.create_user("analyst", password="Analyst-pass-2026", is_staff=True)
    user.groups.add(Group.objects.get(name="Analyst"))
    path = "/admin/segments/segment/add/"
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(locale="fr-FR", extra_http_headers={"Accept-Language": "fr"})
            page.goto(f"{live_server.url}/admin/login/?next={path}")
            page.fill("#id_username", "analyst")
            page.fill("#id_password", "Analyst-pass-2026")
            page.click("input[type=submit]")
            page.wait_for_url(f"**{path}")
            page.fill("#id_name", "Top 20 % CLV")
            page.click("#rule-builder .rb-group > button:first-of-type")  # + condition
            leaf = page.locator("#rule-builder .rb-leaf").first
            leaf.locator("select").first.select_option("score")
            leaf = page.locator("#rule-builder .rb-leaf").first
            selects = leaf.locator("select")
            assert selects.nth(1).input_value() == "clv"
            assert selects.nth(2).input_value() == "top_percent"
            assert "les … % les plus élevés" in selects.nth(2).inner_text()
            assert leaf.locator("input").first.input_value() == "20"
            page.click("input[name=_continue]")
            page.wait_for_selector("#segment-computing")
            browser.close()
    finally:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    segment = Segment.objects.get()
    assert segment.rule == {"all": [{"type": "score", "score": "clv", "top_percent": 20}]}
