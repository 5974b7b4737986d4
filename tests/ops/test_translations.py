"""French is the marketers' language: every catalogue is complete, compiled, and used.

The catalogues are read from the ``.po`` sources (a small reader: msgid/msgstr pairs, no
plural entries are used by the project) and compared with the compiled ``.mo`` Django loads.
"""

from __future__ import annotations

import ast
import gettext
import re
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings

ROOT = Path(settings.BASE_DIR)
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]|\{\w*\}")


def _catalogues() -> list[Path]:
    found = {
        Path(config.path) / "locale" / "fr" / "LC_MESSAGES" / "django.po"
        for config in apps.get_app_configs()
        if Path(config.path).is_relative_to(ROOT) and ".venv" not in Path(config.path).parts
    }
    found |= {Path(p) / "fr" / "LC_MESSAGES" / "django.po" for p in settings.LOCALE_PATHS}
    return sorted(found)


def _entries(po: Path) -> list[dict]:
    """[{msgctxt, msgid, msgstr, fuzzy}] of a .po file (header excluded)."""
    entries: list[dict] = []
    current: dict | None = None
    field = ""
    fuzzy = False
    context = None
    for line in po.read_text(encoding="utf-8").splitlines():
        if line.startswith("#,"):
            fuzzy = "fuzzy" in line
        elif line.startswith("msgctxt "):
            context = ast.literal_eval(line[8:])
        elif line.startswith("msgid "):
            current = {
                "msgctxt": context,
                "msgid": ast.literal_eval(line[6:]),
                "msgstr": "",
                "fuzzy": fuzzy,
            }
            field = "msgid"
            fuzzy = False
            context = None
        elif line.startswith("msgstr "):
            current["msgstr"] = ast.literal_eval(line[7:])
            field = "msgstr"
            entries.append(current)
        elif line.startswith('"') and current is not None:
            current[field] += ast.literal_eval(line)
    return [e for e in entries if e["msgid"]]


def _local_apps_with_strings() -> list[str]:
    """Project apps whose code or templates mark strings for translation."""
    marked = re.compile(r"gettext|{% translate|{% blocktranslate|\b_\(")
    labels = []
    for config in apps.get_app_configs():
        path = Path(config.path)
        if not path.is_relative_to(ROOT) or ".venv" in path.parts:
            continue
        own = [
            p
            for p in path.rglob("*")
            if p.suffix in {".py", ".html"} and "migrations" not in p.parts
        ]
        if any(marked.search(p.read_text(encoding="utf-8", errors="ignore")) for p in own):
            labels.append(config.label)
    return labels


def test_every_app_with_user_facing_strings_has_a_french_catalogue():
    missing = [
        label
        for label in _local_apps_with_strings()
        if not (
            Path(apps.get_app_config(label).path) / "locale" / "fr" / "LC_MESSAGES" / "django.mo"
        ).exists()
    ]
    assert missing == [], f"apps without a French catalogue: {missing}"


@pytest.mark.parametrize("po", _catalogues(), ids=lambda p: str(p.relative_to(ROOT)))
def test_french_catalogue_is_complete_and_compiled(po: Path):
    entries = _entries(po)
    assert entries, f"{po} is empty"
    untranslated = [e["msgid"] for e in entries if not e["msgstr"] or e["fuzzy"]]
    assert untranslated == [], f"untranslated or fuzzy in {po}: {untranslated[:10]}"
    broken = [
        e["msgid"]
        for e in entries
        if sorted(PLACEHOLDER.findall(e["msgid"])) != sorted(PLACEHOLDER.findall(e["msgstr"]))
    ]
    assert broken == [], f"placeholders differ between English and French: {broken[:10]}"
    with po.with_suffix(".mo").open("rb") as fh:
        compiled = gettext.GNUTranslations(fh)
    stale = [
        e["msgid"]
        for e in entries
        if (
            compiled.pgettext(e["msgctxt"], e["msgid"])
            if e["msgctxt"] is not None
            else compiled.gettext(e["msgid"])
        )
        != e["msgstr"]
    ]
    assert stale == [], (
        f"{po.with_suffix('.mo')} is older than its .po (compilemessages): {stale[:10]}"
    )


@pytest.mark.django_db
def test_admin_speaks_french_to_a_french_marketer(client, django_user_model):
    user = django_user_model.objects.create_superuser("marie", "marie@example.fr", "pw")
    client.force_login(user)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "fr"
    page = client.get("/admin/contacts/contact/").content.decode()
    assert "Fusionner les contacts sélectionnés" in page
    page = client.get("/admin/").content.decode()
    # The home page is the dashboard (ops/dashboard.py), its cards in French.
    assert "Envois et résultats" in page and "Workers et planificateur" in page


def test_a_string_has_one_french_translation_across_catalogues():
    """Django merges every catalogue into one: where two apps translate the same English string
    (without a context) differently, the first app's wins everywhere — a campaign's "Run" became
    the admin's « Exécuter », a results page said « augmente clics ». Strings whose meaning
    differs carry a context (pgettext / ``{% translate … context … %}``)."""
    seen: dict[tuple, dict[str, list[str]]] = {}
    for po in _catalogues():
        for e in _entries(po):
            translations = seen.setdefault((e["msgctxt"], e["msgid"]), {})
            translations.setdefault(e["msgstr"], []).append(str(po.relative_to(ROOT)))
    conflicts = {key: found for key, found in seen.items() if len(found) > 1}
    assert conflicts == {}, conflicts
