"""Language choice and German-style date formatting."""

from datetime import UTC, date, datetime
from functools import cache
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_datetime as babel_format_datetime
from flask import current_app, has_request_context, request
from flask_login import current_user

LANG_COOKIE = "lang"
LANG_COOKIE_MAX_AGE = 365 * 24 * 3600


def select_locale() -> Locale:
    """The language the visitor chose (cookie), else their account's, else German."""
    languages = current_app.config["LANGUAGES"]
    if not has_request_context():  # command line: the default language
        return _locale(current_app.config["BABEL_DEFAULT_LOCALE"])
    choice = request.cookies.get(LANG_COOKIE)
    if choice in languages:
        return _locale(choice)
    if current_user and current_user.is_authenticated and current_user.locale in languages:
        return _locale(current_user.locale)
    return _locale(current_app.config["BABEL_DEFAULT_LOCALE"])


@cache
def _locale(code: str) -> Locale:
    """Parsed once per process: Flask-Babel would parse the code again on every request."""
    return Locale.parse(code)


def local_tz() -> ZoneInfo:
    return ZoneInfo(current_app.config["TIMEZONE"])


def format_datetime(value: datetime | None) -> str:
    """``25.11.2026, 14:30`` in the site's time zone, whatever the language."""
    if value is None:
        return ""
    return babel_format_datetime(value, "dd.MM.yyyy, HH:mm", tzinfo=local_tz(), locale="de")


def format_session(session) -> str:
    """A session's time span: ``11.11.2026, 09:00–16:00``, or both ends in full when it spans days."""
    start, end = session.starts_at.astimezone(local_tz()), session.ends_at.astimezone(local_tz())
    if start.date() == end.date():
        return f"{format_datetime(start)}–{end:%H:%M}"
    return f"{format_datetime(start)} – {format_datetime(end)}"


def format_date(value: date | datetime | None) -> str:
    """``25.11.2026``; datetimes are first moved into the site's time zone."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.astimezone(local_tz())
    return value.strftime("%d.%m.%Y")


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
        return request.full_path.rstrip("?")
    referrer = urlsplit(request.referrer or "")
    if referrer.netloc == request.host and referrer.path.startswith("/"):
        return referrer.path + (f"?{referrer.query}" if referrer.query else "")
    return "/"


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
