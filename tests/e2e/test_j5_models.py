"""J5 — an Analyst trains models from the UI and turns them into segments.

On a seeded base of shoppers, the Analyst creates a cluster model and trains it with the list's
"Train now" action, trains the CLV and the churn propensity models with the buttons of the
predictive models page — each shows its progress while a real worker trains — then turns a
cluster (a path of the explaining decision tree) into a rule segment and builds a "top 20 %
predicted CLV" segment in the rule builder; both get their computed size.
"""

from __future__ import annotations

import re
from io import StringIO
from urllib.parse import quote

import pytest
from django.core.management import call_command

from tests.e2e.admin_ui import errors_shown, messages_shown, run_action, save, submit
from tests.workers import wait_until

#: Small base: let the fits accept it (the defaults ask for 200 customers / training rows).
SMALL_BASE = {"SCORING_CLV_MIN_CUSTOMERS": "50", "SCORING_MIN_TRAINING_ROWS": "50"}


def shoppers() -> None:
    """400 demo contacts with their purchase history (the documented seed_demo command)."""
    from segments.services import features_refresh

    call_command("seed_demo", contacts=400, events_per_contact=12, seed=7, stdout=StringIO())
    features_refresh()


def computed_size(journey, page, name: str) -> int:
    """The size shown on the segment list once the worker has computed ``name``."""
    shown = {}

    def computed() -> bool:
        journey.open(page, "/admin/segments/segment/?q=" + quote(name))
        row = page.locator("#result_list tbody tr", has_text=name).first
        text = row.locator("td.field-size").inner_text().strip()
        shown["size"] = text
        return text.isdigit() and row.locator("td.field-last_computed_at").inner_text() != "-"

    wait_until(computed, timeout=120, what=f"the computed size of “{name}”")
    return int(shown["size"])


def train_scoring_model(journey, page, kind: str) -> None:
    """Press "Train: <kind>" and follow the progress the page shows until it has finished."""
    journey.open(page, "/admin/scoring/scoringmodel/")
    submit(page, f"#train-{kind}")
    progress = page.locator("#scoring-jobs tbody tr").first.inner_text()
    assert "⏳" in progress, progress
    assert page.locator("#training-pending").is_visible()
    journey.shot(page, f"j5-training-{kind}")
    # The page polls and reloads itself when the worker is done (newest job first).
    page.wait_for_function(
        """() => { const row = document.querySelector('#scoring-jobs tbody tr');
                   return row && /job-(succeeded|failed)/.test(row.className); }""",
        timeout=180_000,
    )
    row = page.locator("#scoring-jobs tbody tr").first
    assert "job-succeeded" in row.get_attribute("class"), row.inner_text()


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_analyst_trains_models_from_buttons_and_builds_segments_from_them(journey, workers):
    shoppers()
    page = journey.login("Analyst")

    with workers(**SMALL_BASE):
        # A cluster model, trained from the list's action; its progress is on the list.
        journey.open(page, "/admin/segments_ml/clustermodel/add/")
        page.fill("#id_title", "Profils achat")  # its identifier "profils-achat" is derived
        page.fill("#id_k", "3")
        page.fill("#id_sample_size", "400")
        save(page)
        assert "was added successfully" in messages_shown(page), errors_shown(page)
        run_action(
            page,
            url=f"{journey.url}/admin/segments_ml/clustermodel/",
            rows=["profils-achat"],
            action="train_now",
        )
        assert "Training queued" in messages_shown(page)

        def cluster_trained() -> bool:
            journey.open(page, "/admin/segments_ml/clustermodel/")
            status = page.locator("#result_list td.field-last_training").first.inner_text()
            assert "Failed" not in status, status
            return status.startswith("Succeeded")

        wait_until(cluster_trained, timeout=180, what="the cluster model's training")

        # CLV and churn propensity, from the buttons of the predictive models page.
        train_scoring_model(journey, page, "clv")
        train_scoring_model(journey, page, "churn")
        journey.shot(page, "j5-models-trained")

        # A cluster, as explained by the decision tree, becomes a rule segment.
        journey.open(page, "/admin/segments_ml/clustermodelversion/")
        page.locator("#result_list tbody tr a").first.click()
        page.wait_for_selector("#ml-leaves")
        journey.shot(page, "j5-cluster-version")
        submit(page, "#ml-leaves button:has-text('Create rule segment') >> nth=0")
        created = messages_shown(page)
        assert "created from the tree path" in created, created
        cluster_segment = re.search(r"Rule segment “(.+?)” created", created).group(1)

        # "Top 20 % predicted CLV", from the builder's forms.
        journey.open(page, "/admin/segments/segment/add/")
        page.fill("#id_name", "Top 20 % CLV")
        page.locator("#rule-builder > .rb-group > button", has_text="+ condition").click()
        page.locator("#rule-builder .rb-leaf").first.locator("select").first.select_option("score")
        leaf = page.locator("#rule-builder .rb-leaf").first
        assert leaf.locator("select").nth(1).input_value() == "clv"
        assert leaf.locator("select").nth(2).input_value() == "top_percent"
        assert leaf.locator("input").first.input_value() == "20"
        save(page)
        assert "was added successfully" in messages_shown(page), errors_shown(page)

        cluster_size = computed_size(journey, page, cluster_segment)
        top_size = computed_size(journey, page, "Top 20 % CLV")
    journey.shot(page, "j5-segments")

    from segments.scoring.models import ContactScore

    scored = ContactScore.objects.filter(clv__isnull=False).count()
    assert 0 < cluster_size < 400
    # The top 20 % of the contacts with a predicted CLV: those whose rank from the top is at most
    # 20 % of the scored (rank / n <= 0.20, so floor(0.2 n)); ties at the boundary may add a few.
    top_count = scored * 20 // 100
    assert top_count <= top_size <= top_count + 5, (top_size, scored)

    # The cohorts page fits the window, its month labels drawn whole (issue 15.10).
    journey.open(page, "/admin/scoring/scoringmodel/cohorts/")
    page.wait_for_selector("#scoring-chart-0 svg.main-svg")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"cohorts page {width} px wide"
    chart = page.locator("#scoring-chart-0 svg.main-svg").first.bounding_box()
    labels = page.locator("#scoring-chart-0 .yaxislayer-above .ytick text")
    assert labels.count() >= 1
    for label in labels.all():
        assert label.bounding_box()["x"] >= chart["x"], label.text_content()
        assert re.fullmatch(r"\d{4}-\d{2} \(\d+\)", label.text_content()), label.text_content()
    journey.shot(page, "j5-cohorts")
