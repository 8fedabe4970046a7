"""CSV that opens correctly in German Excel: UTF-8 with BOM, semicolons, German dates."""

import csv
import io
from collections.abc import Iterable
from datetime import date, datetime

from core.i18n import format_date, format_datetime


def cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, date):
        return format_date(value)
    text = str(value)
    # A leading = + - @ would make Excel run a formula (CSV injection).
    if text[:1] in ("=", "+", "-", "@") and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", "."))
    except ValueError:
        return False
    return True


def csv_bytes(header: list[str], rows: Iterable[Iterable]) -> bytes:
    """Build the file: header row, then one row per item."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([cell(v) for v in row])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")
