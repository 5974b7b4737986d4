"""The default purposes exist whenever the database does.

They are created by migration ``0002_default_purposes``; this post_migrate receiver recreates
any that are missing (e.g. after ``flush``, which empties tables but re-runs post_migrate), so
the demo ledger, the preference centre and the API never meet an empty purpose table.
Purposes an administrator edited are left as they are (get_or_create).
"""

from importlib import import_module


def default_purposes_ensure(**_: object) -> None:
    from consent.models import Purpose

    for data in import_module("consent.migrations.0002_default_purposes").PURPOSES:
        Purpose.objects.get_or_create(code=data["code"], defaults=data)
