import importlib
from datetime import UTC, datetime

import pytest

from tests.factories import ContactFactory

T0 = datetime(2026, 1, 10, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def default_purposes(request):
    """The purposes the data migration creates (transactional tests flush them between tests)."""
    if "django_db_setup" not in request.fixturenames and not request.node.get_closest_marker(
        "django_db"
    ):
        return
    request.getfixturevalue("django_db_setup")
    from consent.models import Purpose

    migration = importlib.import_module("consent.migrations.0002_default_purposes")
    for data in migration.PURPOSES:
        Purpose.objects.get_or_create(code=data["code"], defaults=data)


@pytest.fixture
def contact(db):
    return ContactFactory(
        email="zebulon.quaglieri@exemple.fr",
        phone="+33698765432",
        first_name="Zébulon",
        last_name="Quaglieri",
    )
