"""Staff pages of the trainings feature: the trainings list, the training form, and running the day
from the participant list (attendance, sign-in sheets, certificates, messages), plus one person's data."""

import json
from datetime import datetime

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user
from sqlalchemy import select
from wtforms.fields.choices import SelectChoice

from accounts.audit_log import history
from core.bounds import form_ids
from core.confirm import Confirmation, ReasonForm, confirm_page
from core.csv_export import csv_bytes
from core.errors import action, flash_form_errors, shown_at
from core.extensions import db
from core.i18n import format_date, from_local, to_local
from core.models import utcnow
from core.security import staff_required
from core.states import seen_state
from core.text import is_email
from events import participants as participants_module
from events import personal_data, registrations, trainings
from events.errors import EventsError
from events.forms import MessageForm, OverrideForm, TrainingForm
from events.models import REGISTRATION_STATUS_LABELS, Registration, Training, TrainingFormat, TrainingSession
from events.participants import answers_of, message_participants, participant_list, set_attendance
from materials.models import Material

bp = Blueprint("trainings", __name__, url_prefix="/events/staff")


@bp.before_request
@staff_required
def staff_only():
    """Every page here is for staff."""


@bp.get("/")
def index():
    """Upcoming trainings and drafts with seats taken and the waiting list; ``?past=1`` for past ones."""
    past = request.args.get("past") == "1"
    return render_template("events/staff/index.html", rows=trainings.staff_trainings(past=past), past=past)


def training_form(data: trainings.TrainingInput | None = None) -> TrainingForm:
    """The training form; on GET filled from ``data`` (local times, one empty session row or more to add)."""
    form = TrainingForm()
    form.handouts.choices = [SelectChoice(m.id, m.title) for m in db.session.execute(
        select(Material.id, Material.title).where(Material.archived_at.is_(None)).order_by(Material.title))]
    if request.method == "GET" and data is not None:
        for key, value in data.fields.items():
            if key in ("registration_opens_at", "registration_closes_at"):
                value = to_local(value)
            elif key == "format":
                value = value.value
            elif key == "target_groups":
                value = [v for v in value.split(",") if v]
            getattr(form, key).data = value
        while len(form.sessions) < len(data.sessions) + 2:
            form.sessions.append_entry()
        for entry, (start, end) in zip(form.sessions, data.sessions, strict=False):
            entry.form.day.data = to_local(start).date()
            entry.form.starts.data = to_local(start).time()
            entry.form.ends.data = to_local(end).time()
        form.handouts.data = data.handout_ids
    return form


def form_input(form: TrainingForm) -> trainings.TrainingInput:
    fields = {key: getattr(form, key).data for key in trainings.TRAINING_FIELDS}
    for key in ("title", "description", "venue", "address", "online_link", "trainers", "free_question"):
        fields[key] = (fields[key] or "").strip()
    fields["format"] = TrainingFormat(fields["format"])
    fields["target_groups"] = ",".join(form.target_groups.data or [])
    fields["registration_opens_at"] = from_local(fields["registration_opens_at"])
    fields["registration_closes_at"] = from_local(fields["registration_closes_at"])
    sessions = [
        (from_local(datetime.combine(e.form.day.data, e.form.starts.data)),
         from_local(datetime.combine(e.form.day.data, e.form.ends.data)))
        for e in form.sessions if e.form.day.data and e.form.starts.data and e.form.ends.data
    ]
    return trainings.TrainingInput(fields, sessions, list(form.handouts.data or []))


def _edit(training: Training | None, form: TrainingForm, heading: str):
    if form.validate_on_submit():
        with shown_at(form):
            saved = trainings.save_training(training.id if training else None, form_input(form), current_user)
            flash(_("Saved."), "success")
            return redirect(url_for("trainings.participants", training_id=saved.id))
    return render_template("events/staff/form.html", form=form, training=training, heading=heading)


@bp.route("/new", methods=["GET", "POST"])
def new():
    """A new training; it starts as a draft."""
    return _edit(None, training_form(), _("New training"))


@bp.route("/<int:training_id>/edit", methods=["GET", "POST"])
def edit(training_id: int):
    """Change a training; changes of time or place are mailed to everyone holding a seat."""
    training = db.get_or_404(Training, training_id)
    return _edit(training, training_form(trainings.training_input(training)), _("Edit training"))


@bp.route("/<int:training_id>/duplicate", methods=["GET", "POST"])
def duplicate(training_id: int):
    """A new draft from an existing training, its sessions moved by whole weeks into the future."""
    training = db.get_or_404(Training, training_id)
    return _edit(None, training_form(data=trainings.duplicate_input(training)), _("Repeat training"))


def _participant_list(training_id: int) -> str:
    return url_for("trainings.participants", training_id=training_id)


def _registration_list(registration_id: int) -> str:
    return _participant_list(db.get_or_404(Registration, registration_id).training_id)


@bp.post("/<int:training_id>/publish")
@action(_participant_list)
def publish(training_id: int):
    """Publish a draft: it appears in the programme and the feeds, registration opens."""
    db.get_or_404(Training, training_id)
    trainings.publish(training_id, current_user, seen=seen_state(request.form))
    flash(_("The training is published."), "success")


def _cancel_confirmation(training: Training, form: ReasonForm) -> Confirmation:
    return Confirmation(_("Cancel the training?"), training.title, trainings.cancel_consequences(training),
                        _("Cancel the training and tell everyone"),
                        url_for("trainings.cancel", training_id=training.id), _participant_list(training.id),
                        form=form, seen=training.state)


@bp.get("/<int:training_id>/cancel")
@action(_participant_list)
def confirm_cancel(training_id: int):
    """Ask before cancelling: what will happen, how many get a mail, and the reason for the mail."""
    return confirm_page(_cancel_confirmation(db.get_or_404(Training, training_id), ReasonForm()))


@bp.post("/<int:training_id>/cancel")
@action(_participant_list)
def cancel(training_id: int):
    """Cancel the training: every registration ends and everyone registered is told, with the reason."""
    training = db.get_or_404(Training, training_id)
    form = ReasonForm()
    if form.validate_on_submit():
        with shown_at(form):
            trainings.cancel_training(training_id, current_user, form.reason.data or "", seen=seen_state(request.form))
            flash(_("The training is cancelled; everyone registered has been told."), "success")
            return None
    return confirm_page(_cancel_confirmation(training, form), 422)


@bp.get("/<int:training_id>")
def participants(training_id: int):
    """The participant list: status, organisation, answers, attendance per session, actions."""
    return _participants_page(db.get_or_404(Training, training_id), request.args.get("override") == "1")


def _participants_page(training: Training, override: bool, present: set | None = None, override_form=None):
    """The participant list; after a refused attendance form, with the boxes as they were ticked
    (``present``) and the reason as typed (``override_form``)."""
    rows = participant_list(training.id)
    return render_template("events/staff/participants.html", training=training, rows=rows,
                           override=override, override_form=override_form or OverrideForm(),
                           recordable=participants_module.recordable_sessions(training, override),
                           certifiable={r.id for r in rows if participants_module.certified_sessions(r, override)},
                           taken=sum(1 for r in rows if r.holds_seat), answers_of=answers_of,
                           unconfirmed=sum(1 for r in rows if r.unconfirmed),
                           over=bool(training.ends_at and training.ends_at < utcnow()),
                           attended=present if present is not None
                           else {(a.registration_id, a.session_id) for r in rows for a in r.attended},
                           session_days=[(s.id, format_date(s.starts_at)) for s in training.sessions],
                           history=history("training", training.id))


@bp.post("/<int:training_id>/attendance")
@action(_participant_list)
def attendance(training_id: int):
    """Save the attendance checkboxes (``present`` = "registration:session") of the sessions that have
    started; with a reason (``override_reason``) of the others too. Refused, the list comes back as
    it was ticked and typed."""
    training = db.get_or_404(Training, training_id)
    pairs = set()
    for value in request.form.getlist("present"):
        registration_id, _sep, session_id = value.partition(":")
        if not (registration_id.isdecimal() and session_id.isdecimal() and len(value) < 24):
            abort(400)
        pairs.add((int(registration_id), int(session_id)))
    form = OverrideForm()
    try:
        if not form.validate_on_submit():
            raise EventsError(" ".join(str(message) for errors in form.errors.values() for message in errors))
        count = set_attendance(training_id, pairs, current_user, form.override_reason.data or "")
    except EventsError as error:
        flash(str(error.message), "error")
        return _participants_page(training, "override_reason" in request.form, pairs, form), 422
    flash(_("Attendance saved (%(n)s marked).", n=count), "success")


@bp.get("/<int:training_id>/participants.csv")
def participants_csv(training_id: int):
    """The participant list for German Excel."""
    training = db.get_or_404(Training, training_id)
    rows = participant_list(training.id)
    header = [_("Name"), _("E-mail address"), _("Organisation"), _("Position"), _("Status"), _("Registered"),
              _("Accessibility needs"), _("Dietary needs"), training.free_question or _("Own question"),
              *[_("Session %(n)s", n=i) for i in range(1, len(training.sessions) + 1)]]
    attended = {(a.registration_id, a.session_id) for r in rows for a in r.attended}
    body = []
    for r in rows:
        answers = answers_of(r)
        body.append([r.name, r.email if not r.anonymised_at else "", r.organisation, r.position,
                     REGISTRATION_STATUS_LABELS[r.status], r.created_at,
                     answers.get("accessibility", ""), answers.get("dietary", ""), answers.get("free_answer", ""),
                     *[_("present") if (r.id, s.id) in attended else "" for s in training.sessions]])
    return Response(csv_bytes(header, body), content_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="participants-{training.id}.csv"'})


@bp.get("/sessions/<int:session_id>/sign-in-sheet")
def sign_in_sheet(session_id: int):
    """A printable sign-in sheet (Teilnehmendenliste) for one session."""
    session = db.get_or_404(TrainingSession, session_id)
    rows = sorted((r for r in participant_list(session.training_id) if r.holds_seat),
                  key=lambda r: r.name.casefold())
    return render_template("events/staff/sign_in_sheet.html", session=session, training=session.training,
                           rows=rows, number=session.training.sessions.index(session) + 1)


@bp.post("/registrations/<int:registration_id>/certificate")
@action(lambda registration_id: url_for("trainings.certificate", registration_id=registration_id),
        refused=lambda registration_id: _registration_list(registration_id))
def issue_certificate(registration_id: int):
    """Issue a certificate of attendance (recorded) for the attended sessions that have ended (with a
    reason, ``override_reason``, before they end), then show it to print."""
    db.get_or_404(Registration, registration_id)
    form = OverrideForm()
    if not form.validate_on_submit():
        flash_form_errors(form)
        return redirect(_registration_list(registration_id))
    participants_module.issue_certificate(registration_id, current_user, form.override_reason.data or "")


@bp.get("/registrations/<int:registration_id>/certificate")
def certificate(registration_id: int):
    """A printable certificate of attendance (Teilnahmebescheinigung) for the sessions attended,
    once it has been issued from the participant list."""
    registration = db.get_or_404(Registration, registration_id)
    sessions = participants_module.certificate_sessions(registration)
    if not sessions:
        abort(404)
    return render_template("events/staff/certificate.html", training=registration.training,
                           **_certificate(registration, sessions))


def _certificate(registration: Registration, sessions: list) -> dict:
    """What one certificate shows: the person, the sessions it lists and their hours."""
    return {"registration": registration, "sessions": sessions,
            "hours": sum((s.ends_at - s.starts_at).total_seconds() for s in sessions) / 3600}


@bp.get("/<int:training_id>/certificates")
def certificates(training_id: int):
    """Every issued certificate of a training on one page to print, each on its own sheet."""
    training = db.get_or_404(Training, training_id)
    issued, not_issued, ready = participants_module.certificates_of(training.id)
    return render_template("events/staff/certificates.html", training=training, not_issued=not_issued,
                           ready=ready, items=[_certificate(r, sessions) for r, sessions in issued])


@bp.post("/<int:training_id>/certificates")
@action(lambda training_id: url_for("trainings.certificates", training_id=training_id))
def issue_missing_certificates(training_id: int):
    """Issue every certificate still missing for sessions that have ended, then show them all to print."""
    db.get_or_404(Training, training_id)
    count = participants_module.issue_missing_certificates(training_id, current_user)
    flash(ngettext("%(num)s certificate issued.", "%(num)s certificates issued.", count), "success")


@bp.post("/registrations/<int:registration_id>/seat")
@action(_registration_list)
def give_seat(registration_id: int):
    """Move someone from the waiting list to a free seat."""
    db.get_or_404(Registration, registration_id)
    registrations.give_seat(registration_id, current_user)
    flash(_("The seat is given; the person is told."), "success")


@bp.get("/<int:training_id>/holds")
def holds(training_id: int):
    """Registrations whose address was never confirmed, to end them before their time (after a
    flood); this page says what will happen and asks first. Nothing is ticked to begin with."""
    training = db.get_or_404(Training, training_id)
    return render_template("events/staff/holds.html", training=training,
                           listed=registrations.unconfirmed(training.id))


@bp.post("/<int:training_id>/holds")
@action(_participant_list, refused=lambda training_id: url_for("trainings.holds", training_id=training_id))
def release_holds(training_id: int):
    """End the chosen (or all listed) unconfirmed registrations; the waiting list moves up."""
    db.get_or_404(Training, training_id)
    chosen = form_ids("listed" if request.form.get("scope") == "all" else "registration")
    if not chosen:
        raise EventsError(_("Nothing was chosen; nothing changed."))
    ended, moved = registrations.release_unconfirmed(training_id, chosen, current_user)
    if not ended:
        raise EventsError(_("Nothing changed: the chosen registrations were confirmed, cancelled or ended "
                            "meanwhile."))
    flash(_("Registrations ended: %(ended)s. Moved up from the waiting list: %(moved)s.", ended=ended,
            moved=moved), "success")


def _cancel_registration_confirmation(registration: Registration, form: ReasonForm) -> Confirmation:
    return Confirmation(_("Cancel this registration?"), f"{registration.name} · {registration.training.title}",
                        registrations.staff_cancel_consequences(registration),
                        _("Cancel the registration and tell the person"),
                        url_for("trainings.cancel_registration", registration_id=registration.id),
                        _participant_list(registration.training_id), form=form, seen=registration.state)


@bp.get("/registrations/<int:registration_id>/cancel")
@action(_registration_list)
def confirm_cancel_registration(registration_id: int):
    """Ask before cancelling someone's registration: what will happen, who gets a mail, the reason."""
    registration = db.get_or_404(Registration, registration_id)
    return confirm_page(_cancel_registration_confirmation(registration, ReasonForm()))


@bp.post("/registrations/<int:registration_id>/cancel")
@action(_registration_list)
def cancel_registration(registration_id: int):
    """Cancel a registration for the person, who is told with the reason; the waiting list moves up."""
    registration = db.get_or_404(Registration, registration_id)
    form = ReasonForm()
    if form.validate_on_submit():
        with shown_at(form):
            registrations.staff_cancel(registration_id, current_user, form.reason.data or "",
                                       seen=seen_state(request.form))
            flash(_("The registration is cancelled; the person is told."), "success")
            return None
    return confirm_page(_cancel_registration_confirmation(registration, form), 422)


@bp.route("/<int:training_id>/message", methods=["GET", "POST"])
def message(training_id: int):
    """A message to everyone holding a seat (and the waiting list if ticked)."""
    training = db.get_or_404(Training, training_id)
    try:
        participants_module.check_messageable(training)  # say so instead of offering the form in vain
    except EventsError as error:
        flash(str(error.message), "error")
        return redirect(url_for("trainings.participants", training_id=training.id))
    form = MessageForm()
    if form.validate_on_submit():
        with shown_at(form):
            count = message_participants(training.id, form.subject.data.strip(), form.body.data.strip(),
                                         current_user, include_waiting=form.include_waiting.data)
            flash(_("The message is on its way to %(n)s people.", n=count), "success")
            return redirect(url_for("trainings.participants", training_id=training.id))
    return render_template("events/staff/message.html", training=training, form=form)


@bp.get("/people")
def person():
    """Everything stored about one e-mail address, to export or delete on request."""
    email = request.args.get("email", "").strip()[:254]
    found = personal_data.person_registrations(email) if email else []
    return render_template("events/staff/person.html", email=email, registrations=found)


@bp.post("/people/export.json")
def person_export():
    """Everything stored about one address as a JSON file (the export is recorded)."""
    email = request.form.get("email", "").strip()
    if not is_email(email):
        abort(400)
    body = json.dumps(personal_data.person_export(email, current_user), ensure_ascii=False, indent=2)
    return Response(body, content_type="application/json; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="personal-data.json"'})


def _person_address() -> str:
    email = (request.form if request.method == "POST" else request.args).get("email", "").strip()
    if not is_email(email):
        abort(400)
    return email


@bp.get("/people/delete")
def confirm_person_delete():
    """Ask before erasing an address's personal data: what will happen and who gets a mail."""
    email = _person_address()
    return confirm_page(Confirmation(
        _("Delete this person’s data?"), email, personal_data.delete_consequences(email),
        _("Delete the personal data"), url_for("trainings.person_delete"), url_for("trainings.person", email=email),
        hidden={"email": email}))


@bp.post("/people/delete")
@action(lambda: url_for("trainings.person"))
def person_delete():
    """Erase an address's personal data (registrations stay, anonymised, for the figures)."""
    count = personal_data.delete_person(_person_address(), current_user)
    flash(_("The personal data of %(n)s registrations is deleted.", n=count), "success")
