"""A cluster model is created by people: a name (the identifier for segment rules is derived,
unique, set once) and the features ticked as checkboxes, each with what it means; errors in
French and English."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group, User

from segments.ml.catalogue import FEATURES, default_feature_names
from segments.ml.models import ClusterModel

pytestmark = pytest.mark.django_db

ADD = "/admin/segments_ml/clustermodel/add/"


@pytest.fixture
def analyst(client):
    from ops.roles import roles_sync

    roles_sync()
    user = User.objects.create_user("analyst", password="x", is_staff=True)
    user.groups.add(Group.objects.get(name="Analyst"))
    client.force_login(user)
    return client


def _form(**overrides) -> dict:
    data = {
        "title": "Profils d’achat",
        "name": "",
        "description": "",
        "features": ["purchases", "avg_basket", "share_email_open"],
        "algorithm": "kmeans",
        "k": "3",
        "auto_k_min": 2,
        "auto_k_max": 10,
        "imputer": "knn",
        "reduction": "none",
        "sample_size": 1000,
        "seed": 1,
        "dbscan_eps": 1.5,
        "dbscan_min_samples": 10,
        "labels-TOTAL_FORMS": 0,
        "labels-INITIAL_FORMS": 0,
        "runs-TOTAL_FORMS": 0,
        "runs-INITIAL_FORMS": 0,
    }
    data.update(overrides)
    return data


def test_the_add_form_offers_every_feature_as_a_described_checkbox(analyst):
    body = analyst.get(ADD, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert body.count('type="checkbox" name="features"') == len(FEATURES)
    assert "buys often" in body and "rarely buys" in body  # what a feature means
    checked = set(re.findall(r'name="features" value="(\w+)"[^>]*checked>', body))
    assert checked == set(default_feature_names())  # the catalogue's default set, pre-ticked


def test_a_name_is_enough_the_identifier_is_derived_and_unique(analyst):
    response = analyst.post(ADD, _form())
    assert response.status_code == 302
    first = ClusterModel.objects.get()
    assert (first.title, first.name) == ("Profils d’achat", "profils-dachat")
    assert first.features == ["purchases", "avg_basket", "share_email_open"]
    analyst.post(ADD, _form())
    assert sorted(ClusterModel.objects.values_list("name", flat=True)) == [
        "profils-dachat",
        "profils-dachat-2",
    ]
    assert str(ClusterModel.objects.get(name="profils-dachat-2")) == "Profils d’achat"


def test_the_identifier_may_be_typed_at_creation_and_is_then_fixed(analyst):
    analyst.post(ADD, _form(name="shoppers"))
    model = ClusterModel.objects.get()
    assert model.name == "shoppers"
    page = analyst.get(f"/admin/segments_ml/clustermodel/{model.pk}/change/").content.decode()
    assert 'name="name"' not in page and "shoppers" in page
    analyst.post(
        f"/admin/segments_ml/clustermodel/{model.pk}/change/",
        _form(title="Acheteurs", name="renamed"),
    )
    model.refresh_from_db()
    assert (model.title, model.name) == ("Acheteurs", "shoppers")


@pytest.mark.parametrize(
    ("overrides", "english", "french"),
    [
        ({"features": []}, "Pick at least one feature.", "Cochez au moins une variable."),
        (
            {"features": ["purchases", "shoe_size"]},
            "Unknown feature: shoe_size. Pick features from the list.",
            "Variable inconnue : shoe_size. Choisissez les variables dans la liste.",
        ),
        ({"title": ""}, "Give the model a name.", "Donnez un nom au modèle."),
        (
            {"title": "???"},
            "The name gives no identifier: type one (letters and digits).",
            "Ce nom ne donne pas d’identifiant : saisissez-en un (lettres et chiffres).",
        ),
        (
            {"name": "a b"},
            "The identifier may hold only letters, digits, hyphens and underscores.",
            "L’identifiant ne peut contenir que des lettres, des chiffres, des tirets et des "
            "tirets bas.",
        ),
    ],
)
def test_mistakes_are_explained_in_english_and_french(analyst, overrides, english, french):
    for lang, message in (("en", english), ("fr", french)):
        page = analyst.post(ADD, _form(**overrides), HTTP_ACCEPT_LANGUAGE=lang)
        assert page.status_code == 200
        assert message in page.content.decode(), lang
    assert not ClusterModel.objects.exists()


def test_a_taken_identifier_is_refused_with_a_clear_message(analyst):
    ClusterModel.objects.create(name="shoppers")
    page = analyst.post(ADD, _form(name="shoppers"), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Another cluster model already has this identifier; pick another." in page
    assert ClusterModel.objects.count() == 1
