"""The cluster version page in headless Chromium: the FIRST "Create rule segment" button makes
a rule segment (it used to sit in a form nested in the change form, so the browser submitted
the change form instead → 403)."""

from __future__ import annotations

import pytest

from tests.e2e.browser import logged_in_page


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_first_create_rule_segment_button_creates_the_segment(live_server, seed_population):
    from django.contrib.auth.models import User

    from segments.ml.models import ClusterModel
    from segments.ml.services import cluster_model_train
    from segments.models import Segment

    seed_population(400, 12, 3)
    model = ClusterModel.objects.create(name="shoppers", k=3, seed=2)
    version = cluster_model_train(model=model)
    first_leaf = version.surrogate["leaves"][0]
    User.objects.create_superuser("analyst", "a@example.fr", "Analyst-pass-2026")
    path = f"/admin/segments_ml/clustermodelversion/{version.pk}/change/"

    with logged_in_page(
        live_server, username="analyst", password="Analyst-pass-2026", path=path
    ) as page:
        buttons = page.locator("#ml-leaves button", has_text="Create rule segment")
        assert buttons.count() == len(version.surrogate["leaves"]) >= 2
        with page.expect_navigation():
            buttons.first.click()
        assert "/admin/segments/segment/" in page.url, page.url
        assert "created from the tree path" in page.locator(".messagelist").inner_text()
    segment = Segment.objects.get()
    assert segment.rule["all"][0]["type"] == "ml_feature"
    assert str(first_leaf["cluster"]) in segment.name or segment.name
