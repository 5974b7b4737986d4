"""Public pages reached from links in messages: one-click unsubscribe (RFC 8058), double
opt-in confirmation, preference centre. No login: a signed token names the contact.

Bad tokens (forged, altered, expired) and links for contacts that no longer exist all get the
same page with status 400, so a page never tells whether an address is known.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone, translation
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from consent import services
from consent.models import ConsentChannel, ConsentSource, ErasedContact, Purpose
from consent.selectors import consent_summary
from consent.tokens import DOUBLE_OPT_IN, PREFERENCES, UNSUBSCRIBE, InvalidToken, read_token
from contacts.models import Contact

LANGUAGES = ("fr", "en")


def _language(request: HttpRequest, contact: Contact | None) -> str:
    asked = request.GET.get("lang", "")
    if asked in LANGUAGES:
        return asked
    if contact is not None and (contact.locale or "")[:2] in LANGUAGES:
        return contact.locale[:2]
    return "fr"


def _request_proof(request: HttpRequest) -> dict:
    return {
        "ip": request.META.get("REMOTE_ADDR", ""),
        "user_agent": request.META.get("HTTP_USER_AGENT", "")[:300],
    }


def _page(request, template, context, *, language, status=200) -> HttpResponse:
    with translation.override(language):
        response = render(request, template, {**context, "language": language}, status=status)
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"
    response["X-Robots-Tag"] = "noindex"
    return response


def _invalid(request) -> HttpResponse:
    return _page(
        request, "consent/invalid_link.html", {}, language=_language(request, None), status=400
    )


def _contact_for(kind: str, token: str):
    payload = read_token(kind, token)
    contact = Contact.objects.filter(pk=payload.contact_id).first()
    if contact is None or ErasedContact.objects.filter(contact=contact).exists():
        raise InvalidToken
    return payload, contact


@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """GET: confirmation page with one button. POST (RFC 8058 one-click, body
    ``List-Unsubscribe=One-Click``, or the button): withdraw, no cookie or CSRF token needed."""
    try:
        payload, contact = _contact_for(UNSUBSCRIBE, token)
        purpose = Purpose.objects.get(code=payload.purpose)
    except (InvalidToken, Purpose.DoesNotExist):
        return _invalid(request)
    language = _language(request, contact)
    context = {"purpose_name": purpose.name(language), "token": token}
    if request.method == "GET":
        return _page(request, "consent/unsubscribe_confirm.html", context, language=language)
    proof = {
        **_request_proof(request),
        "one_click": request.POST.get("List-Unsubscribe") == "One-Click",
    }
    services.consent_withdraw_if_allowed(
        contact_id=contact.pk,
        purpose=purpose,
        channel=payload.channel,
        source=ConsentSource.UNSUBSCRIBE_LINK,
        at=timezone.now(),
        proof=proof,
    )
    return _page(request, "consent/unsubscribe_done.html", context, language=language)


@require_http_methods(["GET", "POST"])
def confirm(request: HttpRequest, token: str) -> HttpResponse:
    """Double opt-in: GET shows a button (mail scanners that prefetch links confirm nothing),
    POST confirms once; a replayed or stale link confirms nothing."""
    try:
        payload, contact = _contact_for(DOUBLE_OPT_IN, token)
    except InvalidToken:
        return _invalid(request)
    language = _language(request, contact)
    purpose = Purpose.objects.filter(code=payload.purpose).first()
    context = {"purpose_name": purpose.name(language) if purpose else "", "token": token}
    if request.method == "GET":
        return _page(request, "consent/confirm.html", context, language=language)
    outcome = services.double_opt_in_confirm(
        contact_id=contact.pk,
        request_event_id=payload.request_event_id or 0,
        at=timezone.now(),
        proof=_request_proof(request),
    )
    if not outcome.confirmed:
        return _invalid(request)
    return _page(request, "consent/confirm_done.html", context, language=language)


@require_http_methods(["GET", "POST"])
def preferences(request: HttpRequest, token: str) -> HttpResponse:
    """Preference centre: one toggle per purpose × channel shown to the public."""
    try:
        _payload, contact = _contact_for(PREFERENCES, token)
    except InvalidToken:
        return _invalid(request)
    language = _language(request, contact)
    saved = False
    if request.method == "POST":
        wanted = {
            tuple(value.split(":", 1)) for value in request.POST.getlist("granted") if ":" in value
        }
        services.preference_centre_apply(
            contact=contact, wanted=wanted, at=timezone.now(), proof=_request_proof(request)
        )
        saved = True
    summary = consent_summary(contact)
    shown = set(
        Purpose.objects.filter(shown_in_preference_centre=True).values_list("code", flat=True)
    )
    rows = []
    for item in summary["purposes"]:
        if item["code"] not in shown:
            continue
        rows.append(
            {
                "code": item["code"],
                "name": item["name_fr"] if language == "fr" else item["name_en"],
                "channels": [
                    {
                        "channel": channel,
                        "label": ConsentChannel(channel).label,
                        "granted": state["granted"],
                        "pending": state["awaiting_confirmation"],
                    }
                    for channel, state in item["channels"].items()
                ],
            }
        )
    context = {"rows": rows, "saved": saved, "token": token}
    return _page(request, "consent/preferences.html", context, language=language)
