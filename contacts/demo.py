"""Reproducible demo population: latent personas → contacts and events, as numpy arrays.

Everything here is vectorised (no Python loop over contacts or events), so a million
contacts and ten million events are generated in seconds. The true persona of each contact
is kept in ``attributes["persona"]`` so clustering quality can be measured against it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

DAY = 86_400

EVENT_TYPES = ("purchase", "email_open", "email_click", "page_view", "cart_updated", "app_open")
CATEGORIES = ("shoes", "clothing", "beauty", "home", "electronics", "books", "sports", "food")
DEVICES = ("desktop", "mobile", "tablet")


@dataclass(frozen=True)
class Persona:
    name: str
    weight: float
    activity: float  # relative number of events
    type_mix: tuple[float, ...]  # probabilities over EVENT_TYPES
    basket_median: float  # euros, log-normal
    basket_sigma: float
    active_from_days: tuple[int, int]  # activity window starts this many days ago (range)
    active_until_days: tuple[int, int]  # ... and ends this many days ago (range)
    device_mix: tuple[float, float, float]
    email_optin: float
    sms_optin: float
    push_optin: float
    profiling_objection: float


PERSONAS: tuple[Persona, ...] = (
    Persona(
        "loyal_big_spender",
        0.15,
        2.0,
        (0.30, 0.30, 0.12, 0.20, 0.05, 0.03),
        180.0,
        0.30,
        (500, 800),
        (0, 10),
        (0.6, 0.3, 0.1),
        0.92,
        0.55,
        0.40,
        0.02,
    ),
    Persona(
        "bargain_hunter",
        0.25,
        1.3,
        (0.18, 0.22, 0.25, 0.15, 0.10, 0.10),
        28.0,
        0.35,
        (300, 700),
        (0, 20),
        (0.15, 0.75, 0.10),
        0.85,
        0.70,
        0.60,
        0.05,
    ),
    Persona(
        "window_shopper",
        0.25,
        1.0,
        (0.02, 0.10, 0.03, 0.60, 0.20, 0.05),
        60.0,
        0.40,
        (200, 600),
        (0, 30),
        (0.45, 0.45, 0.10),
        0.60,
        0.20,
        0.25,
        0.10,
    ),
    Persona(
        "lapsed_buyer",
        0.20,
        0.7,
        (0.35, 0.30, 0.05, 0.25, 0.03, 0.02),
        75.0,
        0.35,
        (700, 1000),
        (250, 450),
        (0.55, 0.35, 0.10),
        0.70,
        0.30,
        0.10,
        0.08,
    ),
    Persona(
        "new_signup",
        0.15,
        0.5,
        (0.08, 0.35, 0.15, 0.35, 0.05, 0.02),
        45.0,
        0.35,
        (5, 30),
        (0, 2),
        (0.35, 0.60, 0.05),
        0.95,
        0.50,
        0.50,
        0.03,
    ),
)

FIRST_NAMES = (
    "Camille",
    "Léa",
    "Manon",
    "Chloé",
    "Inès",
    "Jade",
    "Louise",
    "Emma",
    "Zoé",
    "Alice",
    "Clara",
    "Sarah",
    "Juliette",
    "Margaux",
    "Anaïs",
    "Élodie",
    "Hélène",
    "Aurélie",
    "Céline",
    "Agathe",
    "Lucas",
    "Hugo",
    "Louis",
    "Gabriel",
    "Arthur",
    "Jules",
    "Nathan",
    "Théo",
    "Raphaël",
    "Léo",
    "Mathis",
    "Thomas",
    "Antoine",
    "Maxime",
    "Nicolas",
    "Julien",
    "François",
    "Benoît",
    "Jérôme",
    "Noé",
)
LAST_NAMES = (
    "Martin",
    "Bernard",
    "Dubois",
    "Thomas",
    "Robert",
    "Richard",
    "Petit",
    "Durand",
    "Leroy",
    "Moreau",
    "Simon",
    "Laurent",
    "Lefèbvre",
    "Michel",
    "Garcia",
    "David",
    "Bertrand",
    "Roux",
    "Vincent",
    "Fournier",
    "Morel",
    "Girard",
    "André",
    "Lefèvre",
    "Mercier",
    "Dupont",
    "Lambert",
    "Bonnet",
    "François",
    "Martinez",
    "Legrand",
    "Garnier",
    "Faure",
    "Rousseau",
    "Blanc",
    "Guérin",
    "Muller",
    "Henry",
    "Roussel",
    "Nicolas",
)
# (city, ISO country, IANA zone, weight, phone prefix, digits after prefix)
CITIES = (
    ("Paris", "FR", "Europe/Paris", 0.22, "+336", 8),
    ("Lyon", "FR", "Europe/Paris", 0.09, "+336", 8),
    ("Marseille", "FR", "Europe/Paris", 0.08, "+337", 8),
    ("Toulouse", "FR", "Europe/Paris", 0.07, "+336", 8),
    ("Nice", "FR", "Europe/Paris", 0.05, "+336", 8),
    ("Nantes", "FR", "Europe/Paris", 0.06, "+337", 8),
    ("Strasbourg", "FR", "Europe/Paris", 0.05, "+336", 8),
    ("Montpellier", "FR", "Europe/Paris", 0.05, "+336", 8),
    ("Bordeaux", "FR", "Europe/Paris", 0.06, "+337", 8),
    ("Lille", "FR", "Europe/Paris", 0.06, "+336", 8),
    ("Rennes", "FR", "Europe/Paris", 0.04, "+336", 8),
    ("Saint-Étienne", "FR", "Europe/Paris", 0.03, "+336", 8),
    ("Bruxelles", "BE", "Europe/Brussels", 0.04, "+32470", 6),
    ("Genève", "CH", "Europe/Zurich", 0.03, "+4179", 7),
    ("Montréal", "CA", "America/Toronto", 0.03, "+1514", 7),
    ("Fort-de-France", "MQ", "America/Martinique", 0.02, "+596696", 6),
    ("London", "GB", "Europe/London", 0.02, "+447700", 6),
)
EMAIL_DOMAINS = (
    "gmail.com",
    "orange.fr",
    "free.fr",
    "laposte.net",
    "outlook.fr",
    "yahoo.fr",
    "sfr.fr",
    "icloud.com",
)


def _ascii(text: str) -> str:
    return (
        unicodedata.normalize("NFKD", text)
        .encode("ascii", "ignore")
        .decode()
        .lower()
        .replace(" ", "")
    )


@dataclass
class DemoContacts:
    """Column arrays of the generated contacts (index i is contact number i of the batch)."""

    external_id: np.ndarray
    email: np.ndarray
    phone: np.ndarray
    first_name: np.ndarray
    last_name: np.ndarray
    locale: np.ndarray
    timezone: np.ndarray
    country: np.ndarray
    city: np.ndarray
    birth_year: np.ndarray
    persona: np.ndarray  # persona index into PERSONAS
    created_at: np.ndarray  # epoch seconds
    active_from: np.ndarray  # epoch seconds
    active_until: np.ndarray  # epoch seconds
    email_optin: np.ndarray  # bool
    sms_optin: np.ndarray
    push_optin: np.ndarray
    profiling_objection: np.ndarray

    def __len__(self) -> int:
        return len(self.external_id)


def generate_contacts(*, n: int, seed: int, now: datetime, id_prefix: str = "demo") -> DemoContacts:
    """Draw ``n`` contacts. Same ``(n, seed, now)`` → same contacts."""
    rng = np.random.default_rng(seed)
    now_s = int(now.timestamp())
    weights = np.array([p.weight for p in PERSONAS])
    persona = rng.choice(len(PERSONAS), size=n, p=weights / weights.sum())

    def per_persona(attr: str) -> tuple[np.ndarray, np.ndarray]:
        lo = np.array([getattr(p, attr)[0] for p in PERSONAS])[persona]
        hi = np.array([getattr(p, attr)[1] for p in PERSONAS])[persona]
        return lo, hi

    lo, hi = per_persona("active_from_days")
    from_days = rng.uniform(lo, hi)
    lo, hi = per_persona("active_until_days")
    until_days = np.minimum(rng.uniform(lo, hi), from_days - 1)
    active_from = now_s - (from_days * DAY).astype(np.int64)
    active_until = now_s - (until_days * DAY).astype(np.int64)
    created_at = active_from - rng.integers(0, 3 * DAY, size=n)

    first_idx = rng.integers(0, len(FIRST_NAMES), size=n)
    last_idx = rng.integers(0, len(LAST_NAMES), size=n)
    first = np.array(FIRST_NAMES, dtype=object)[first_idx]
    last = np.array(LAST_NAMES, dtype=object)[last_idx]
    first_ascii = np.array([_ascii(x) for x in FIRST_NAMES], dtype=object)[first_idx]
    last_ascii = np.array([_ascii(x) for x in LAST_NAMES], dtype=object)[last_idx]
    numbers = np.arange(n)
    external_id = (
        pd.Series(numbers).map(lambda i: f"{id_prefix}-{seed}-{i:07d}").to_numpy(dtype=object)
    )
    domain = np.array(EMAIL_DOMAINS, dtype=object)[rng.integers(0, len(EMAIL_DOMAINS), size=n)]
    email = (
        first_ascii
        + "."
        + last_ascii
        + "."
        + pd.Series(numbers).astype(str).to_numpy(dtype=object)
        + f".s{seed}@"
        + domain
    )
    email = np.where(rng.random(n) < 0.04, "", email)

    city_w = np.array([c[3] for c in CITIES])
    city_idx = rng.choice(len(CITIES), size=n, p=city_w / city_w.sum())
    cities = np.array(CITIES, dtype=object)
    city = cities[city_idx, 0]
    country = cities[city_idx, 1]
    tz = cities[city_idx, 2]
    prefix = cities[city_idx, 4]
    digits = cities[city_idx, 5].astype(int)
    subscriber = rng.integers(0, 10**8, size=n)
    subscriber_str = (
        pd.Series(subscriber % (10**digits)).astype(str).str.zfill(8).to_numpy(dtype=object)
    )
    subscriber_str = _right(subscriber_str, digits)
    phone = np.where(rng.random(n) < 0.30, "", prefix + subscriber_str)
    locale = np.where(np.isin(country, ("GB",)), "en", np.where(rng.random(n) < 0.06, "en", "fr"))
    birth_year = rng.integers(1945, 2007, size=n)

    def draw(attr: str) -> np.ndarray:
        return rng.random(n) < np.array([getattr(p, attr) for p in PERSONAS])[persona]

    return DemoContacts(
        external_id=external_id,
        email=email,
        phone=phone,
        first_name=first,
        last_name=last,
        locale=locale.astype(object),
        timezone=tz,
        country=country,
        city=city,
        birth_year=birth_year,
        persona=persona,
        created_at=created_at,
        active_from=active_from,
        active_until=active_until,
        email_optin=draw("email_optin"),
        sms_optin=draw("sms_optin"),
        push_optin=draw("push_optin"),
        profiling_objection=draw("profiling_objection"),
    )


def _right(strings: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Keep the last ``widths[i]`` characters of ``strings[i]`` (widths take few distinct values)."""
    out = strings.copy()
    for width in np.unique(widths):
        mask = widths == width
        out[mask] = pd.Series(strings[mask]).str[-int(width) :].to_numpy(dtype=object)
    return out


@dataclass
class DemoEvents:
    contact: np.ndarray  # index into the DemoContacts batch
    type: np.ndarray  # index into EVENT_TYPES
    occurred_at: np.ndarray  # epoch seconds
    amount: np.ndarray  # euros for purchases, nan otherwise
    category: np.ndarray  # index into CATEGORIES, -1 when not a purchase
    device: np.ndarray  # index into DEVICES
    sequence: np.ndarray  # event number within its contact (for idempotency keys)

    def __len__(self) -> int:
        return len(self.contact)


def event_counts(contacts: DemoContacts, *, events_per_contact: float, seed: int) -> np.ndarray:
    """Events per contact: Poisson around ``events_per_contact`` scaled by persona activity."""
    rng = np.random.default_rng(seed + 1)
    activity = np.array([p.activity for p in PERSONAS])
    weights = np.array([p.weight for p in PERSONAS])
    scale = events_per_contact / float((activity * weights).sum() / weights.sum())
    return rng.poisson(activity[contacts.persona] * scale)


def generate_events(
    contacts: DemoContacts, *, events_per_contact: float, seed: int, chunk_contacts: int = 100_000
) -> Iterator[DemoEvents]:
    """Yield the events of ``contacts`` in chunks of ``chunk_contacts`` contacts."""
    counts = event_counts(contacts, events_per_contact=events_per_contact, seed=seed)
    type_cdf = np.cumsum(np.array([p.type_mix for p in PERSONAS]), axis=1)
    type_cdf[:, -1] = 1.0
    device_cdf = np.cumsum(np.array([p.device_mix for p in PERSONAS]), axis=1)
    device_cdf[:, -1] = 1.0
    median = np.array([p.basket_median for p in PERSONAS])
    sigma = np.array([p.basket_sigma for p in PERSONAS])
    for start in range(0, len(contacts), chunk_contacts):
        stop = min(start + chunk_contacts, len(contacts))
        rng = np.random.default_rng([seed, 2, start])
        local_counts = counts[start:stop]
        contact = np.repeat(np.arange(start, stop), local_counts)
        total = len(contact)
        offsets = np.repeat(np.cumsum(local_counts) - local_counts, local_counts)
        sequence = np.arange(total) - offsets
        persona = contacts.persona[contact]
        etype = (rng.random(total)[:, None] > type_cdf[persona]).sum(axis=1)
        device = (rng.random(total)[:, None] > device_cdf[persona]).sum(axis=1)
        t0 = contacts.active_from[contact]
        t1 = contacts.active_until[contact]
        occurred_at = t0 + (rng.random(total) * (t1 - t0)).astype(np.int64)
        is_purchase = etype == 0
        amount = np.where(
            is_purchase,
            np.round(rng.lognormal(np.log(median[persona]), sigma[persona]), 2),
            np.nan,
        )
        category = np.where(is_purchase, rng.integers(0, len(CATEGORIES), size=total), -1)
        yield DemoEvents(
            contact=contact,
            type=etype,
            occurred_at=occurred_at,
            amount=amount,
            category=category,
            device=device,
            sequence=sequence,
        )
