"""The period a page of figures covers: a calendar year (the default), a quarter, a month or any range
of days, and the period of the same length just before it."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from flask_babel import lazy_gettext as _l

from core.bounds import FIRST_DAY, LAST_DAY, parse_date
from core.i18n import format_date, format_month, local_tz

KINDS = ("year", "quarter", "month", "range")
MAX_DAYS = 366 * 10  # a range of at most ten years: every figure is still a handful of queries


@dataclass(frozen=True)
class Period:
    kind: str  # year, quarter, month or range
    start: date
    end: date  # the last day, included

    @classmethod
    def from_args(cls, args, today: date) -> tuple["Period", list]:
        """The period the URL asks for, bounded; what cannot be read falls back to this year (or this
        quarter or month of the year asked for), with a message. ``kind=year&year=2026``,
        ``kind=quarter&year=2026&quarter=2``, ``kind=month&year=2026&month=3``, ``kind=range&from=…&to=…``."""
        errors = []
        kind = args.get("kind", "year")
        if kind not in KINDS:
            kind = "year"
        if kind == "range":
            start, end = parse_date(args.get("from", "")), parse_date(args.get("to", ""))
            if start is not None and end is not None and start <= end and (end - start).days < MAX_DAYS:
                return cls("range", start, end), errors
            errors.append(_l("Choose a first and a last day (YYYY-MM-DD) from %(first)s to %(last)s, at most "
                             "ten years apart.", first=FIRST_DAY.year, last=LAST_DAY.year))
            return cls("year", date(today.year, 1, 1), date(today.year, 12, 31)), errors
        year = _number(args.get("year", ""), today.year, FIRST_DAY.year, LAST_DAY.year)
        if year is None:
            errors.append(_l("Choose a year from %(first)s to %(last)s.", first=FIRST_DAY.year, last=LAST_DAY.year))
            year = today.year
        if kind == "quarter":
            number = _number(args.get("quarter", ""), (today.month - 1) // 3 + 1, 1, 4)
            if number is None:
                errors.append(_l("Choose a quarter from 1 to 4."))
                number = 1
            return cls("quarter", date(year, 3 * number - 2, 1), _month_end(date(year, 3 * number, 1))), errors
        if kind == "month":
            number = _number(args.get("month", ""), today.month, 1, 12)
            if number is None:
                errors.append(_l("Choose a month from 1 to 12."))
                number = 1
            start = date(year, number, 1)
            return cls("month", start, _month_end(start)), errors
        return cls("year", date(year, 1, 1), date(year, 12, 31)), errors

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> "Period":
        """The period of the same length just before: the year, quarter or month before, or as many days."""
        if self.kind == "year":
            return Period("year", date(self.start.year - 1, 1, 1), date(self.start.year - 1, 12, 31))
        if self.kind in ("quarter", "month"):
            months = 3 if self.kind == "quarter" else 1
            first = _add_months(self.start, -months)
            return Period(self.kind, first, self.start - timedelta(days=1))
        return Period("range", self.start - timedelta(days=self.days), self.start - timedelta(days=1))

    def bounds(self) -> tuple[datetime, datetime]:
        """The period as UTC instants: from its first midnight in the site's zone to the midnight after
        its last day (excluded)."""
        zone = local_tz()
        return (datetime.combine(self.start, time(), zone).astimezone(UTC),
                datetime.combine(self.end + timedelta(days=1), time(), zone).astimezone(UTC))

    @property
    def label(self) -> str:
        if self.kind == "year":
            return str(self.start.year)
        if self.kind == "quarter":
            return str(_l("Quarter %(n)s/%(year)s", n=(self.start.month - 1) // 3 + 1, year=self.start.year))
        if self.kind == "month":
            return format_month(self.start)
        return f"{format_date(self.start)} – {format_date(self.end)}"

    def args(self) -> dict:
        """URL parameters that ask for this period again."""
        if self.kind == "year":
            return {"kind": "year", "year": self.start.year}
        if self.kind == "quarter":
            return {"kind": "quarter", "year": self.start.year, "quarter": (self.start.month - 1) // 3 + 1}
        if self.kind == "month":
            return {"kind": "month", "year": self.start.year, "month": self.start.month}
        return {"kind": "range", "from": self.start.isoformat(), "to": self.end.isoformat()}


def _month_end(first: date) -> date:
    return _add_months(first, 1) - timedelta(days=1)


def _add_months(first: date, months: int) -> date:
    index = first.year * 12 + first.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _number(raw: str, default: int, lowest: int, highest: int) -> int | None:
    """A whole number from the URL within its bounds; ``default`` when none is given, None when it cannot be
    read or is out of bounds (digits only: no sign, no "2_026", no "²")."""
    raw = raw.strip()
    if not raw:
        return default
    if not (raw.isascii() and raw.isdecimal() and len(raw) <= 4) or not lowest <= int(raw) <= highest:
        return None
    return int(raw)

