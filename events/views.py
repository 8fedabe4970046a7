"""Pages for trainees: confirm a registration and manage it through the secret link."""

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _

from core.extensions import db
from events import services

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
