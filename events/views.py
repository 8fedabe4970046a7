"""Pages for trainees: the programme, a training with its registration form, calendar feeds,
and a registration's confirm and manage links."""

import json
from urllib.parse import urlsplit

from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from accounts.services import external_url
from core.errors import form_error
from core.extensions import db
from events import services
from events.forms import RegistrationForm
from events.ical import calendar_bytes
from events.models import Training, TrainingFormat, TrainingStatus
from materials.models import TargetGroup

bp = Blueprint("events", __name__, url_prefix="/events")


@bp.get("/registrations/confirm/<token>")
def confirm(token: str):
    """The link in the confirmation mail (double opt-in)."""
    try:
        registration = services.confirm(token)
    except services.EventsError as error:
        db.session.rollback()
        return render_template("events/link_problem.html", message=error.message), 410
    return render_template("events/manage.html", registration=registration, token=None, confirmed_now=True,
                           position=services.waiting_position(registration))


@bp.get("/registrations/<token>")
def manage(token: str):
    """A registration seen through its secret manage link."""
    registration = services.by_token(token)
    if registration is None:
        abort(404)
    return render_template("events/manage.html", registration=registration, token=token, confirmed_now=False,
                           position=services.waiting_position(registration))


@bp.post("/registrations/<token>/cancel")
def cancel(token: str):
    """Cancel through the manage link; the seat goes to the first on the waiting list."""
    try:
        services.cancel(token)
    except services.EventsError as error:
        db.session.rollback()
        flash(str(error.message), "error")
    else:
        flash(_("Your registration is cancelled."), "success")
    return redirect(url_for("events.manage", token=token))


def get_public_training(training_id: int) -> Training:
    """A published or cancelled training; drafts only for staff."""
    training = db.get_or_404(Training, training_id)
    if training.status == TrainingStatus.DRAFT and not (current_user.is_authenticated and current_user.is_staff):
        abort(404)
    return training


@bp.get("/")
def programme():
    """Upcoming published trainings; filters by target group, format and month (URL parameters)."""
    group = TargetGroup._value2member_map_.get(request.args.get("target_group", ""))
    fmt = TrainingFormat._value2member_map_.get(request.args.get("format", ""))
    month = request.args.get("month", "")
    trainings = services.programme(group, fmt, month if len(month) == 7 and month[4] == "-" else "")
    return render_template("events/programme.html", trainings=trainings, group=group, fmt=fmt, month=month,
                           target_groups=list(TargetGroup), formats=list(TrainingFormat))


def registration_form(training: Training) -> RegistrationForm:
    form = RegistrationForm()
    form.free_answer.label.text = training.free_question
    return form


@bp.route("/<int:training_id>", methods=["GET", "POST"])
def detail(training_id: int):
    """A training with its sessions, seats left or the waiting list, calendar links and the registration form."""
    training = get_public_training(training_id)
    form = registration_form(training)
    if training.status == TrainingStatus.PUBLISHED and form.validate_on_submit():
        answers = {key: getattr(form, key).data.strip() for key in ("accessibility", "dietary", "free_answer")
                   if getattr(form, key).data and getattr(form, key).data.strip()}
        try:
            result = services.register(training.id, form.name.data, form.email.data, form.organisation.data or "",
                                       form.position.data or "", json.dumps(answers, ensure_ascii=False))
        except services.EventsError as error:
            form_error(form, error)
        else:
            return render_template("events/registered.html", training=training, result=result,
                                   position=services.waiting_position(result.registration))
    taken = services.seats_taken(training.id)
    return render_template("events/detail.html", training=training, seats_left=max(training.seats - taken, 0),
                           waiting=services.waiting_count(training.id), form=form)


def ics_response(trainings: list[Training], name: str):
    """The calendar with ETag and Last-Modified; a conditional request gets 304."""
    body = calendar_bytes(
        trainings, name, domain=urlsplit(external_url("pages.home")).hostname or "localhost",
        url_for_training=lambda t: external_url("events.detail", training_id=t.id),
        timezone=current_app.config["TIMEZONE"],
    )
    response = Response(body, content_type="text/calendar; charset=utf-8")
    if trainings:
        response.last_modified = max(t.updated_at for t in trainings)
    response.add_etag()
    response.cache_control.no_cache = True
    return response.make_conditional(request)


@bp.get("/<int:training_id>.ics")
def training_ics(training_id: int):
    """One training as a calendar (download or subscription)."""
    training = get_public_training(training_id)
    return ics_response([training], training.title)


@bp.get("/calendar.ics")
def calendar_ics():
    """All published (and cancelled) trainings from 30 days ago on; ``?target_group=`` filters."""
    group = TargetGroup._value2member_map_.get(request.args.get("target_group", ""))
    trainings = services.feed_trainings(group)
    name = _("Trainings – %(org)s", org=current_app.config["ORG_NAME"])
    return ics_response(trainings, name)
