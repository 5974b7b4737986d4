"""Rendering templates for one contact: Django template language, per-locale versions.

Context of every template: ``contact`` (the Contact row), ``features`` (its
``segments.ContactFeatures`` row, or ``None`` before the first feature refresh), ``campaign``
(or ``None`` for a test send), ``unsubscribe_url`` and ``preferences_url`` (consent's signed
links; computed only when a template uses them). Use fallbacks for missing values: ``{{ contact.first_name|default:"" }}``. HTML is
auto-escaped; subject, text, SMS and push fields are not (they are not HTML).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from django.template import Context, Engine, TemplateSyntaxError
from django.utils.html import strip_tags
from django.utils.translation import gettext, ngettext

from activation.models import Template, TemplateVersion

TEXT_FIELDS = ("subject", "text", "sms_body", "push_title", "push_body", "push_url")
ALL_FIELDS = ("html", *TEXT_FIELDS)


@dataclass(frozen=True)
class RenderedMessage:
    subject: str = ""
    html: str = ""
    text: str = ""
    sms_body: str = ""
    push_title: str = ""
    push_body: str = ""
    push_url: str = ""


@lru_cache(maxsize=1)
def _engine() -> Engine:
    return Engine(debug=False)


@lru_cache(maxsize=512)
def _compiled(source: str):
    return _engine().from_string(source)


# --- unknown variables ------------------------------------------------------------------------
# A source is rendered against a sample context (every variable a message can use) by an engine
# whose ``string_if_invalid`` leaves a marker naming the variable that did not resolve.

_MARK = "\x00UNKNOWN[%s]\x00"
_MARK_RE = re.compile("\x00UNKNOWN\\[(.*?)\\]\x00")

#: What a template may use, as shown to marketers when a variable is unknown.
KNOWN_VARIABLES = (
    "contact.<field>",
    "contact.attributes.<key>",
    "features.<field>",
    "campaign.<field>",
    "unsubscribe_url",
    "preferences_url",
)


@lru_cache(maxsize=1)
def _strict_engine() -> Engine:
    return Engine(debug=False, string_if_invalid=_MARK)


class _AnyKey(dict):
    """Free-form ``contact.attributes``: every key exists (custom attributes are not known)."""

    def __missing__(self, key):
        return ""


def _sample_context(campaign: Any = None) -> dict:
    """The rendering context of a message (see the module docstring), with sample values."""
    from activation.models import Campaign
    from contacts.models import Contact
    from segments.models import ContactFeatures

    at = datetime(2026, 1, 1, tzinfo=UTC)
    contact = Contact(
        external_id="sample",
        email="camille.martin@example.fr",
        phone="+33612345678",
        first_name="Camille",
        last_name="Martin",
        locale="fr",
        city="Paris",
        country="FR",
        birth_year=1990,
        created_at=at,
    )
    contact.attributes = _AnyKey()
    features = ContactFeatures(
        contact=contact,
        recency_days=10,
        frequency_90d=1,
        frequency_365d=3,
        monetary_total=120.0,
        avg_basket=40.0,
        mean_interpurchase_days=30.0,
        engagement_score=1.0,
        last_activity_at=at,
        preferred_channel="email",
        days_since_signup=30,
        computed_at=at,
        as_of=at,
    )
    return {
        "contact": contact,
        "features": features,
        "campaign": campaign if campaign is not None else Campaign(name="Campagne", pk=0),
        "unsubscribe_url": "https://example.fr/u",
        "preferences_url": "https://example.fr/p",
    }


def unknown_variables(source: str, *, campaign: Any = None) -> list[str]:
    """The variables of ``source`` that a message cannot resolve (e.g. ``contact.loyalty_tier``),
    sorted; empty for plain text. Raises TemplateSyntaxError on a broken source."""
    if "{" not in (source or ""):
        return []
    rendered = (
        _strict_engine()
        .from_string(source)
        .render(Context(_sample_context(campaign), autoescape=False))
    )
    return sorted(set(_MARK_RE.findall(rendered)))


def template_unknown_variables(template: Template, *, campaign: Any = None) -> dict[str, list[str]]:
    """Unknown variables per ``"<locale>.<field>"`` of ``template`` (empty when every variable
    resolves on a sample contact). Syntax errors are reported as ``"syntax: …"``."""
    problems: dict[str, list[str]] = {}
    for version in template.versions.all():
        for field in ALL_FIELDS:
            key = f"{version.locale}.{field}"
            try:
                found = unknown_variables(getattr(version, field) or "", campaign=campaign)
            except TemplateSyntaxError as exc:
                problems[key] = [f"syntax: {exc}"]
                continue
            if found:
                problems[key] = found
    return problems


def source_error(source: str) -> str | None:
    """Why the template source ``source`` cannot be rendered — a syntax error, an error while
    rendering a sample message (a filter that fails, an ``{% include %}``, nesting too deep),
    or the unknown variables it uses, named — or None when it can."""
    try:
        _compiled(source or "")
        unknown = unknown_variables(source or "")
    except TemplateSyntaxError as exc:
        return str(exc)
    except Exception as exc:  # noqa: BLE001 — whatever the engine raises, it is the source's fault
        return gettext("This cannot be rendered: %(error)s") % {
            "error": f"{type(exc).__name__}: {exc}"[:300]
        }
    if unknown:
        return ngettext(
            "Unknown variable: %(names)s. A message can use: %(known)s.",
            "Unknown variables: %(names)s. A message can use: %(known)s.",
            len(unknown),
        ) % {"names": ", ".join(unknown), "known": ", ".join(KNOWN_VARIABLES)}
    return None


def template_source_errors(version: TemplateVersion) -> dict[str, str]:
    """Errors per field (empty dict when every field can be rendered)."""
    errors = {}
    for field in ALL_FIELDS:
        error = source_error(getattr(version, field) or "")
        if error:
            errors[field] = error
    return errors


#: The fields a message needs on each channel (push also has a title and a target URL).
CHANNEL_BODY_FIELDS = {"email": ("html", "text"), "sms": ("sms_body",), "push": ("push_body",)}
#: Every field a channel's message is made of: the template form shows only these.
CHANNEL_FIELDS = {
    "email": ("subject", "html", "text"),
    "sms": ("sms_body",),
    "push": ("push_title", "push_body", "push_url"),
}


def template_lacks_content_for(template: Template, channel: str) -> list[str]:
    """Locales of ``template`` with no body for ``channel`` (every listed field empty), or
    ``["*"]`` when the template has no version at all; empty when every version has one."""
    fields = CHANNEL_BODY_FIELDS.get(channel, ())
    versions = list(template.versions.all())
    if not versions:
        return ["*"]
    return [
        v.locale for v in versions if not any((getattr(v, name) or "").strip() for name in fields)
    ]


def template_version_for(template: Template, locale: str, versions: dict | None = None):
    """The version for ``locale`` (``fr-CA`` → ``fr``), else the template's default locale,
    else any version; ``None`` when the template has no version at all."""
    if versions is None:
        versions = {v.locale: v for v in template.versions.all()}
    language = (locale or "").split("-")[0].split("_")[0].lower()
    return (
        versions.get(language)
        or versions.get(template.default_locale)
        or next(iter(versions.values()), None)
    )


def _html_to_text(source: str) -> str:
    text = re.sub(r"(?is)<(script|style).*?</\1>", "", source)
    text = re.sub(r"(?i)<br\s*/?>|</p>|</div>|</h\d>|</li>|</tr>", "\n", text)
    text = html.unescape(strip_tags(text))
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def message_render(
    *, version: TemplateVersion, contact: Any, features: Any = None, **context: Any
) -> RenderedMessage:
    """Render every field of ``version`` for ``contact``. Raises TemplateSyntaxError on a
    broken template (reported by the caller as a permanent failure of that message)."""
    data = {"contact": contact, "features": features, **context}
    html_ctx, text_ctx = Context(data, autoescape=True), Context(data, autoescape=False)
    values = {}
    for field in ALL_FIELDS:
        source = getattr(version, field) or ""
        if "{" not in source:  # plain text: nothing to render
            values[field] = source
            continue
        values[field] = _compiled(source).render(html_ctx if field == "html" else text_ctx)
    values["subject"] = " ".join(values["subject"].split())
    if not values["text"].strip() and values["html"].strip():
        values["text"] = _html_to_text(values["html"])
    return RenderedMessage(**{k: v.strip() if k != "html" else v for k, v in values.items()})
