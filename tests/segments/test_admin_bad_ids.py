"""Every admin page of the segments apps answers a malformed or unknown id like Django's own
pages: a redirect with "… doesn't exist" ("n’existe pas"), never a 500."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import User

pytestmark = pytest.mark.django_db

SEGMENT_APPS = ("segments", "segments_ml", "scoring")


def _segment_admin_models():
    return sorted(
        (model._meta.app_label, model._meta.model_name)
        for model in admin.site._registry
        if model._meta.app_label in SEGMENT_APPS
    )


def test_the_walk_covers_the_custom_change_pages():
    models = _segment_admin_models()
    assert ("segments", "segment") in models
    assert ("segments_ml", "clustermodelversion") in models
    assert ("scoring", "scoringmodel") in models


@pytest.mark.parametrize("app_model", _segment_admin_models())
@pytest.mark.parametrize("object_id", ["abc", "999999", "1e400", "%C3%A9"])
def test_malformed_or_unknown_id_redirects_with_doesnt_exist(client, app_model, object_id):
    client.force_login(User.objects.create_superuser("admin", "admin@example.fr", "x"))
    app, model = app_model
    model_admin = next(
        ma for m, ma in admin.site._registry.items() if m._meta.label_lower == f"{app}.{model}"
    )
    for page in ("change", "history", "delete"):
        response = client.get(
            f"/admin/{app}/{model}/{object_id}/{page}/", follow=True, HTTP_ACCEPT_LANGUAGE="fr"
        )
        if page == "delete" and not model_admin.has_delete_permission(response.wsgi_request):
            assert response.status_code == 403  # read-only history: no delete page at all
            continue
        assert response.status_code == 200, (app, model, page)
        assert response.redirect_chain, (app, model, page)
        assert "n’existe pas" in response.content.decode(), (app, model, page)


@pytest.mark.parametrize(
    "url",
    [
        "/admin/segments/segment/{pk}/explain/?contact=99999999999999999999999999",
        "/admin/segments/segment/{pk}/explain/?contact=%00%ff",
        "/admin/segments/segment/99999999999999999999999999/explain/",
        "/admin/segments/segment/99999999999999999999999999/status/",
        "/admin/segments/segment/99999999999999999999999999/export.csv",
        "/admin/segments_ml/clustermodelversion/99999999999999999999999999/segment-from-leaf/1/",
        "/admin/scoring/scoringmodel/99999999999999999999999999/report/",
    ],
)
def test_custom_admin_views_answer_huge_or_odd_ids_without_a_500(client, url):
    from segments.models import Segment

    client.force_login(User.objects.create_superuser("admin", "admin@example.fr", "x"))
    segment = Segment.objects.create(name="S", rule={"all": []})
    method = client.post if "segment-from-leaf" in url else client.get
    response = method(url.format(pk=segment.pk))
    assert response.status_code in (200, 404), response.status_code
