"""Registry of data-export sections (right of access / portability, Art. 15 and 20).

Apps above consent contribute what they hold about a person without consent importing them::

    # segments/apps.py, in ready()
    from consent.exports import register_section
    register_section("memberships", lambda contact: [...])

A producer receives the ``Contact`` and returns JSON-serialisable data (dates are converted).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from contacts.models import Contact

SectionProducer = Callable[[Contact], Any]

_sections: dict[str, SectionProducer] = {}


def register_section(name: str, producer: SectionProducer) -> None:
    """Add (or replace, by name) a section of ``export_contact_data``; idempotent."""
    if not name or not name.replace("_", "").isalnum():
        raise ValueError(f"export section name must be a simple identifier, got {name!r}")
    _sections[name] = producer


def registered_sections() -> dict[str, SectionProducer]:
    """The registered sections, in registration order."""
    return dict(_sections)
