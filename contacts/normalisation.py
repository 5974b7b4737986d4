"""Normalisation at the door: every value that enters Cible goes through one of these functions.

Each ``normalise_*`` function returns the canonical value or raises :class:`InvalidValue` with a
translatable reason a marketer can act on. They hold no database access: alias tables are passed
in as plain dicts (see ``contacts.selectors.alias_table``).

Canonical forms: emails lower-cased with an ASCII (IDNA/punycode) domain; phones E.164; timestamps
aware UTC, 1970 ≤ t ≤ now + 5 min; countries ISO 3166-1 alpha-2; cities "Saint-Étienne" style;
event types and categories ``snake_case`` after the alias table.
"""

from __future__ import annotations

import math
import re
import unicodedata
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import idna
import phonenumbers
from django.utils.translation import gettext_lazy as _

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CLOCK_SKEW = timedelta(minutes=5)
MAX_TEXT = 1000  # longest free-text value stored in a string column or property
MAX_JSON_BYTES = 16_384  # serialised size of one item's attributes / properties
MAX_JSON_DEPTH = 5

# RFC 5322 dot-atom, extended to Unicode letters (RFC 6531); no spaces, quotes or specials.
_EMAIL_LOCAL = re.compile(r"^[^\s\"(),:;<>@\[\\\]]+$")
_EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_LOCALE = re.compile(r"^([a-zA-Z]{2,3})(?:[-_]([a-zA-Z]{2}|\d{3}))?$")
_INT = re.compile(r"^[+-]?\d{1,15}$")
_FLOAT = re.compile(r"^[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d{1,3})?$")
_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+$")


class InvalidValue(ValueError):
    """A value that cannot be normalised; ``str(exc)`` is the translated reason."""

    def __init__(self, reason: Any):
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return str(self.reason)


def fold(text: str) -> str:
    """Comparison key: accents stripped, case-folded, punctuation and spaces collapsed."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    return " ".join(re.sub(r"[^\w]+", " ", bare).split())


def clean_text(value: Any, *, field_max: int = MAX_TEXT) -> str:
    """A storable string: trimmed, no NUL / control / lone-surrogate characters, bounded."""
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidValue(_("Expected a string."))
    text = str(value).strip()
    if len(text) > field_max:
        raise InvalidValue(
            _("Too long: %(length)d characters, at most %(max)d.")
            % {"length": len(text), "max": field_max}
        )
    check_string(text)
    return text


def echo_safe(text: Any) -> str:
    """``text`` made safe to echo back in an answer (lone surrogates escaped, bounded)."""
    return str(text)[:200].encode("utf-8", "backslashreplace").decode("utf-8")


def check_string(text: str) -> None:
    if "\x00" in text:
        raise InvalidValue(_("Contains a NUL character."))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidValue(_("Contains characters that are not valid Unicode.")) from exc


def check_json_object(value: Any, *, max_bytes: int = MAX_JSON_BYTES) -> dict:
    """A JSON object safe for every database: string keys, no NUL, finite numbers, bounded."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidValue(_("Expected an object."))
    budget = [max_bytes]

    def walk(node: Any, depth: int) -> None:
        if depth > MAX_JSON_DEPTH:
            raise InvalidValue(_("Nested more than %(depth)d levels.") % {"depth": MAX_JSON_DEPTH})
        if isinstance(node, dict):
            for key, item in node.items():
                if not isinstance(key, str):
                    raise InvalidValue(_("Object keys must be strings."))
                check_string(key)
                budget[0] -= len(key) + 4
                walk(item, depth + 1)
        elif isinstance(node, list):
            for item in node:
                walk(item, depth + 1)
        elif isinstance(node, str):
            budget[0] -= len(node) + 2
            if budget[0] >= 0:
                check_string(node)
        elif isinstance(node, float):
            if not math.isfinite(node):
                raise InvalidValue(_("Numbers must be finite (no NaN or Infinity)."))
            budget[0] -= 24
        elif isinstance(node, bool) or node is None:
            budget[0] -= 5
        elif isinstance(node, int):
            if abs(node) >= 2**63:
                raise InvalidValue(_("Integer out of range."))
            budget[0] -= 20
        else:
            raise InvalidValue(_("Unsupported value."))
        if budget[0] < 0:
            raise InvalidValue(_("Larger than %(max)d bytes.") % {"max": max_bytes})

    walk(value, 1)
    return value


def normalise_email(raw: Any) -> str:
    text = clean_text(raw, field_max=254)
    if not text:
        return ""
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain or len(local) > 64:
        raise InvalidValue(_("Not a valid email address."))
    if not _EMAIL_LOCAL.match(local) or local.startswith(".") or ".." in local:
        raise InvalidValue(_("Not a valid email address."))
    try:
        ascii_domain = idna.encode(domain.rstrip("."), uts46=True).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError) as exc:
        raise InvalidValue(_("The email domain is not a valid domain name.")) from exc
    if "." not in ascii_domain:
        raise InvalidValue(_("The email domain is not a valid domain name."))
    email = f"{local.lower()}@{ascii_domain}"
    if len(email) > 254:
        raise InvalidValue(_("Not a valid email address."))
    return email


def normalise_phone(raw: Any, *, country: str) -> str:
    """E.164, parsed in ``country`` (alpha-2) when the number has no international prefix."""
    text = clean_text(raw, field_max=40)
    if not text:
        return ""
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, country or None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidValue(_("Not a phone number.")) from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidValue(
            _("Not a valid phone number for %(country)s.")
            % {"country": phonenumbers.region_code_for_number(number) or country or "?"}
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def parse_timestamp(raw: Any, *, default_zone: ZoneInfo | None, now: datetime) -> datetime:
    """ISO 8601 → aware UTC. Naive values need ``default_zone``; future and pre-1970 refused."""
    if isinstance(raw, bool) or not isinstance(raw, str):
        raise InvalidValue(_("Expected an ISO 8601 date-time string."))
    text = raw.strip()
    if len(text) > 40:
        raise InvalidValue(_("Not an ISO 8601 date-time."))
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidValue(
            _("Not an ISO 8601 date-time (expected e.g. 2026-03-01T14:05:00+01:00).")
        ) from exc
    if moment.tzinfo is None:
        if default_zone is None:
            raise InvalidValue(
                _(
                    "The date-time has no UTC offset (add e.g. +01:00 or Z, or configure a default time zone)."
                )
            )
        moment = moment.replace(tzinfo=default_zone)
    try:
        moment = moment.astimezone(UTC)
    except OverflowError as exc:  # year 1 or 9999 shifted past datetime's range by its offset
        raise InvalidValue(
            _("Before 1970.") if moment.year < 1970 else _("In the future.")
        ) from exc
    if moment < EPOCH:
        raise InvalidValue(_("Before 1970."))
    if moment > now + CLOCK_SKEW:
        raise InvalidValue(_("In the future."))
    return moment


_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_signup_time(raw: Any, *, default_zone: ZoneInfo | None, now: datetime) -> datetime:
    """A sign-up time: ISO 8601 date-time as :func:`parse_timestamp` (same 1970..now + 5 min
    range), or a plain date ``YYYY-MM-DD`` read as midnight in ``default_zone`` (UTC without)."""
    if isinstance(raw, str) and _DATE_ONLY.match(raw.strip()):
        raw = raw.strip() + "T00:00:00"
        default_zone = default_zone or ZoneInfo("UTC")
    return parse_timestamp(raw, default_zone=default_zone, now=now)


def zone_or_none(name: str) -> ZoneInfo | None:
    """The IANA zone called ``name``; ``None`` for an empty name; InvalidValue otherwise."""
    if not name:
        return None
    if name not in _zones():
        raise InvalidValue(_("Unknown time zone %(zone)s.") % {"zone": name[:64]})
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidValue(_("Unknown time zone %(zone)s.") % {"zone": name[:64]}) from exc


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def normalise_timezone(raw: Any) -> str:
    text = clean_text(raw, field_max=64)
    if text:
        zone_or_none(text)
    return text


def normalise_locale(raw: Any) -> str:
    text = clean_text(raw, field_max=10)
    if not text:
        return ""
    match = _LOCALE.match(text)
    if not match:
        raise InvalidValue(_("Not a locale (expected e.g. fr or fr-FR)."))
    language, region = match.group(1).lower(), match.group(2)
    return f"{language}-{region.upper()}" if region else language


def normalise_birth_year(raw: Any, *, today: datetime) -> int | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        raise InvalidValue(_("Expected a year."))
    if isinstance(raw, str) and raw.strip().isdigit():
        raw = int(raw.strip())
    if not isinstance(raw, int):
        raise InvalidValue(_("Expected a year."))
    if not 1900 <= raw <= today.year:
        raise InvalidValue(_("Expected a year between 1900 and %(year)d.") % {"year": today.year})
    return raw


@cache
def _country_index() -> dict[str, str]:
    """Folded names and codes (English and French, official and common) → alpha-2, from pycountry."""
    import gettext

    import pycountry

    french = gettext.translation(
        "iso3166-1", pycountry.LOCALES_DIR, languages=["fr"], fallback=True
    )
    index: dict[str, str] = {}
    for country in pycountry.countries:
        names = [country.alpha_2, country.alpha_3, country.name]
        names += [getattr(country, a, "") for a in ("official_name", "common_name")]
        names += [french.gettext(n) for n in names[2:] if n]
        for name in names:
            if name:
                index.setdefault(fold(name), country.alpha_2)
    # Everyday names that ISO does not list.
    for name, code in {
        "uk": "GB",
        "england": "GB",
        "angleterre": "GB",
        "grande bretagne": "GB",
        "great britain": "GB",
        "usa": "US",
        "etats unis": "US",
        "united states of america": "US",
        "holland": "NL",
        "hollande": "NL",
        "russia": "RU",
        "russie": "RU",
        "south korea": "KR",
        "coree du sud": "KR",
    }.items():
        index.setdefault(name, code)
    return index


def normalise_country(raw: Any) -> str:
    text = clean_text(raw, field_max=100)
    if not text:
        return ""
    code = _country_index().get(fold(text))
    if code is None:
        raise InvalidValue(_("Unknown country %(country)s.") % {"country": text[:100]})
    return code


_SAINT = re.compile(r"^(st|ste|saint|sainte)$")


def city_key(raw: str) -> str:
    """Matching key of a city name: folded, "St"/"Ste" expanded, hyphens as spaces."""
    words = fold(raw.replace("-", " ")).split()
    expanded = ["sainte" if w == "ste" else "saint" if w == "st" else w for w in words]
    return " ".join(expanded)


def normalise_city(raw: Any, *, aliases: dict[str, str]) -> str:
    """A known city's canonical spelling (alias table), else a tidy title-cased form."""
    text = clean_text(raw, field_max=120)
    if not text:
        return ""
    key = city_key(text)
    if key in aliases:
        return aliases[key]
    words = " ".join(text.replace("-", " - ").split()).split(" ")
    out: list[str] = []
    for word in words:
        if word == "-":
            out.append("-")
            continue
        lower = word.lower().rstrip(".")
        if _SAINT.match(lower):
            out.append("Sainte" if lower in ("ste", "sainte") else "Saint")
        elif out and lower in ("de", "du", "des", "la", "le", "les", "sur", "en"):
            out.append(lower)
        else:
            out.append(lower[:1].upper() + lower[1:])
    title = " ".join(out).replace(" - ", "-")
    # "Saint Étienne" → "Saint-Étienne" (French usage for saint names).
    title = re.sub(r"\b(Saint|Sainte) (?=\w)", r"\1-", title)
    return title


@lru_cache(maxsize=65_536)
def alias_key(raw: str) -> str:
    """Matching key of an event type or category: folded words joined by ``_``."""
    return "_".join(fold(raw).split())


def normalise_event_type(raw: Any, *, aliases: dict[str, str]) -> str:
    text = clean_text(raw, field_max=64)
    if not text:
        raise InvalidValue(_("This field is required."))
    key = alias_key(text)
    canonical = aliases.get(key, key)
    if not _EVENT_TYPE.match(canonical):
        raise InvalidValue(
            _("Event types are letters, digits and underscores, starting with a letter.")
        )
    return canonical


def normalise_category(raw: Any, *, aliases: dict[str, str]) -> str:
    text = clean_text(raw, field_max=100)
    if not text:
        return ""
    key = alias_key(text)
    return aliases.get(key, key)


def parse_number(text: str, *, decimal_comma: bool = False) -> Any:
    """A CSV cell as int/float when it reads as a number, else the text (trimmed)."""
    value = text.strip()
    if _INT.match(value):
        return int(value)
    if _FLOAT.match(value):
        number = float(value)
        return number if math.isfinite(number) else value
    if decimal_comma and _DECIMAL_COMMA.match(value):
        return float(value.replace(",", "."))
    return value
