"""CSV that opens correctly in German Excel and LibreOffice: UTF-8 with BOM, semicolons, dates and
numbers they read as such, and no cell they would run as a formula.

Every cell, the header's included, goes through ``cell``:

- Formula injection (OWASP, "CSV Injection"): a text that begins with ``=``, ``+``, ``-``, ``@``, a
  tab or a carriage return gets a leading apostrophe, so the spreadsheet shows it as text. A plain
  number such as ``-3`` stays a number. (defusedcsv does the same for ``= + - @`` but leaves tab and
  carriage return alone and rewrites ``|`` inside the text, so it is not used.)
- Date-times are written ``01.12.2026 00:24`` in the site's time zone: LibreOffice (de-DE) and German
  Excel take that as a date-time, while the page's ``01.12.2026, 00:24`` stays text in LibreOffice
  because of the comma. Dates are ``01.12.2026``, decimals ``7,5``; the file is for German
  spreadsheets in whichever language it was downloaded, only the header is translated.
"""

import csv
import io
import re
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal

from core.i18n import local_tz

# What a spreadsheet would start a formula (or a DDE call) with; OWASP adds tab and carriage return,
# which some spreadsheets trim away before they look at the first character.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?\d+(?:[.,]\d+)?")


def cell(value) -> str:
    """One cell as text a spreadsheet reads as the value, never as a formula."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, datetime):
        return value.astimezone(local_tz()).strftime("%d.%m.%Y %H:%M")
    if isinstance(value, date):
        return value.strftime("%d.%m.%Y")
    if isinstance(value, float | Decimal):
        return str(value).replace(".", ",")
    text = str(value)
    if text.startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def csv_bytes(header: Iterable, rows: Iterable[Iterable]) -> bytes:
    """Build the file: header row, then one row per item; every cell through ``cell``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow([cell(v) for v in header])
    for row in rows:
        writer.writerow([cell(v) for v in row])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")
