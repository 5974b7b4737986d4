"""Open pixel and click redirect links, with signed tokens, and machine-open detection.

Tokens are signed with ``SECRET_KEY`` (``django.core.signing``, one salt per kind). A click
token carries the outbox message id *and* the target URL; links are only minted by
``links_rewrite`` from the URLs present in a rendered message, and a token whose signature does
not verify is refused — so the redirect can only lead to a URL that was in the message
(no open redirect).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.core import signing
from django.urls import reverse

OPEN_SALT = "activation.tracking.open"
CLICK_SALT = "activation.tracking.click"
TRACKABLE_HREF = re.compile(r'(<a\b[^>]*?\bhref=)(["\'])(https?://[^"\']+)\2', re.IGNORECASE)
NO_TRACK = "data-no-track"


class InvalidTrackingToken(Exception):
    """Forged or altered tracking token."""


@dataclass(frozen=True)
class ClickTarget:
    message_id: int
    url: str


def _absolute(path: str) -> str:
    return settings.CIBLE_PUBLIC_BASE_URL.rstrip("/") + path


_PLACEHOLDER = "cible0token0placeholder"


@lru_cache(maxsize=8)
def _route_around_token(name: str) -> tuple[str, str]:
    """The path of URL ``name`` split around its token argument. Signed tokens use only
    URL-safe characters (``A-Za-z0-9_-:``), which ``reverse`` leaves as they are, so
    ``before + token + after == reverse(name, args=[token])`` — one ``reverse`` per process
    instead of one per link of every message."""
    before, found, after = reverse(name, args=[_PLACEHOLDER]).partition(_PLACEHOLDER)
    assert found, name
    return before, after


def _token_url(name: str, token: str) -> str:
    before, after = _route_around_token(name)
    return _absolute(f"{before}{token}{after}")


def open_pixel_url(message_id: int) -> str:
    token = signing.Signer(salt=OPEN_SALT).sign(str(message_id))
    return _token_url("activation:open", token)


def click_url(message_id: int, url: str) -> str:
    token = signing.dumps({"m": message_id, "u": url}, salt=CLICK_SALT, compress=True)
    return _token_url("activation:click", token)


def open_token_read(token: str) -> int:
    try:
        return int(signing.Signer(salt=OPEN_SALT).unsign(token))
    except (signing.BadSignature, ValueError) as exc:
        raise InvalidTrackingToken from exc


def click_token_read(token: str) -> ClickTarget:
    try:
        data = signing.loads(token, salt=CLICK_SALT)
        url = str(data["u"])
        if not url.startswith(("http://", "https://")):
            raise ValueError("not an http(s) URL")
        return ClickTarget(message_id=int(data["m"]), url=url)
    except (signing.BadSignature, KeyError, TypeError, ValueError) as exc:
        raise InvalidTrackingToken from exc


def links_rewrite(html: str, *, message_id: int, skip_prefixes: tuple[str, ...] = ()) -> str:
    """Route every ``<a href="http(s)://…">`` of ``html`` through the click redirect, except
    links marked ``data-no-track`` and URLs starting with one of ``skip_prefixes`` (our own
    unsubscribe/preference links), and append the open pixel."""

    def replace(match: re.Match) -> str:
        prefix, quote, url = match.groups()
        if NO_TRACK in match.group(0) or url.startswith(skip_prefixes):
            return match.group(0)
        plain = url.replace("&amp;", "&")
        return f"{prefix}{quote}{click_url(message_id, plain)}{quote}"

    rewritten = TRACKABLE_HREF.sub(replace, html)
    pixel = (
        f'<img src="{open_pixel_url(message_id)}" width="1" height="1" alt="" '
        'style="display:block;border:0;width:1px;height:1px" />'
    )
    if re.search(r"</body>", rewritten, re.IGNORECASE):
        return re.sub(r"</body>", pixel + "</body>", rewritten, count=1, flags=re.IGNORECASE)
    return rewritten + pixel


@lru_cache(maxsize=8)
def _networks(spec: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(n, strict=False) for n in spec)


def is_machine_open(*, user_agent: str, ip: str) -> bool:
    """Apple Mail Privacy Protection and security scanners fetch pixels without a human:
    flagged when the IP is in ``ACTIVATION_MACHINE_OPEN_NETWORKS`` (Apple: 17.0.0.0/8), the
    user agent is exactly one of ``ACTIVATION_MACHINE_OPEN_EXACT_USER_AGENTS`` (MPP sends a
    bare ``Mozilla/5.0``) or contains one of ``ACTIVATION_MACHINE_OPEN_USER_AGENTS``."""
    ua = (user_agent or "").strip()
    if ua in settings.ACTIVATION_MACHINE_OPEN_EXACT_USER_AGENTS:
        return True
    if any(p and p.lower() in ua.lower() for p in settings.ACTIVATION_MACHINE_OPEN_USER_AGENTS):
        return True
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(
        address in net for net in _networks(tuple(settings.ACTIVATION_MACHINE_OPEN_NETWORKS))
    )


def tracking_removed(html: str, *, message_id: int) -> str:
    """``html`` as sent, without its open pixel and with each click redirect back to its
    target — what a staff preview shows, so looking at a message records no open or click."""
    pixel = re.escape(open_pixel_url(message_id))
    html = re.sub(rf'<img src="{pixel}"[^>]*/>', "", html)
    before, after = _route_around_token("activation:click")
    redirect = re.compile(re.escape(_absolute(before)) + r"([A-Za-z0-9_:\-]+)" + re.escape(after))

    def target(match: re.Match) -> str:
        try:
            return click_token_read(match.group(1)).url.replace("&", "&amp;")
        except InvalidTrackingToken:
            return match.group(0)

    return redirect.sub(target, html)
