"""Vectorised recording of an event batch (a CSV chunk or an API request).

Contract: :func:`events_record_columns` gives exactly the stored rows, statuses and reject
reasons that cleaning each item with :func:`contacts.services.ingest.event_item_clean` would
give. Columns are cleaned with pandas/numpy: each distinct value goes once through the same
``normalise_*`` function the per-item path uses (values repeat: types, contacts, countries…),
timestamps in a strict ISO 8601 shape are parsed with ``pandas.to_datetime`` and checked for
pre-1970/future in one comparison. Any row a vectorised check cannot vouch for (odd types,
unknown fields, a value a normaliser refuses, an unusual timestamp shape…) is cleaned by
``event_item_clean`` itself, so every reject reason keeps its wording.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import connection, transaction
from django.utils.translation import gettext_lazy as _

from contacts.hooks import identity_is_blocked
from contacts.models import Contact, Event
from contacts.normalisation import (
    CLOCK_SKEW,
    EPOCH,
    MAX_JSON_BYTES,
    MAX_JSON_DEPTH,
    InvalidValue,
    check_json_object,
    check_string,
    clean_text,
    normalise_category,
    normalise_city,
    normalise_country,
    normalise_email,
    normalise_event_type,
    normalise_phone,
    parse_number,
)
from contacts.selectors import AliasTables, contacts_identity_index
from contacts.services.ingest import (
    ERASED,
    EVENT_FIELDS,
    _channel,
    _contact_row,
    _purchase_properties,
    derived_external_id,
    event_item_clean,
)
from contacts.services.storage import contacts_insert, events_copy_payload, events_insert_frame
from contacts.signals import events_ingested

# Strict shape both datetime.fromisoformat and pandas' ISO 8601 parser read identically.
_ISO = (
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[T ]([01]\d|2[0-3]):[0-5]\d:[0-5]\d"
    r"(\.\d{1,6})?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$"
)
# The event fields that arrive as text (``properties`` is an object).
TEXT_FIELDS = tuple(name for name in EVENT_FIELDS if name != "properties")
IDENTITY_FIELDS = ("external_id", "email", "phone")
_NUL = re.compile("\x00")
_SURROGATE = re.compile("[\ud800-\udfff]")
# ``json.dumps(value, ensure_ascii=False)`` without building an encoder per call.
_JSON = json.JSONEncoder(ensure_ascii=False)
_JSON_CHECKED = json.JSONEncoder(ensure_ascii=False, allow_nan=False)
_LONG_DIGITS = re.compile(r"\d{19}")
# Budget that check_json_object charges per character of JSON text, at most (an integer ``0``
# is one character and 20 bytes of budget).
_BUDGET_PER_CHAR = 20


@dataclass
class BatchOutcome:
    """Per row: ``status`` (created | duplicate | rejected) and, for rejected rows, errors.
    ``ingested``: the ``events_ingested`` arguments of the rows stored (``contact_ids``,
    ``event_types``; empty when nothing new was stored)."""

    status: np.ndarray
    errors: dict[int, dict[str, str]] = field(default_factory=dict)
    ingested: dict[str, Any] = field(default_factory=dict)


@dataclass
class CleanBatch:
    """A cleaned batch, not yet stored (:func:`events_clean_columns`): per row its status so far
    (``created`` for a row to store, ``duplicate`` for a key repeated earlier in the batch,
    ``rejected`` with its errors), and the cleaned columns of the rows to store."""

    status: np.ndarray
    errors: dict[int, dict[str, str]]
    store: np.ndarray  # rows to store
    clean: dict[str, np.ndarray]
    identity_name: np.ndarray
    identity_value: np.ndarray
    occurred_ns: np.ndarray
    properties: np.ndarray
    contact_id: np.ndarray | None = None  # set by events_resolve_contacts
    rows: np.ndarray | None = None  # set by events_prepare_rows: positions of the stored rows
    frame: pd.DataFrame | None = None  # … and those rows in EVENT_INSERT_COLUMNS order
    copy_payload: bytes | None = None  # … and, on PostgreSQL, as a COPY text stream


def _map_unique(
    values: np.ndarray,
    normalise: Callable[[Any], Any],
    unchanged: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(normalised values, refused mask)``: ``normalise`` runs once per distinct value; the
    empty string stays empty (an absent value). ``unchanged``: a vectorised check of the
    distinct values that ``normalise`` would return as they are (those skip it)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    out = np.empty(len(uniques), dtype=object)
    bad = np.zeros(len(uniques), dtype=bool)
    kept = unchanged(uniques) if unchanged is not None else np.zeros(len(uniques), dtype=bool)
    out[kept] = uniques[kept]
    for i in np.flatnonzero(~kept):
        value = uniques[i]
        if value == "":
            out[i] = ""
            continue
        try:
            out[i] = normalise(value)
        except InvalidValue:
            out[i], bad[i] = "", True
    return out[codes], bad[codes]


def _clean_texts(values: np.ndarray, *, field_max: int) -> np.ndarray:
    """Which strings of ``values`` :func:`clean_text` returns unchanged (already trimmed, at
    most ``field_max`` characters, no NUL, valid Unicode): checked with C-level maps."""
    if not all(type(value) is str for value in values):
        return np.zeros(len(values), dtype=bool)
    n = len(values)
    kept = np.fromiter(map(str.__eq__, values, map(str.strip, values)), dtype=bool, count=n)
    kept &= np.fromiter(map(len, values), dtype=np.int64, count=n) <= field_max
    joined = "".join(values)
    if "\x00" in joined or (not joined.isascii() and _SURROGATE.search(joined)):
        kept &= np.fromiter(
            ("\x00" not in value and not _SURROGATE.search(value) for value in values),
            dtype=bool,
            count=n,
        )
    return kept


def events_record_columns(
    *,
    columns: dict[str, np.ndarray],
    n: int,
    item_at: Callable[[int], Any],
    eligible: np.ndarray,
    source: str,
    now: datetime,
    aliases: AliasTables,
    default_zone: ZoneInfo | None,
    create_unknown: bool,
    csv_properties: dict[str, np.ndarray] | None = None,
    api_properties: list[Any] | None = None,
    decimal_comma: bool = False,
) -> BatchOutcome:
    """Clean and store ``n`` events given as columns; see the module docstring.

    ``columns``: for each name of ``TEXT_FIELDS``, an object array of strings (``""`` when
    absent). ``eligible``: rows whose raw values are all strings and whose item has no unknown
    field (others go through ``item_at(i)`` and the per-item path). Properties come either as
    raw CSV cells per property name (``csv_properties``, numbers parsed like the CSV reader) or
    as the API's objects (``api_properties``).
    """
    batch = events_clean_columns(
        columns=columns,
        n=n,
        item_at=item_at,
        eligible=eligible,
        now=now,
        aliases=aliases,
        default_zone=default_zone,
        csv_properties=csv_properties,
        api_properties=api_properties,
        decimal_comma=decimal_comma,
    )
    return events_store_clean(batch=batch, source=source, now=now, create_unknown=create_unknown)


def events_clean_columns(
    *,
    columns: dict[str, np.ndarray],
    n: int,
    item_at: Callable[[int], Any],
    eligible: np.ndarray,
    now: datetime,
    aliases: AliasTables,
    default_zone: ZoneInfo | None,
    csv_properties: dict[str, np.ndarray] | None = None,
    api_properties: list[Any] | None = None,
    decimal_comma: bool = False,
) -> CleanBatch:
    """The cleaning half of :func:`events_record_columns` (same arguments): no database access,
    so a caller may clean the next batch while the previous one is being stored."""

    default_country = settings.CIBLE_DEFAULT_COUNTRY
    purchase_type = settings.CIBLE_PURCHASE_EVENT_TYPE
    amount_name = settings.CIBLE_PURCHASE_AMOUNT_PROPERTY
    flag = ~np.asarray(eligible, dtype=bool).copy()

    def col(name: str) -> np.ndarray:
        return columns.get(name, np.full(n, "", dtype=object))

    clean: dict[str, np.ndarray] = {}
    for name, normalise in (
        ("type", lambda v: normalise_event_type(v, aliases=aliases.event_type)),
        ("channel", _channel),
        ("device", lambda v: clean_text(v, field_max=32).lower()),
        ("country", normalise_country),
        ("city", lambda v: normalise_city(v, aliases=aliases.city)),
        ("external_id", lambda v: clean_text(v, field_max=128)),
        ("email", normalise_email),
    ):
        unchanged = (lambda u: _clean_texts(u, field_max=128)) if name == "external_id" else None
        values, bad = _map_unique(col(name), normalise, unchanged)
        clean[name], flag = values, flag | bad
    # Phones are parsed in the event's country (else the default): once per distinct pair.
    phone_raw = col("phone")
    if (phone_raw != "").any():
        region = np.where(clean["country"] != "", clean["country"], default_country)
        phones: dict[tuple[str, str], str | None] = {}
        clean["phone"] = np.full(n, "", dtype=object)
        for i in np.flatnonzero(phone_raw != ""):
            pair = (phone_raw[i], region[i])
            if pair not in phones:
                try:
                    phones[pair] = normalise_phone(pair[0], country=pair[1])
                except InvalidValue:
                    phones[pair] = None
            phone = phones[pair]
            if phone is None:
                flag[i] = True
            else:
                clean["phone"][i] = phone
    else:
        clean["phone"] = np.full(n, "", dtype=object)
    flag |= clean["type"] == ""  # required (or refused)

    # Idempotency keys: all distinct, so checked column-wise rather than per value.
    keys = _strip(col("idempotency_key"))
    flag |= (keys == "") | (np.fromiter(map(len, keys), dtype=np.int64, count=n) > 128)
    joined = "".join(keys)  # one C pass; the per-key scans only when it finds something
    if "\x00" in joined:
        flag |= np.fromiter(("\x00" in key for key in keys), dtype=bool, count=n)
    if not joined.isascii() and _SURROGATE.search(joined):
        flag |= np.fromiter((bool(_SURROGATE.search(key)) for key in keys), dtype=bool, count=n)
    clean["idempotency_key"] = keys

    # Timestamps: strict ISO 8601 with offset → UTC nanoseconds, one range comparison.
    ns, shaped = iso_utc_nanoseconds(_strip(col("timestamp")))
    low = pd.Timestamp(EPOCH).value
    high = pd.Timestamp(now + CLOCK_SKEW).value
    flag |= ~shaped | (ns < low) | (ns > high)

    identity_name = np.where(
        clean["external_id"] != "",
        "external_id",
        np.where(clean["email"] != "", "email", np.where(clean["phone"] != "", "phone", "")),
    ).astype(object)
    identity_value = np.where(
        clean["external_id"] != "",
        clean["external_id"],
        np.where(clean["email"] != "", clean["email"], clean["phone"]),
    ).astype(object)
    flag |= identity_name == ""
    is_purchase = clean["type"] == purchase_type

    # Properties as JSON text (``json.dumps(…, ensure_ascii=False)`` of the cleaned object).
    if csv_properties is not None:
        properties = _csv_properties_json(
            csv_properties,
            n=n,
            is_purchase=is_purchase,
            flag=flag,
            decimal_comma=decimal_comma,
            aliases=aliases,
            amount_name=amount_name,
        )
    else:
        properties = np.full(n, "{}", dtype=object)
        for i, value in enumerate(api_properties or [None] * n):
            if flag[i]:
                continue
            if value is None or value == "":
                flag[i] |= bool(is_purchase[i])  # a purchase needs an amount
                continue
            if value == {}:
                flag[i] |= bool(is_purchase[i])
                continue
            text = properties_json_vouched(value)
            if text is None:  # the exact walk (and its reason, via the per-item path)
                try:
                    value = check_json_object(value)
                except InvalidValue:
                    flag[i] = True
                    continue
            errors: dict = {}
            if is_purchase[i]:
                value = _purchase_properties(value, aliases=aliases, errors=errors)
                text = None
            if errors:
                flag[i] = True
            else:
                properties[i] = text if text is not None else _JSON.encode(value)

    # Rows the vectorised checks cannot vouch for: the per-item path, exactly.
    status = np.full(n, "created", dtype=object)
    errors_by_row: dict[int, dict[str, str]] = {}
    for i in np.flatnonzero(flag):
        cleaned = event_item_clean(
            item_at(int(i)),
            index=int(i),
            now=now,
            aliases=aliases,
            default_zone=default_zone,
            default_country=default_country,
        )
        if not hasattr(cleaned, "identity"):
            status[i] = "rejected"
            errors_by_row[int(i)] = cleaned.errors
            continue
        clean["type"][i] = cleaned.type
        clean["idempotency_key"][i] = cleaned.idempotency_key
        clean["channel"][i], clean["device"][i] = cleaned.channel, cleaned.device
        clean["country"][i], clean["city"][i] = cleaned.country, cleaned.city
        identity_name[i], identity_value[i] = cleaned.identity
        ns[i] = pd.Timestamp(cleaned.occurred_at).value
        properties[i] = _JSON.encode(cleaned.properties)

    valid = status != "rejected"
    # A key repeated in the batch: the first valid row wins, later ones are duplicates.
    repeated = pd.Series(clean["idempotency_key"]).where(valid).duplicated(keep="first").to_numpy()
    repeated &= valid
    status[repeated] = "duplicate"
    return CleanBatch(
        status=status,
        errors=errors_by_row,
        store=valid & ~repeated,
        clean=clean,
        identity_name=identity_name,
        identity_value=identity_value,
        occurred_ns=ns,
        properties=properties,
    )


def _strip(values: np.ndarray) -> np.ndarray:
    """``str.strip`` of each string of an object array."""
    out = np.empty(len(values), dtype=object)
    out[:] = list(map(str.strip, values))
    return out


_ISO_WIDTH = 32  # YYYY-MM-DDTHH:MM:SS.ffffff+HH:MM
_ISO_SEPARATORS = {4: "-", 7: "-", 13: ":", 16: ":"}
_ISO_FIELDS = {  # name: (first position, last position, lowest, highest)
    "year": (0, 3, 1970, 2200),
    "month": (5, 6, 1, 12),
    "day": (8, 9, 1, 31),
    "hour": (11, 12, 0, 23),
    "minute": (14, 15, 0, 59),
    "second": (17, 18, 0, 59),
}


def iso_utc_nanoseconds(stamps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(UTC nanoseconds, shaped)`` of an object array of stripped strings, computed with
    numpy on the characters. ``shaped``: the value is a date-time of the strict shape
    ``YYYY-MM-DD[T ]HH:MM:SS[.f{1,6}](Z|±HH:MM)`` (ASCII digits, a real calendar day, an offset
    under 24 h, a year from 1970 to 2200), whose instant is then exactly the one
    ``datetime.fromisoformat`` gives; 0 ns for the others (the caller checks them one by one)."""
    n = len(stamps)
    lengths = np.fromiter(map(len, stamps), dtype=np.int64, count=n)
    fits = (lengths >= 20) & (lengths <= _ISO_WIDTH)
    text = np.empty(n, dtype=f"U{_ISO_WIDTH}")
    text[fits] = stamps[fits]
    chars = text.view(np.uint32).reshape(n, _ISO_WIDTH).astype(np.int64)
    digits = chars - ord("0")
    rows = np.arange(n)
    last = np.maximum(lengths - 1, 0)

    def at(position: np.ndarray | int) -> np.ndarray:
        return chars[rows, np.clip(position, 0, _ISO_WIDTH - 1)]

    def number(first: np.ndarray | int, last: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
        value, ok = np.zeros(n, dtype=np.int64), np.ones(n, dtype=bool)
        for offset in range(int(np.max(np.asarray(last) - np.asarray(first))) + 1):
            position = np.clip(np.asarray(first) + offset, 0, _ISO_WIDTH - 1)
            digit = digits[rows, position]
            ok &= (digit >= 0) & (digit <= 9)
            value = value * 10 + digit
        return value, ok

    shaped = fits.copy()
    for position, separator in _ISO_SEPARATORS.items():
        shaped &= chars[:, position] == ord(separator)
    shaped &= (chars[:, 10] == ord("T")) | (chars[:, 10] == ord(" "))
    parts = {}
    for name, (first, end, lowest, highest) in _ISO_FIELDS.items():
        value, ok = number(first, end)
        shaped &= ok & (value >= lowest) & (value <= highest)
        parts[name] = value
    # The offset: Z, or ±HH:MM ending the value.
    zulu = at(last) == ord("Z")
    sign = at(lengths - 6)
    offset_hours, hours_ok = number(lengths - 5, lengths - 4)
    offset_minutes, minutes_ok = number(lengths - 2, lengths - 1)
    numeric_offset = (
        ((sign == ord("+")) | (sign == ord("-")))
        & hours_ok
        & minutes_ok
        & (at(lengths - 3) == ord(":"))
        & (offset_hours <= 23)
        & (offset_minutes <= 59)
    )
    shaped &= zulu | numeric_offset
    offset_seconds = np.where(
        zulu, 0, np.where(sign == ord("-"), -1, 1) * (offset_hours * 3600 + offset_minutes * 60)
    )
    # Between the seconds and the offset: nothing, or a dot and 1 to 6 digits.
    fraction_length = lengths - np.where(zulu, 1, 6) - 19
    shaped &= (fraction_length == 0) | (
        (fraction_length >= 2) & (fraction_length <= 7) & (chars[:, 19] == ord("."))
    )
    fraction = np.zeros(n, dtype=np.int64)
    for place in range(1, 7):
        inside = place < fraction_length
        digit = digits[:, 19 + place]
        shaped &= ~inside | ((digit >= 0) & (digit <= 9))
        fraction += np.where(inside, digit, 0) * 10 ** (9 - place)
    # The calendar day must exist (2025-02-30 does not).
    year = np.where(shaped, parts["year"], 1970)
    month = np.where(shaped, parts["month"], 1)
    day = np.where(shaped, parts["day"], 1)
    months = (year - 1970) * 12 + (month - 1)
    first_day = months.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    next_month = (months + 1).astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    shaped &= day <= next_month - first_day
    seconds = (
        (first_day + day - 1) * 86_400
        + parts["hour"] * 3600
        + parts["minute"] * 60
        + parts["second"]
        - offset_seconds
    )
    nanoseconds = np.where(shaped, seconds * 1_000_000_000 + fraction, 0)
    return nanoseconds, shaped


def properties_json_vouched(value: Any) -> str | None:
    """The JSON text of a properties object (as ``json.dumps(value, ensure_ascii=False)``)
    when checks on that text vouch that :func:`check_json_object` accepts ``value`` unchanged;
    ``None`` when they cannot (the caller then runs the exact walk). Vouched: one flat object
    with string keys (lists at most ``MAX_JSON_DEPTH - 2`` deep), finite numbers, no integer
    of 19 digits or more, no NUL, valid Unicode, a text short enough that no budget can be
    exceeded. Every check errs towards ``None``: braces or digits inside strings count too."""
    if type(value) is not dict or not all(type(key) is str for key in value):
        return None
    try:
        text = _JSON_CHECKED.encode(value)
    except (ValueError, TypeError):  # NaN/Infinity, a value JSON cannot hold
        return None
    if (
        len(text) * _BUDGET_PER_CHAR > MAX_JSON_BYTES
        or text.count("{") != 1
        or text.count("[") > MAX_JSON_DEPTH - 2
        or "\\u0000" in text
        or _LONG_DIGITS.search(text)
    ):
        return None
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate
            return None
    return text


def events_prepare_rows(*, batch: CleanBatch, source: str, now: datetime) -> None:
    """Set ``batch.rows``/``frame``/``copy_payload``: the rows to store, as they will be written
    (no database access; call after :func:`events_resolve_contacts`)."""
    clean = batch.clean
    rows = np.flatnonzero(batch.store & (batch.status != "rejected"))
    # In contact order (see contacts.services.storage: foreign-key checks, index locality, and
    # two writers of overlapping batches take their row locks in the same order).
    rows = rows[np.argsort(batch.contact_id[rows], kind="stable")]
    frame = pd.DataFrame(
        {
            "contact_id": batch.contact_id[rows],
            "type": clean["type"][rows],
            "occurred_at": batch.occurred_ns[rows],
            "received_at": pd.Timestamp(now).value,
            "properties": batch.properties[rows],
            "channel": clean["channel"][rows],
            "device": clean["device"][rows],
            "country": clean["country"][rows],
            "city": clean["city"][rows],
            "source": source,
            "idempotency_key": clean["idempotency_key"][rows],
        }
    )
    batch.rows, batch.frame = rows, frame
    batch.copy_payload = events_copy_payload(frame) if connection.vendor == "postgresql" else None


def events_store_clean(
    *,
    batch: CleanBatch,
    source: str,
    now: datetime,
    create_unknown: bool,
    send_signal: bool = True,
) -> BatchOutcome:
    """The storing half of :func:`events_record_columns`: one transaction resolves the contacts
    (creating unknown ones as anonymous profiles, or rejecting their rows) unless
    :func:`events_resolve_contacts` already did, inserts the rows (a key already stored for
    ``source`` makes its row ``duplicate``) and, after commit, sends ``events_ingested`` —
    or, with ``send_signal=False``, leaves that to the caller (``outcome.ingested``), who must
    send it once the call has returned. ``batch`` is updated in place."""
    status, errors_by_row = batch.status, batch.errors
    if not batch.store.any():
        return BatchOutcome(status, errors_by_row)

    outcome = BatchOutcome(status, errors_by_row)
    with transaction.atomic():
        if batch.contact_id is None:
            events_resolve_contacts(batch=batch, create_unknown=create_unknown, now=now)
        if batch.frame is None:
            events_prepare_rows(batch=batch, source=source, now=now)
        rows, frame = batch.rows, batch.frame
        new_keys = events_insert_frame(frame, copy_payload=batch.copy_payload)
        is_new = frame["idempotency_key"].isin(new_keys).to_numpy()
        status[rows[~is_new]] = "duplicate"
        if is_new.any():
            outcome.ingested = events_ingested_arguments(frame[is_new])
            if send_signal:
                transaction.on_commit(lambda: events_ingested_send(outcome, source=source))
    return outcome


def events_ingested_arguments(stored: pd.DataFrame) -> dict[str, Any]:
    """The ``events_ingested`` arguments for the stored rows of a batch (``contact_id`` and
    ``type`` columns): every contact, every type, and the contacts per type, so a receiver
    interested in a few types (conversions, journey triggers) looks at their contacts only."""
    pairs = stored[["type", "contact_id"]].drop_duplicates()
    by_type = {
        str(kind): sorted(int(c) for c in ids)
        for kind, ids in pairs.groupby("type", sort=False)["contact_id"]
    }
    return {
        "contact_ids": sorted(int(c) for c in pd.unique(pairs["contact_id"])),
        "event_types": set(by_type),
        "contact_ids_by_type": by_type,
    }


def events_ingested_send(outcome: BatchOutcome, *, source: str) -> None:
    """Send ``events_ingested`` for a stored batch (nothing when no new row was stored)."""
    if outcome.ingested:
        events_ingested.send(sender=Event, source=source, **outcome.ingested)


def _csv_properties_json(
    raw_columns: dict[str, np.ndarray],
    *,
    n: int,
    is_purchase: np.ndarray,
    flag: np.ndarray,
    decimal_comma: bool,
    aliases: AliasTables,
    amount_name: str,
) -> np.ndarray:
    """JSON text of each row's properties built from CSV cells, column by column; rows whose
    object the per-item checks might refuse (NUL, size, a bad purchase amount or category) are
    set in ``flag`` (in place)."""

    out = np.full(n, "", dtype=object)
    budget = np.zeros(n, dtype=np.int64)
    has_amount = np.zeros(n, dtype=bool)
    for name, raw in raw_columns.items():
        present = raw != ""
        rows = np.flatnonzero(present)
        if not len(rows):
            continue
        try:
            check_string(name)
        except InvalidValue:
            flag |= present
            continue
        cells = raw[rows]
        budget[rows] += len(name) + 30 + np.fromiter(map(len, cells), np.int64, len(rows))
        if "\x00" in "".join(cells):
            flag[rows] |= np.fromiter(("\x00" in cell for cell in cells), bool, len(rows))
        key = _JSON.encode(name) + ": "  # as json.dumps({name: value})[1:-1]

        def fragment(value: Any, key: str = key) -> str:
            return key + _JSON.encode(value)

        def plain(v: str) -> str:
            return fragment(parse_number(v, decimal_comma=decimal_comma))

        if name == amount_name:
            has_amount |= present

            def special(v: str) -> str:
                errors: dict = {}
                value = _purchase_properties(
                    {amount_name: parse_number(v, decimal_comma=decimal_comma)},
                    aliases=aliases,
                    errors=errors,
                )
                if errors:
                    raise InvalidValue(errors["properties"])
                return fragment(value[amount_name])

        elif name == "category":

            def special(v: str) -> str:
                parsed = parse_number(v, decimal_comma=decimal_comma)
                return fragment(normalise_category(parsed, aliases=aliases.category))

        else:
            special = plain
        purchase = is_purchase[rows]
        pieces = np.empty(len(rows), dtype=object)
        for among, normalise in ((~purchase, plain), (purchase, special)):
            if among.any():
                values, bad = _map_unique(cells[among], normalise)
                pieces[among] = values
                if normalise is special and normalise is not plain:
                    flag[rows[among]] |= bad
        before = out[rows]
        out[rows] = np.where(before == "", pieces, before + ", " + pieces)
    flag |= is_purchase & ~has_amount
    flag |= budget > MAX_JSON_BYTES
    filled = out != ""
    out[filled] = "{" + out[filled] + "}"
    out[~filled] = "{}"
    return out


def events_resolve_contacts(*, batch: CleanBatch, create_unknown: bool, now: datetime) -> None:
    """Set ``batch.contact_id`` for the rows to store: one query for the batch's distinct
    identities; unknown people created as anonymous profiles (committed, so an import may
    resolve its next chunk while this one is being stored), or their rows rejected (``status``
    and ``errors`` updated in place). Idempotent: a contact created concurrently is reused."""
    if not batch.store.any():
        batch.contact_id = np.zeros(len(batch.status), dtype=np.int64)
        return
    with transaction.atomic():
        batch.contact_id = _resolve(
            batch.identity_name,
            batch.identity_value,
            store=batch.store,
            status=batch.status,
            errors=batch.errors,
            create_unknown=create_unknown,
            now=now,
            occurred_ns=batch.occurred_ns,
        )


def _resolve(
    identity_name: np.ndarray,
    identity_value: np.ndarray,
    *,
    store: np.ndarray,
    status: np.ndarray,
    errors: dict[int, dict[str, str]],
    create_unknown: bool,
    now: datetime,
    occurred_ns: np.ndarray | None = None,
) -> np.ndarray:
    """Contact id per row (0 where rejected): one query for the batch's distinct identities;
    unknown people created as anonymous profiles (or their rows rejected), as the per-item path.
    A profile created here is dated (``created_at``, its sign-up time) by its earliest event in
    the batch (``occurred_ns``, UTC nanoseconds per row), else ``now``."""

    rows = np.flatnonzero(store)
    pairs = pd.DataFrame({"name": identity_name[rows], "value": identity_value[rows]})
    distinct = pairs.drop_duplicates()
    by_name = {
        name: distinct["value"][distinct["name"] == name].tolist() for name in IDENTITY_FIELDS
    }
    index = contacts_identity_index(
        external_ids=by_name["external_id"], emails=by_name["email"], phones=by_name["phone"]
    )
    lookup = {"external_id": index.by_external_id, "email": index.by_email, "phone": index.by_phone}
    found: dict[tuple[str, str], int] = {}
    missing: dict[tuple[str, str], Contact] = {}
    blocked: set[tuple[str, str]] = set()
    for name in IDENTITY_FIELDS:
        table = lookup[name]
        for value in by_name[name]:
            pk = table.get(value)
            if pk is not None:
                found[(name, value)] = pk
            elif create_unknown:
                email = value if name == "email" else ""
                phone = value if name == "phone" else ""
                if identity_is_blocked(email=email, phone=phone):
                    blocked.add((name, value))
                    continue
                missing[(name, value)] = Contact(
                    external_id=value
                    if name == "external_id"
                    else derived_external_id(email=email, phone=phone),
                    email=email,
                    phone=phone,
                    is_anonymous=True,
                    attributes={},
                )
    if missing:
        if occurred_ns is not None:
            earliest = (
                pairs.assign(ns=occurred_ns[rows]).groupby(["name", "value"])["ns"].min().to_dict()
            )
            for identity, contact in missing.items():
                contact.created_at = pd.Timestamp(earliest[identity], tz="UTC").to_pydatetime()
        contacts_insert([_contact_row(c, now) for c in missing.values()])
        ids = dict(
            Contact.objects.filter(
                external_id__in=[c.external_id for c in missing.values()]
            ).values_list("external_id", "id")
        )
        for identity, contact in missing.items():
            found[identity] = ids[contact.external_id]
    contact_id = np.zeros(len(identity_name), dtype=np.int64)
    keys = list(zip(pairs["name"], pairs["value"], strict=True))
    ids = np.fromiter((found.get(k, 0) for k in keys), dtype=np.int64, count=len(keys))
    contact_id[rows] = ids
    for position in np.flatnonzero(ids == 0):
        i = int(rows[position])
        name = keys[position][0]
        status[i] = "rejected"
        errors[i] = {name: ERASED if keys[position] in blocked else _("Unknown contact.")}
    return contact_id
