"""A contact's whole story: the tabs of the contact's admin page.

The contact's change page (``admin:contacts_contact_change``) shows a row of tabs; ``?tab=<key>``
opens one. ``profile`` is the editable form; every other tab is a read-only panel contributed
by the app that owns its data, registered from that app's ``admin.py`` with
:func:`story_tab_register` (contacts sits below consent, segments, activation and experiments
and cannot import them; they register themselves, as scoring adds its inline).

Contract of a tab: ``context(request, contact)`` returns the template context of that panel
only, and every query it runs is bounded (LIMIT/OFFSET pages, per-contact indexes), so a
contact with 100,000 events opens as fast as one with ten. Only the open tab's queries run. A tab
is listed for users holding its ``permission`` (the view permission of what it shows).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from contacts.models import Contact

PROFILE_TAB = "profile"
STORY_PAGE_SIZE = 25


@dataclass(frozen=True)
class StoryTab:
    key: str
    title: object  # a lazy translated string
    template: str
    permission: str
    context: Callable[[HttpRequest, Contact], dict]
    order: int = 100


_TABS: dict[str, StoryTab] = {}


def story_tab_register(tab: StoryTab) -> None:
    """Add (or replace, on re-import) the tab ``tab.key``."""
    _TABS[tab.key] = tab


def story_tabs(user) -> list[StoryTab]:
    """The tabs ``user`` may open, in page order (without the profile form)."""
    tabs = sorted(_TABS.values(), key=lambda t: (t.order, t.key))
    return [t for t in tabs if user.has_perm(t.permission)]


def story_tab(user, key: str) -> StoryTab | None:
    tab = _TABS.get(key)
    if tab is None or not user.has_perm(tab.permission):
        return None
    return tab


def story_page_number(request: HttpRequest, name: str = "page") -> int:
    """The 1-based page number asked for in ``?page=``; anything else is page 1. Bounded so an
    OFFSET never grows past what a person could page through."""
    raw = (request.GET.get(name) or "").strip()
    if not raw.isdigit() or len(raw) > 6:
        return 1
    return max(1, min(int(raw), 100_000))


def story_page(queryset, *, page: int, size: int = STORY_PAGE_SIZE) -> dict:
    """One page of an ordered queryset without counting it: LIMIT size + 1 tells whether a
    next page exists (a COUNT over a contact's 100,000 events is the slow part of a paginator).
    """
    offset = (page - 1) * size
    rows = list(queryset[offset : offset + size + 1])
    return {
        "rows": rows[:size],
        "page": page,
        "has_previous": page > 1,
        "has_next": len(rows) > size,
        "previous_page": page - 1,
        "next_page": page + 1,
    }


PROFILE_TITLE = _("Profile")
