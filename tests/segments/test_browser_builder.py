"""The rule builder in headless Chromium: an Analyst builds "top 20 % predicted CLV" from the
forms (no JSON typed) and saves it; the page then says it is computing."""

from __future__ import annotations

import pytest

from tests.e2e.browser import logged_in_page


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_analyst_builds_a_top_20_percent_clv_segment_in_the_builder(live_server):
    from django.contrib.auth.models import Group, User

    from ops.roles import roles_sync
    from segments.models import Segment

    roles_sync()
    user = User.objects.create_user("analyst", password="Analyst-pass-2026", is_staff=True)
    user.groups.add(Group.objects.get(name="Analyst"))
    path = "/admin/segments/segment/add/"
    with logged_in_page(
        live_server, username="analyst", password="Analyst-pass-2026", path=path, language="fr"
    ) as page:
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
        page.click("[name=_continue]")
        page.wait_for_selector("#segment-computing")
    segment = Segment.objects.get()
    assert segment.rule == {"all": [{"type": "score", "score": "clv", "top_percent": 20}]}
