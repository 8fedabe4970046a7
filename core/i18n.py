"""Language choice, and every date, time and number a person reads, in their language.

Pages and mails format through the functions here (the template filters ``datetime``, ``date``,
``session``, ``month`` and ``decimal`` are these functions): the patterns come from the locale's
CLDR data, so German reads ``25.11.2026, 14:30`` and ``7,0`` and English ``Nov 25, 2026, 2:30 PM``
and ``7.0``. A mail is rendered inside ``force_locale(recipient's language)``, so it follows the
recipient, not whoever caused it. Files for spreadsheets have their own fixed format
(``core.csv_export``); stored text (audit details) uses ISO dates, the same in every language.
"""

from datetime import UTC, date, datetime
from functools import cache
from urllib.parse import parse_qsl, urlencode, urlsplit
from zoneinfo import ZoneInfo

from babel import Locale
from babel import dates as babel_dates
from babel import numbers as babel_numbers
from flask import current_app, g, has_request_context, request
from flask_babel import get_locale
from flask_login import current_user

from core.security import may_be_signed_in

LANG_COOKIE = "lang"
LANG_COOKIE_MAX_AGE = 365 * 24 * 3600


def select_locale() -> Locale:
    """The language of a link's ``?lang=`` (this page only: the embedded programme's links carry it), else
    the one the visitor chose (cookie), else their account's, else the one their browser prefers of ours
    (``Accept-Language``), else German."""
    languages = current_app.config["LANGUAGES"]
    default = current_app.config["BABEL_DEFAULT_LOCALE"]
    if not has_request_context():  # command line: the default language
        return _locale(default)
    if g.get("for_other_sites"):  # API and embed, alike for everyone: ?lang=, else Accept-Language (api.http)
        choice = request.args.get("lang")
        if choice in languages:
            return _locale(choice)
        g.language_from_browser = True
        return _locale(browser_language(request.accept_languages, languages, default))
    choice = request.args.get("lang") or request.cookies.get(LANG_COOKIE)  # ?lang=: this page only (a link
    if choice in languages:                                                  # from the embed), nothing kept
        return _locale(choice)
    if may_be_signed_in() and current_user.is_authenticated and current_user.locale in languages:
        return _locale(current_user.locale)
    g.language_from_browser = True  # the answer depends on the header (``vary_on_language``)
    return _locale(browser_language(request.accept_languages, languages, default))


def browser_language(accepted, languages, default: str) -> str:
    """The first of ``languages`` the browser names, by quality, any region counting for its language:
    ``de-CH, en;q=0.9`` is German. (Werkzeug's ``best_match`` prefers an exact ``en`` to a regional
    ``de-CH`` and would answer English.)"""
    for value, _quality in accepted:  # already sorted by quality, highest first
        language = value.split("-")[0].split("_")[0].lower()
        if language in languages:
            return language
    return default


def vary_on_language(response):
    """A page whose language came from ``Accept-Language`` says so, so that no cache hands the German
    page to an English browser; the cookie can change the choice too."""
    if g.get("language_from_browser"):
        response.vary.update(("Accept-Language", "Cookie"))
    return response


@cache
def _locale(code: str) -> Locale:
    """Parsed once per process: Flask-Babel would parse the code again on every request."""
    return Locale.parse(code)


def current_locale() -> Locale:
    """The language of this page or mail (``force_locale`` inside a mail), German on the command line."""
    return get_locale() or _locale(current_app.config["BABEL_DEFAULT_LOCALE"])


# Dates, times and numbers in English follow British usage (25 Nov 2026, 14:30): a 24-hour clock and
# the day before the month, as English readers in Germany expect, where US English would write
# "Nov 25, 2026, 2:30 PM". The texts stay plain English (``translations/en``).
FORMAT_LOCALES = {"en": "en_GB"}


def format_locale() -> Locale:
    """The locale whose CLDR patterns write dates, times and numbers for this page or mail."""
    language = str(current_locale())
    return _locale(FORMAT_LOCALES.get(language, language))


def local_tz() -> ZoneInfo:
    return ZoneInfo(current_app.config["TIMEZONE"])


def format_datetime(value: datetime | None) -> str:
    """``25.11.2026, 14:30`` (German) or ``25 Nov 2026, 14:30`` (English), in the site's time zone."""
    if value is None:
        return ""
    locale = format_locale()
    local = value.astimezone(local_tz())
    return locale.datetime_formats["medium"].format(_time(local, locale), _date(local, locale))


def format_session(session) -> str:
    """A session's time span: ``11.11.2026, 09:00–16:00``, or both ends in full when it spans days."""
    start, end = session.starts_at.astimezone(local_tz()), session.ends_at.astimezone(local_tz())
    if start.date() == end.date():
        return f"{format_datetime(start)}–{_time(end, format_locale())}"
    return f"{format_datetime(start)} – {format_datetime(end)}"


def format_date(value: date | datetime | None) -> str:
    """``25.11.2026`` or ``25 Nov 2026``; datetimes are first moved into the site's time zone."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.astimezone(local_tz())
    return _date(value, format_locale())


def format_month(value: date) -> str:
    """``November 2026`` (a month of the availability calendar)."""
    return babel_dates.format_skeleton("yMMMM", value, locale=format_locale())


def format_decimal(value: float, places: int = 1) -> str:
    """``7,0`` or ``7.0``: a number with ``places`` decimals in the reader's notation."""
    pattern = "#,##0" + ("." + "0" * places if places else "")
    return babel_numbers.format_decimal(value, pattern, locale=format_locale())


def format_number(value: float) -> str:
    """A count as ``1.234``, a measure with one decimal as ``12,5`` (in the reader's notation)."""
    return format_decimal(value, 0 if float(value).is_integer() else 1)


def _date(value: date, locale: Locale) -> str:
    return babel_dates.format_date(value, "medium", locale=locale)


def _time(value: datetime, locale: Locale) -> str:
    return babel_dates.format_time(value, "short", locale=locale)


def set_language_cookie(response, lang: str):
    """Remember the visitor's language for a year."""
    response.set_cookie(
        LANG_COOKIE,
        lang,
        max_age=LANG_COOKIE_MAX_AGE,
        samesite="Lax",
        httponly=True,
        secure=current_app.config["SESSION_COOKIE_SECURE"],
    )
    return response


def page_to_return_to() -> str:
    """Where the language switch leads back to: this page, or for the answer to a form (an error
    page after a POST, say) the page the form was on, since its address cannot be opened by GET."""
    if request.method in ("GET", "HEAD"):
        return _without_lang(request.path, request.query_string.decode())
    referrer = urlsplit(request.referrer or "")
    if referrer.netloc == request.host and referrer.path.startswith("/"):
        return _without_lang(referrer.path, referrer.query)
    return "/"


def _without_lang(path: str, query: str) -> str:
    """The address without ``lang=`` (which would outrank the language just chosen)."""
    kept = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "lang"]
    return path + (f"?{urlencode(kept)}" if kept else "")


def from_local(value: datetime | None) -> datetime | None:
    """A naive wall-clock time in the site's zone (from a form) as an aware UTC datetime."""
    if value is None:
        return None
    return value.replace(tzinfo=local_tz()).astimezone(UTC)


def to_local(value: datetime | None) -> datetime | None:
    """An aware datetime as naive wall-clock time in the site's zone (for a form)."""
    if value is None:
        return None
    return value.astimezone(local_tz()).replace(tzinfo=None)


def local_today() -> date:
    """Today's date in the site's zone (the server clock may run in UTC: after 23:00 UTC it is tomorrow in Berlin)."""
    return datetime.now(local_tz()).date()


def language_name(code: str) -> str:
    """``de`` → "Deutsch" / "German", in the page's language (the locale is parsed once per process,
    see ``core.i18n.select_locale``, and keeps its loaded data)."""
    return get_locale().languages.get(code, code)
