"""CSV files people open in a spreadsheet: one writer that defuses formulas.

A cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read as a formula
by Excel, LibreOffice and Google Sheets (CSV injection, OWASP): a contact's name or a URL
could then run ``=HYPERLINK(…)`` or worse on the analyst's machine. :func:`spreadsheet_safe`
prefixes such text with an apostrophe, which the spreadsheet shows as text; numbers are written
as they are (a negative number stays a number).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from decimal import Decimal

from django.http import HttpResponse

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value) -> object:
    """``value`` ready for a CSV cell: text that a spreadsheet would run as a formula gets a
    leading apostrophe; numbers (int, float, Decimal) and None pass unchanged."""
    if value is None or isinstance(value, (bool, int, float, Decimal)):
        return value
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_response(*, filename: str, rows: Iterable[Iterable]) -> HttpResponse:
    """A UTF-8 CSV download (with a BOM, so Excel reads accents) of ``rows``, every cell
    passed through :func:`spreadsheet_safe`."""
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.write("\ufeff")
    writer = csv.writer(response)
    for row in rows:
        writer.writerow([spreadsheet_safe(cell) for cell in row])
    return response
