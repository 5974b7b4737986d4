"""JSON input of the API and of the admin's JSON endpoints: malformed or absurdly nested JSON is
a 400 with a message, never a 500 (a RecursionError in the decoder or in a view walking it).

``BoundedDepthJSONParser`` is DRF's default JSON parser (``DEFAULT_PARSER_CLASSES``);
``json_loads_bounded`` is the same rule for views that read ``request.body`` themselves.
"""

from __future__ import annotations

import json
from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

# Far deeper than any legitimate payload (a rule tree is bounded at 40 levels), far below
# Python's recursion limit, so nothing downstream can recurse out of stack.
MAX_JSON_NESTING = 64


class JSONTooDeep(ValueError):
    pass


def json_nesting_check(value: Any, *, limit: int = MAX_JSON_NESTING) -> Any:
    """Return ``value`` unchanged, or raise ``JSONTooDeep`` if its lists/objects nest deeper
    than ``limit`` (iterative: any input).

    Walked one level at a time, keeping only the containers of each level: a bulk body of
    1,000 flat items costs a few thousand type checks, not a stack entry per value."""
    level = [value] if isinstance(value, dict | list) else []
    depth = 1
    while level:
        if depth > limit:
            raise JSONTooDeep(_("JSON nested more than %(n)d levels deep.") % {"n": limit})
        level = [
            child
            for node in level
            for child in (node.values() if isinstance(node, dict) else node)
            if isinstance(child, dict | list)
        ]
        depth += 1
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(_("%(name)s is not valid JSON.") % {"name": name})


def json_loads_bounded(text: str | bytes) -> Any:
    """``json.loads`` that raises ``ValueError`` (with a readable message) for malformed JSON,
    NaN/Infinity tokens, bad UTF-8 and nesting beyond ``MAX_JSON_NESTING``."""
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise JSONTooDeep(
            _("JSON nested more than %(n)d levels deep.") % {"n": MAX_JSON_NESTING}
        ) from None
    except UnicodeDecodeError as exc:
        raise ValueError(_("The body is not valid UTF-8 (%(error)s).") % {"error": exc}) from None
    return json_nesting_check(value)


class BoundedDepthJSONParser(JSONParser):
    """DRF's JSON parser with ``json_loads_bounded``'s rules: a 400 ``ParseError`` instead of
    a 500 for JSON nested too deeply."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(
                _("JSON parse error - nested more than %(n)d levels deep.")
                % {"n": MAX_JSON_NESTING}
            ) from None
        try:
            return json_nesting_check(data)
        except JSONTooDeep as exc:
            raise ParseError(_("JSON parse error - %(error)s") % {"error": exc}) from None
