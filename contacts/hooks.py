"""Extension points that apps above ``contacts`` fill in (they may import contacts; not the reverse).

Register from your ``AppConfig.ready()``:

``identity_blockers``
    Callables ``(*, email: str, phone: str) -> bool``. Ingestion calls each one before it
    *creates* a contact (API upsert, event naming an unknown person, CSV import, webhooks,
    tracking); when any returns ``True`` the item is rejected with the reason "this person asked
    to be erased" and nothing is created. ``email`` is the normalised email (or ``""``),
    ``phone`` the E.164 phone (or ``""``). Consent appends ``consent.services.is_erased_identity``.
    Existing contacts are never blocked (an erased person no longer has a contact row).

``contact_detail_sections``
    Mapping ``name -> callable(contact) -> JSON-serialisable value``. ``GET
    /api/v1/contacts/<external_id>`` adds one key per entry (e.g. ``"segments"``, ``"consent"``).
    A section that raises is reported as ``null`` with the error logged, never a 500.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

IdentityBlocker = Callable[..., bool]

identity_blockers: list[IdentityBlocker] = []
contact_detail_sections: dict[str, Callable[[Any], Any]] = {}


def identity_is_blocked(*, email: str = "", phone: str = "") -> bool:
    """True when a registered blocker refuses to (re-)create a person with this identity."""
    if not email and not phone:
        return False
    return any(blocker(email=email, phone=phone) for blocker in identity_blockers)
