"""The confirmation page of a button on an object's own page (unfold ``actions_detail``).

A button is a link to ``<object>/<action>/``: GET shows what pressing "confirm" will do, with
numbers computed now (or why it cannot be done); only the POST of that page's form does it.
The action's ``@action(permissions=[…])`` hides the button from a person without the
permission and answers 403 to a forged GET or POST (unfold's decorator).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import formats


def count_text(value: int) -> str:
    """``12430`` as the person's language writes it (``12 430`` in French, ``12,430`` in
    English)."""
    return formats.number_format(int(value), use_l10n=True, force_grouping=True)


def object_pk(object_id) -> int | None:
    """The id of a button's URL (``<path:object_id>``) as a number; None when it is not one."""
    try:
        return int(str(object_id))
    except ValueError:
        return None


def object_or_404(model, object_id):
    """The object a button acts on, or a 404 (also for a malformed id)."""
    pk = object_pk(object_id)
    if pk is None:
        raise Http404
    return get_object_or_404(model, pk=pk)


def object_url(model_admin, obj) -> str:
    opts = model_admin.model._meta
    return reverse(
        f"{model_admin.admin_site.name}:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]
    )


def confirmed(request: HttpRequest) -> bool:
    """True for the POST of the confirmation page's "confirm" button."""
    return request.method == "POST" and request.POST.get("confirm") == "yes"


def back_to_object(model_admin, obj) -> HttpResponseRedirect:
    return HttpResponseRedirect(object_url(model_admin, obj))


def confirmation_page(
    model_admin,
    request: HttpRequest,
    obj,
    *,
    title: str,
    effects: Iterable[str] = (),
    refusals: Iterable[str] = (),
    confirm_label: str,
    danger: bool = False,
    details: Iterable[tuple[str, str]] = (),
) -> HttpResponse:
    """The page stating ``effects`` (one sentence each) before the person confirms; with
    ``refusals`` (why it cannot be done now) it has no confirm button. ``details``: a table of
    (label, value) rows under the sentences (counts per reason…)."""
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "original": obj,
        "title": title,
        "effects": list(effects),
        "refusals": list(refusals),
        "details": list(details),
        "confirm_label": confirm_label,
        "danger": danger,
        "back_url": object_url(model_admin, obj),
    }
    return TemplateResponse(request, "admin/cible/confirm_action.html", context)
