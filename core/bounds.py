"""Bounded input at the edge (DOMAIN rule 8): ids, page numbers, dates and text are checked before
any query runs, so hostile input gets a clear answer and never reaches the database.

- Route ids: the ``int`` converter of every route accepts 1 to 2^31 − 1 (the databases' integer);
  anything else is "not found", like an id that does not exist.
- Query arguments: ``page_number()``, ``arg_id()``, ``parse_date()``, ``parse_month()``; lists of ids
  in a form: ``form_ids()``.
- Text: a request whose parameters or form fields carry NUL or other control characters is refused
  as a whole with a message (``refuse_control_characters``); forms bound every field's length to its
  column and every number and date to a range (``materials.forms``, ``events.forms``,
  ``accounts.forms``).
"""

import re
from datetime import date, datetime

from flask import abort, request
from flask_babel import lazy_gettext as _l
from werkzeug.exceptions import BadRequest
from werkzeug.routing import IntegerConverter
from wtforms.validators import ValidationError

MAX_ID = 2**31 - 1  # the largest value of an INTEGER column on PostgreSQL
MAX_PAGE = 10_000
FIRST_DAY = date(2000, 1, 1)  # dates people may enter: this century, with room to plan
LAST_DAY = date(2099, 12, 31)
MAX_NUMBER = 1_000_000  # quantities, stock changes, thresholds
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # all C0 controls but tab, line feed, carriage return


class IdConverter(IntegerConverter):
    """``<int:…>`` in routes: a positive id that fits the database's integer, else 404."""

    def __init__(self, url_map, *args, **kwargs):
        kwargs.setdefault("min", 1)
        kwargs.setdefault("max", MAX_ID)
        super().__init__(url_map, *args, **kwargs)


def page_number() -> int:
    """The ``page`` argument as a page number: 1 to ``MAX_PAGE``, 1 for anything else."""
    raw = request.args.get("page", "")
    return min(int(raw), MAX_PAGE) if raw.isdecimal() and 0 < len(raw) <= 6 and int(raw) > 0 else 1


def arg_id(name: str) -> int | None:
    """A query argument that names a row: 1 to ``MAX_ID``, else None."""
    raw = request.args.get(name, "")
    if raw.isdecimal() and len(raw) <= 10 and 0 < int(raw) <= MAX_ID:
        return int(raw)
    return None


def form_ids(name: str) -> list[int]:
    """Every value of the posted form field ``name`` as a row id (1 to ``MAX_ID``); 400 for anything else."""
    values = request.form.getlist(name)
    if len(values) > 10_000 or not all(v.isdecimal() and len(v) <= 10 and 0 < int(v) <= MAX_ID for v in values):
        abort(400)
    return [int(v) for v in values]


def in_range(day: date | None) -> bool:
    return day is not None and FIRST_DAY <= day <= LAST_DAY


def parse_date(raw: str) -> date | None:
    """``YYYY-MM-DD`` within ``FIRST_DAY`` … ``LAST_DAY``, else None."""
    try:
        day = date.fromisoformat(raw.strip())
    except ValueError:
        return None
    return day if in_range(day) else None


def parse_month(raw: str) -> date | None:
    """``YYYY-MM`` (its first day) within the date range, else None."""
    return parse_date(raw + "-01") if len(raw.strip()) == 7 else None


class ControlCharacters(BadRequest):
    """400 Bad Request for text with control characters, with a message people understand."""

    user_message = _l("What you sent contains control characters (such as a NUL byte) that cannot be stored. "
                      "Please remove them and send it again.")


class DateInRange:
    """Form validator: a date (or date and time) from ``FIRST_DAY`` to ``LAST_DAY``."""

    def __call__(self, form, field) -> None:
        value = field.data
        day = value.date() if isinstance(value, datetime) else value
        if day is not None and not in_range(day):
            raise ValidationError(_l("Enter a date from %(first)s to %(last)s.", first=FIRST_DAY.year,
                                     last=LAST_DAY.year))


def refuse_control_characters():
    """Refuse, before any view runs, a request whose query or form values hold control characters
    (a NUL byte cannot be stored in PostgreSQL text; none belongs in a name, title or search)."""
    values = [v for _key, v in request.args.items(multi=True)] + [v for _key, v in request.form.items(multi=True)]
    values += [v for v in (request.view_args or {}).values() if isinstance(v, str)]
    if any(CONTROL.search(value) for value in values):
        raise ControlCharacters()
