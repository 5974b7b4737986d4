"""Every admin page and custom view, rendered in French on the demo's data, shows no English.

A page fails when one of its text nodes (or a button's title/placeholder) is, word for word, an
English source string that French translates differently (ours, Django's admin, unfold's) — a
string left unmarked or untranslated — or reads as English prose (English function words).
Content the marketer typed or imported (template bodies, names) is not UI: text inside fields,
code and anything marked with another ``lang`` is left out.
"""

from __future__ import annotations

import ast
import re
from html.parser import HTMLParser
from pathlib import Path

import django
import pytest
from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.urls import NoReverseMatch, reverse

pytestmark = pytest.mark.django_db

ROOT = Path(settings.BASE_DIR)
ENGLISH_WORDS = {
    "the",
    "and",
    "with",
    "of",
    "is",
    "are",
    "this",
    "that",
    "from",
    "your",
    "has",
    "have",
    "been",
    "will",
    "which",
    "when",
    "its",
    "was",
    "were",
    "into",
    "than",
    "should",
    "could",
    "would",
    "there",
    "their",
    "they",
    "you",
    "not",
    "these",
    "those",
    "yet",
    "no",
    "yes",
}
SKIPPED_ELEMENTS = {"script", "style", "textarea", "code", "pre", "template", "svg"}
# Text that is the same in both languages or not language at all; language names in their own
# language (the language switch); time zone names; Django's permission names, which Django
# stores in English and never translates ("Can view …").
NEUTRAL = re.compile(
    r"^[\W\d_]*$|^(?:[A-Z]{2,}|[a-z0-9_.:-]+)$|^(?:English|Français)$"
    r"|^[A-Z][A-Za-z]+/[A-Za-z_ /-]+$|^.*\| Can "
)


def _po_pairs(po: Path) -> dict[str, str]:
    pairs: dict[str, str] = {}
    msgid = msgstr = None
    field = ""
    for line in po.read_text(encoding="utf-8").splitlines():
        if line.startswith("msgid "):
            msgid, msgstr, field = ast.literal_eval(line[6:]), None, "msgid"
        elif line.startswith("msgstr "):
            msgstr, field = ast.literal_eval(line[7:]), "msgstr"
            pairs[msgid] = msgstr
        elif line.startswith('"') and msgid is not None:
            if field == "msgid":
                msgid += ast.literal_eval(line)
            elif field == "msgstr":
                msgstr += ast.literal_eval(line)
                pairs[msgid] = msgstr
    return pairs


def _translated_strings() -> set[str]:
    """English source strings that French renders differently (single-line, no placeholders)."""
    catalogues = [
        Path(config.path) / "locale" / "fr" / "LC_MESSAGES" / "django.po"
        for config in apps.get_app_configs()
    ]
    catalogues += [Path(p) / "fr" / "LC_MESSAGES" / "django.po" for p in settings.LOCALE_PATHS]
    catalogues.append(
        Path(django.__file__).parent
        / "contrib"
        / "admin"
        / "locale"
        / "fr"
        / "LC_MESSAGES"
        / "django.po"
    )
    strings: set[str] = set()
    same: set[str] = set()  # translated as themselves somewhere ("Push", "Contacts")
    for po in catalogues:
        if not po.exists():
            continue
        for msgid, msgstr in _po_pairs(po).items():
            if msgid and msgstr and "%" not in msgid and "{" not in msgid:
                (same if msgid == msgstr else strings).add(" ".join(msgid.split()))
    return strings - same


class _Text(HTMLParser):
    """Visible text nodes, and the title/placeholder/aria-label of elements."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, bool]] = []
        self.nodes: list[str] = []

    def _skipping(self) -> bool:
        return any(skip for _tag, skip in self.stack)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        lang = attrs.get("lang")
        skip = tag in SKIPPED_ELEMENTS or (lang is not None and not lang.startswith("fr"))
        skip = skip or "hidden" in attrs or attrs.get("type") == "hidden"
        if tag not in {"br", "img", "input", "meta", "link", "hr", "source", "col", "wbr"}:
            self.stack.append((tag, skip))
        if not skip and not self._skipping():
            for name in ("title", "placeholder", "aria-label"):
                if attrs.get(name):
                    self.nodes.append(attrs[name])

    def handle_endtag(self, tag):
        for index in range(len(self.stack) - 1, -1, -1):
            if self.stack[index][0] == tag:
                del self.stack[index:]
                break

    def handle_data(self, data):
        if not self._skipping():
            text = " ".join(data.split())
            if text:
                self.nodes.append(text)


def english_on(html: str, translated: set[str]) -> list[str]:
    parser = _Text()
    parser.feed(html)
    found = []
    for node in parser.nodes:
        if NEUTRAL.match(node):
            continue
        words = re.findall(r"[^\W\d_]+", node.lower())
        if node in translated or node.rstrip(":") in translated or ENGLISH_WORDS & set(words):
            found.append(node)
    return found


def _pages(client: Client) -> list[str]:
    """Every admin list, add and change page (first object of each model) and custom view."""
    urls = ["/admin/"]
    for model, model_admin in admin.site._registry.items():
        prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        urls.append(reverse(f"{prefix}_changelist"))
        if model_admin.has_add_permission(_request(client)):
            urls.append(reverse(f"{prefix}_add"))
        first = model._default_manager.order_by("pk").first()
        if first is not None:
            urls.append(reverse(f"{prefix}_change", args=[first.pk]))
    for name, kwargs in _custom_views():
        try:
            urls.append(reverse(name, kwargs=kwargs))
        except NoReverseMatch:
            pass
    return urls


def _request(client: Client):
    from django.test import RequestFactory

    request = RequestFactory().get("/admin/")
    request.user = User.objects.get(username="french-check")
    return request


def _custom_views() -> list[tuple[str, dict]]:
    from activation.models import Template
    from experiments.models import Experiment
    from segments.models import Segment

    views: list[tuple[str, dict]] = [
        ("admin:journeys_calendar", {}),
        ("admin:scoring_cohorts", {}),
        ("admin:contacts_importjob_upload", {}),
        ("admin:segments_segment_overlap", {}),
        ("experiments:plan", {}),
    ]
    segment = Segment.objects.order_by("pk").first()
    if segment:
        views.append(("admin:segments_segment_explain", {"pk": segment.pk}))
    template = Template.objects.order_by("pk").first()
    if template:
        views.append(("admin:activation_template_preview", {"pk": template.pk}))
    experiment = Experiment.objects.order_by("pk").first()
    if experiment:
        views.append(("experiments:results", {"pk": experiment.pk}))
    return views


@pytest.fixture
def demo_admin(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.LANGUAGE_CODE = "fr"  # a French installation: the demo's names are French
    call_command("run_demo", no_serve=True, contacts=120, events_per_contact=4, verbosity=0)
    user = User.objects.create_superuser("french-check", "fr@example.org", "x")
    client = Client()
    client.force_login(user)
    return client


def test_every_admin_page_is_french(demo_admin):
    translated = _translated_strings()
    problems: dict[str, list[str]] = {}
    for url in _pages(demo_admin):
        response = demo_admin.get(url, HTTP_ACCEPT_LANGUAGE="fr")
        assert response.status_code in (200, 302), (url, response.status_code)
        if response.status_code != 200 or "html" not in response.get("Content-Type", ""):
            continue
        found = english_on(response.content.decode(), translated)
        if found:
            problems[url] = sorted(set(found))
    if problems:
        Path(settings.VAR_DIR, "french-check.txt").write_text(
            "\n".join(f"{url}: {found}" for url, found in problems.items()), encoding="utf-8"
        )
    assert problems == {}


def test_the_checker_finds_english():
    translated = {"Save and continue editing", "Campaigns"}
    html = (
        "<h1>Campaigns</h1><p>Envoyé</p><button title='Delete the campaign'>x</button>"
        "<textarea>the body you typed</textarea><div lang='en'>Hello and welcome</div>"
    )
    assert english_on(html, translated) == ["Campaigns", "Delete the campaign"]
