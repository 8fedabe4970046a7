"""HTTP for the read-only API, in one place: the OpenAPI document (flask-smorest), query parameters
checked strictly (an unknown or bad one is a 400 with a message, never ignored, never a 500), errors as
``application/problem+json`` (RFC 9457), ETag and ``Cache-Control``, CORS for the configured origins
(flask-cors) and the per-client limit.

flask-smorest was chosen because it serves from ordinary Flask blueprints (the rest of Fundus stays as it
is), generates the OpenAPI 3.1 document from the same marshmallow schemas that check the parameters and
shape the answers (so the contract cannot drift from the code), and is maintained with apispec and webargs.
Its error handler would turn every error page of the site into JSON, so it is not registered: the site's
handlers (``pages.views``) hand API requests to ``problem`` below.
"""

import hashlib
import json
from pathlib import Path

from flask import Response, current_app, g, request
from flask.sessions import SecureCookieSessionInterface
from flask_babel import get_locale
from flask_cors import CORS
from flask_smorest import Api as SmorestApi
from flask_smorest import Blueprint as SmorestBlueprint
from marshmallow import RAISE, ValidationError
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import HTTPException

from core.text import sentence

PREFIX = "/api/v1"
PROBLEM_TYPE = "application/problem+json"
CACHE_SECONDS = 60  # how long a browser or proxy may keep an answer without asking again


class StrictParser(FlaskParser):
    """Query parameters the endpoint does not know are an error (webargs would drop them), and every error
    in the parameters is a 400 Bad Request (webargs says 422)."""

    DEFAULT_UNKNOWN_BY_LOCATION = {"query": RAISE}
    DEFAULT_VALIDATION_STATUS = 400

    def load_querystring(self, req, schema):
        """A parameter given twice is an error too (webargs would take the first)."""
        repeated = sorted(name for name in req.args if len(req.args.getlist(name)) > 1)
        if repeated:
            raise ValidationError({name: ["Given more than once."] for name in repeated})
        return super().load_querystring(req, schema)


class Blueprint(SmorestBlueprint):
    ARGUMENTS_PARSER = StrictParser()


class Api(SmorestApi):
    DEFAULT_ERROR_RESPONSE_NAME = None  # each operation names its problems (api.views._documented)

    def _register_error_handlers(self):
        """Not flask-smorest's: it would answer every error of the whole site in JSON."""


api = Api()


def is_api_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def is_api_request() -> bool:
    return is_api_path(request.path)


EMBED_PREFIX = "/embed"


def for_other_sites(path: str) -> bool:
    """The API and the embedded programme: the same for every visitor, without session or cookie."""
    return is_api_path(path) or path == EMBED_PREFIX or path.startswith(EMBED_PREFIX + "/")


class SessionInterface(SecureCookieSessionInterface):
    """Under the API and the embedded programme the visitor's session is neither read nor written: every
    answer is the same for everyone (a staff member's cookie shows no draft) and none carries a cookie that a
    shared cache could hand to someone else. An empty session that is never saved: Flask-Login and the hooks
    see nobody."""

    def open_session(self, app, request):
        if for_other_sites(request.path):
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app, session, response) -> None:
        if for_other_sites(request.path):
            return
        super().save_session(app, session, response)


def problem(status: int, title: str, detail: str = "", errors: dict | None = None, headers=None) -> Response:
    """An RFC 9457 problem: ``type`` (``about:blank``: the status says it all), ``title``, ``status``,
    ``detail``, and for bad parameters ``errors`` (parameter → messages)."""
    body = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if errors:
        body["errors"] = errors
    response = Response(json.dumps(body, ensure_ascii=False), status=status, mimetype=PROBLEM_TYPE,
                        headers=headers)
    response.cache_control.no_store = True
    return response


def problem_for(error: HTTPException, title: str, detail: str) -> Response:
    """The problem for an HTTP error raised anywhere under the API (webargs' 400 names the parameters)."""
    messages = (getattr(error, "data", None) or {}).get("messages")
    errors = None
    if messages:  # {"query": {"name": ["message"]}} → {"name": ["message"]}
        errors = {}
        for by_name in messages.values():
            errors.update({name: [str(m) for m in (texts if isinstance(texts, list) else [texts])]
                           for name, texts in by_name.items()})
        detail = " ".join(f"{name}: {' '.join(texts)}" for name, texts in errors.items())
    headers = {key: value for key, value in error.get_headers() if key.lower() in ("retry-after", "allow")}
    return problem(error.code or 500, title, detail, errors, headers)


def conditional(version, build) -> Response:
    """An answer with an ETag made of ``version`` (what the body depends on, read cheaply) together with
    the address, its parameters, the language and ``BASE_URL``: a matching ``If-None-Match`` gets 304
    without ``build()`` being called. ``version=None``: the ETag is the body's own digest (a 304 then
    saves the transfer, not the work)."""
    if version is None:
        body = json.dumps(build(), ensure_ascii=False, separators=(",", ":"))
        etag = hashlib.sha256(f"{get_locale()}\n{body}".encode()).hexdigest()[:32]  # the body says it all
    else:
        identity = (request.path, sorted(request.args.items(multi=True)), str(get_locale()),
                    current_app.config["BASE_URL"], current_app.extensions["api_release"], version)
        etag = hashlib.sha256(repr(identity).encode()).hexdigest()[:32]
        body = None
    if request.if_none_match.contains_weak(etag):  # RFC 9110: a proxy that compresses makes it W/"…"
        response = Response(status=304)
        response.set_etag(etag)
        return response
    if body is None:
        body = json.dumps(build(), ensure_ascii=False, separators=(",", ":"))
    response = Response(body, mimetype="application/json")
    response.set_etag(etag)
    return response


def api_headers(response: Response) -> Response:
    """Every API answer: may be kept briefly by anyone (it is public and the same for everyone), or
    never where it is an error; nothing of a session."""
    if is_api_request() and response.status_code in (200, 304):
        response.cache_control.public = True
        response.cache_control.max_age = CACHE_SECONDS
        response.headers["Content-Language"] = str(get_locale())
    return response


def _release() -> str:
    """What an answer depends on besides the data: the API's code and the translations, read once per
    process, so an upgrade (a new field, a corrected label) never answers 304 with the old body."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted([*(root / "api").glob("*.py"), *(root / "translations").glob("*/LC_MESSAGES/*.mo")]):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def mark_for_other_sites() -> None:
    """Before each request: ``core.i18n.select_locale`` chooses the language of the API and the embedded
    programme by ``?lang=`` and ``Accept-Language`` only, for their errors (an unknown address) too."""
    if for_other_sites(request.path):
        g.for_other_sites = True


def init_api(app) -> None:
    app.extensions["api_release"] = _release()
    app.session_interface = SessionInterface()
    app.before_request(mark_for_other_sites)
    app.config.setdefault("API_TITLE", "Fundus")
    app.config.setdefault("API_VERSION", "1")
    app.config.setdefault("OPENAPI_VERSION", "3.1.0")
    app.config.setdefault("OPENAPI_URL_PREFIX", PREFIX)
    app.config.setdefault("OPENAPI_JSON_PATH", "openapi.json")
    app.config.setdefault("API_SPEC_OPTIONS", {
        "info": {"description": sentence("Read-only: the training programme and the materials catalogue of "
                                         f"{app.config['ORG_NAME']}.") + " Nothing personal.",
                 "license": {"name": "AGPL-3.0-or-later", "identifier": "AGPL-3.0-or-later"}},
        "servers": [{"url": app.config["BASE_URL"]}],
    })
    api.init_app(app)
    from api import views

    api.register_blueprint(views.bp)
    from api import docs, embed

    app.register_blueprint(docs.bp)
    app.register_blueprint(embed.bp)
    app.register_blueprint(embed.staff_bp)
    origins = [o for o in app.config["API_CORS_ORIGINS"].split(",") if o]  # checked by core.config
    if origins:  # none by default: no other site's script may read the answers
        CORS(app, resources={PREFIX + "/*": {"origins": origins}}, methods=["GET", "HEAD", "OPTIONS"],
             allow_headers=["If-None-Match", "Accept-Language"],
             expose_headers=["ETag", "Content-Language", "Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining",
                             "X-RateLimit-Reset"],
             max_age=86400, supports_credentials=False)
    app.after_request(api_headers)
