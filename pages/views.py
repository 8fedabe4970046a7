"""Home, imprint, privacy notice, the language switch and the error pages."""

import math

from flask import Blueprint, current_app, g, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_limiter.errors import RateLimitExceeded
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from accounts.forms import LanguageForm
from accounts.users import set_locale
from api.http import is_api_request, problem, problem_for
from core.db import RETRY_AFTER_SECONDS, note_outage, unavailable
from core.errors import DomainError
from core.extensions import db
from core.i18n import set_language_cookie
from core.privacy import PRIVACY_VERSION, storage_periods
from core.security import is_safe_next

bp = Blueprint("pages", __name__)


@bp.get("/")
def home():
    """What Fundus offers, with the next trainings and featured materials once they exist."""
    return render_template("pages/home.html")


@bp.get("/imprint")
def imprint():
    """Impressum, filled from configuration."""
    return render_template("pages/imprint.html")


@bp.get("/privacy")
def privacy():
    """Privacy notice (Datenschutzerklärung), filled from configuration: every storage period is the
    configured one the jobs use."""
    return render_template("pages/privacy.html", periods=storage_periods(current_app.config),
                           version=PRIVACY_VERSION)


@bp.post("/language")
def language():
    """Switch the language and stay on the same page; remembered by cookie and account."""
    form = LanguageForm()
    target = form.next.data if is_safe_next(form.next.data) else url_for("pages.home")
    if not form.validate_on_submit():
        return redirect(target)
    lang = form.lang.data
    if current_user.is_authenticated:
        set_locale(current_user, lang)
    return set_language_cookie(redirect(target), lang)


ERROR_TEXTS = {
    400: (lambda: _("Bad request"), lambda: _("The request could not be understood.")),
    403: (lambda: _("Access denied"), lambda: _("You may not see or change this.")),
    404: (lambda: _("Page not found"), lambda: _("There is nothing at this address.")),
    405: (lambda: _("Not allowed"), lambda: _("This page cannot be used this way.")),
    410: (lambda: _("Gone"), lambda: _("This link is no longer valid.")),
    413: (lambda: _("Too large"), lambda: _("The upload is too large: at most %(mb)s MB can be sent at once.",
                                             mb=current_app.config["MAX_CONTENT_LENGTH"] // (1024 * 1024))),
    429: (lambda: _("Too many requests"), lambda: _("Please wait a moment and try again.")),
    500: (lambda: _("Something went wrong"), lambda: _("The error has been logged. Please try again later.")),
    503: (lambda: _("Temporarily unavailable"),
          lambda: _("Fundus cannot reach its database at the moment. Please try again in a minute.")),
}


def render_error(code: int, detail: str | None = None, error: HTTPException | None = None):
    """The error page; under the API the same words as an RFC 9457 problem (``api.http``)."""
    title, text = ERROR_TEXTS.get(code) or ERROR_TEXTS[500 if code >= 500 else 400]
    if is_api_request():
        return problem_for(error, title(), detail or text()) if error is not None \
            else problem(code, title(), detail or text())
    return render_template("errors/error.html", code=code, title=title(), text=detail or text()), code


@bp.app_errorhandler(CSRFError)
def csrf_error(error):
    return render_error(
        400,
        _("The form was sent without a valid security token, perhaps because it was open too long "
          "or cookies are blocked. Please go back, reload the page and send it again."),
    )


@bp.app_errorhandler(DomainError)
def domain_error(error: DomainError):
    """A rule was broken and no view showed it at a form or on the page it came from (409 Conflict)."""
    return render_template("errors/error.html", code=409, title=_("Not possible"), text=str(error.message)), 409


@bp.app_errorhandler(HTTPException)
def http_error(error: HTTPException):
    if error.code is None or error.code < 400:
        return error
    if isinstance(error, RateLimitExceeded) and not is_api_request():  # the API's: per client only
        minutes = max(1, math.ceil(error.limit.limit.get_expiry() / 60))
        return render_error(429, _("Too many requests from here, or for this e-mail address. Please wait (at most "
                                   "%(minutes)s\u00a0min) and try again.", minutes=minutes), error)
    message = getattr(error, "user_message", None)
    return render_error(error.code, str(message) if message else None, error)


@bp.app_errorhandler(Exception)
def server_error(error: Exception):
    """500 for a fault, logged with its traceback; 503 with Retry-After while the database cannot
    be reached, logged once per outage (``core.db``)."""
    try:
        db.session.rollback()
    except Exception:  # noqa: BLE001  (the connection is gone; the session is reset anyway)
        db.session.close()
    if not unavailable(error):
        current_app.logger.exception("Unhandled error on %s", request.path)
        return render_error(500)
    note_outage(error)
    g._login_user = current_app.login_manager.anonymous_user()  # the page must not ask the database who this is
    response = make_response(render_error(503))
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
