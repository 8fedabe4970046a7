"""Pages for trainees: the programme, a training with its registration form, calendar feeds,
and a registration's confirm and manage links."""

import hashlib
import json

from flask import Blueprint, Response, current_app, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from core.after_response import after_response
from core.bounds import page_number, parse_month
from core.errors import action, shown_at
from core.extensions import db, limiter
from core.i18n import local_today
from core.limits import per_address, per_client
from core.pagecache import kept_whole
from core.vocabulary import TargetGroup
from events import feeds, links, notifications, personal_data, seats, trainings
from events.access import key_by_link, registration_by_link, training_for
from events.errors import EventsError
from events.forms import EmailForm, RegistrationForm
from events.models import ACTIVE, Training, TrainingFormat
from events.registrations import (
    cancel_registration,
    confirm_registration,
    programme_entries,
    register,
    registration_state,
)

bp = Blueprint("events", __name__, url_prefix="/events")
my_bp = Blueprint("my", __name__, url_prefix="/my")

PROGRAMME_PAGE = 20  # trainings a page, programme and archive


def _link_problem(message, training: Training | None = None):
    """410 Gone with what happened, and the way back to the training's form where there is one."""
    return render_template("events/link_problem.html", message=message, training=training), 410


@bp.route("/registrations/confirm/<token>", methods=["GET", "POST"])
def confirm(token: str):
    """The link in the confirmation mail (double opt-in) opens a page; the button on it confirms.
    Mail scanners open every link, so opening it changes nothing (DOMAIN rule 12)."""
    registration = links.by_token(token, confirm=True)
    if registration is None:
        return _link_problem(_l("This link is invalid."))
    if request.method == "POST":
        try:
            confirm_registration(token)
        except EventsError as error:
            return _link_problem(error.message, registration.training)
        return redirect(url_for("events.confirm", token=token))
    if registration.confirmed_at is not None and registration.status in ACTIVE:
        return render_template("events/manage.html", registration=registration, token=None, confirmed_now=True,
                               position=seats.waiting_position(registration))
    if not registration.can("confirm"):
        return _link_problem(_l("This registration has expired or was cancelled. Please register again."),
                             registration.training)
    return render_template("events/confirm.html", registration=registration)


@bp.get("/registrations/<token>")
def manage(token: str):
    """A registration seen through its secret manage link."""
    registration = registration_by_link(token)
    return render_template("events/manage.html", registration=registration, token=token, confirmed_now=False,
                           position=seats.waiting_position(registration))


@bp.get("/archive")
@kept_whole
def archive():
    """Past trainings, newest first."""
    page = db.paginate(trainings.archive(), per_page=PROGRAMME_PAGE, error_out=False, page=page_number())
    return render_template("events/archive.html", page=page)


@bp.post("/registrations/<token>/cancel")
@action(lambda token: url_for("events.manage", token=token))
def cancel(token: str):
    """Cancel through the manage link; the seat goes to the first on the waiting list."""
    cancel_registration(token)
    flash(_("Your registration is cancelled."), "success")


def programme_filters() -> tuple:
    """The programme's filters from the URL (target group, format, month), the same for the page and
    its feed; a value that is not one of them is no filter."""
    group = TargetGroup._value2member_map_.get(request.args.get("target_group", ""))
    fmt = TrainingFormat._value2member_map_.get(request.args.get("format", ""))
    first_day = parse_month(request.args.get("month", ""))  # not a month (or out of range): no filter
    return group, fmt, first_day


@bp.get("/")
@kept_whole
def programme():
    """Upcoming published trainings with place, target groups and whether seats are free (no numbers:
    ``seats.availability``); filters by target group, format and month (URL parameters), and the feed
    of the same selection to subscribe to."""
    group, fmt, first_day = programme_filters()
    page = db.paginate(trainings.programme(group, fmt, first_day), per_page=PROGRAMME_PAGE, error_out=False,
                       page=page_number())
    # Seats as read with each training's row: one statement for the page, not one per training.
    listed = programme_entries(page.items)
    filters = {"target_group": group.value if group else None, "format": fmt.value if fmt else None,
               "month": f"{first_day:%Y-%m}" if first_day else None}
    return render_template("events/programme.html", page=page, listed=listed, group=group, fmt=fmt,
                           month=filters["month"] or "", filters=filters,
                           target_groups=list(TargetGroup), formats=list(TrainingFormat))


def registration_form(training: Training) -> RegistrationForm:
    """The form with the questions this training asks, and the consent only where health data is asked."""
    form = RegistrationForm()
    form.free_answer.label.text = training.free_question
    for name, asked in (("accessibility", training.ask_accessibility), ("dietary", training.ask_dietary),
                        ("free_answer", bool(training.free_question)),
                        ("health_consent", training.ask_accessibility or training.ask_dietary)):
        if not asked:
            delattr(form, name)
    return form


@bp.route("/<int:training_id>", methods=["GET", "POST"])
@per_client("REGISTRATION_RATE_LIMIT")
@per_address()
@kept_whole
def detail(training_id: int):
    """A training with its sessions, whether seats are free (no numbers: ``seats.availability``),
    calendar links and the registration form."""
    training = training_for(current_user, training_id)
    form = registration_form(training)
    if request.method == "POST" and form.validate_on_submit():
        answers = {key: form[key].data.strip() for key in ("accessibility", "dietary", "free_answer")
                   if key in form and form[key].data and form[key].data.strip()}
        with shown_at(form):
            result = register(training.id, form.name.data, form.email.data, form.organisation.data or "",
                              form.position.data or "", json.dumps(answers, ensure_ascii=False),
                              health_consent=form.gives_health_data())
            return render_template("events/registered.html", training=training, result=result)
    return render_template("events/detail.html", training=training, seats=seats.availability(training), form=form,
                           state=registration_state(training))


# Built calendars by ETag, per process. The ETag names the feed and everything its bytes depend on,
# so an entry can never be stale or another feed's: a change makes a new ETag and the old entry ages out.
_calendar_cache: dict[str, bytes] = {}


def ics_response(feed: tuple, version: tuple, last_modified, load, name):
    """The calendar ``feed`` (what it is and for whom: ``("public", group)``, ``("training", id)``,
    ``("personal", key id)``) with ETag and Last-Modified. ``version`` is what the feed's content
    depends on, read cheaply (a change counter, and for a personal feed the exact trainings in it);
    the ETag is a digest of the feed, its version, the language and the configured site address, so
    two different bodies never share one and a conditional request gets 304 without a calendar being
    built. ``load()`` fetches the trainings; the (lazy) ``name`` is translated only for a body."""
    identity = (feed, version, current_app.config["BASE_URL"], str(get_locale()))
    etag = hashlib.sha256(repr(identity).encode()).hexdigest()
    if request.if_none_match.contains(etag):
        response = Response(status=304)
    else:
        body = _calendar_cache.get(etag)
        if body is None:
            body = feeds.calendar_for(load(), str(name))
            _calendar_cache[etag] = body
            while len(_calendar_cache) > 8:  # the oldest go first (a full feed can be megabytes)
                _calendar_cache.pop(next(iter(_calendar_cache)))
        response = Response(body, content_type="text/calendar; charset=utf-8")
    response.set_etag(etag)
    if last_modified:
        response.last_modified = last_modified
    response.cache_control.no_cache = True
    return response.make_conditional(request)


@bp.get("/<int:training_id>.ics")
@kept_whole
def training_ics(training_id: int):
    """One training as a calendar (download or subscription)."""
    training = training_for(current_user, training_id)
    version = feeds.trainings_version()
    return ics_response(("training", training.id), version, version[1], lambda: [training], training.title)


@bp.get("/calendar.ics")
@kept_whole
def calendar_ics():
    """All published (and cancelled) trainings from 30 days ago on; the programme's filters
    (``?target_group=``, ``format=``, ``month=``) narrow it, so a filtered programme has its feed.
    Calendar apps poll this every few minutes: the ETag needs one row read by its key."""
    group, fmt, first_day = programme_filters()
    today = local_today()
    version = feeds.public_feed_version(today)
    feed = ("public", group.value if group else None, fmt.value if fmt else None,
            first_day.isoformat() if first_day else None)
    return ics_response(feed, version, version[1],
                        lambda: feeds.feed_trainings(feeds.feed_query(group, today, fmt, first_day)),
                        _l("Trainings – %(org)s", org=current_app.config["ORG_NAME"]))


@my_bp.route("/registrations", methods=["GET", "POST"])
@limiter.limit("10 per hour", methods=["POST"])
@per_address()
def request_link():
    """Enter an e-mail address, get a link to all its registrations and its personal calendar feed."""
    form = EmailForm()
    sent = False
    if form.validate_on_submit():
        after_response(notifications.send_my_registrations_link, form.email.data, str(get_locale()))
        sent = True
    return render_template("events/my_request.html", form=form, sent=sent)


@my_bp.get("/registrations/<token>")
def registrations(token: str):
    """Every registration of one address, with links to manage each, and the personal feed."""
    key = key_by_link(token)
    rows = personal_data.person_registrations(key.email)
    return render_template("events/my_registrations.html", key=key, token=token, rows=rows,
                           manage_token=links.manage_token, calendar_token=links.calendar_token(key))


@my_bp.post("/registrations/<token>/calendar")
@action(lambda token: url_for("my.registrations", token=token))
def new_calendar(token: str):
    """Revoke the personal calendar address and make a new one."""
    links.new_calendar_address(key_by_link(token).id)
    flash(_("Your calendar has a new address; the old one no longer works."), "success")


@my_bp.get("/calendar/<token>.ics")
def calendar(token: str):
    """The trainings one person holds a seat for, as a calendar to subscribe to."""
    key = key_by_link(token, calendar=True)
    query = feeds.personal_query(key.email)
    version = feeds.personal_feed_version(query)
    return ics_response(("personal", key.id), version, version[1], lambda: feeds.feed_trainings(query),
                        _l("My trainings – %(org)s", org=current_app.config["ORG_NAME"]))
