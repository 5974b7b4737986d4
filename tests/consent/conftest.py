from datetime import UTC, datetime

import pytest

from tests.factories import ContactFactory

T0 = datetime(2026, 1, 10, 9, 0, tzinfo=UTC)


@pytest.fixture
def contact(db):
    return ContactFactory(
        email="zebulon.quaglieri@exemple.fr",
        phone="+33698765432",
        first_name="Zébulon",
        last_name="Quaglieri",
    )
