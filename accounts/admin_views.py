"""Admin pages: accounts, the mail outbox, and the audit trail with its filters and CSV file."""

from flask import Response, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from accounts import audit_log
from accounts.forms import ActionForm, UserForm
from accounts.models import Role, User
from accounts.passwords import invite_user
from accounts.users import create_user, update_user
from accounts.views import bp, organisation_choices
from core.csv_export import csv_bytes
from core.errors import action, shown_at
from core.extensions import db
from core.i18n import local_today
from core.mail import OutboxMessage, OutboxStatus, retry_failed
from core.security import admin_required


@bp.get("/admin/users")
@admin_required
def users():
    """All accounts with role, organisation and last sign-in."""
    rows = db.session.scalars(
        select(User).options(selectinload(User.organisation)).order_by(User.role, User.name)
    ).all()
    return render_template("accounts/users.html", users=rows)


@bp.route("/admin/users/new", methods=["GET", "POST"])
@admin_required
def user_new():
    """Create an account; the person gets a link to set their password."""
    form = UserForm()
    form.organisation_id.choices = organisation_choices("—")
    if form.validate_on_submit():
        with shown_at(form):
            user = create_user(form.email.data, form.name.data, Role(form.role.data), current_user,
                               organisation_id=form.organisation_id.data, locale=form.locale.data)
            flash(_("Account for %(name)s created; the invitation is on its way.", name=user.name), "success")
            return redirect(url_for("accounts.users"))
    return render_template("accounts/user_form.html", form=form, user=None)


@bp.route("/admin/users/<int:user_id>/edit", methods=["GET", "POST"])
@admin_required
def user_edit(user_id: int):
    """Change an account's role, organisation, address or active state."""
    user = db.get_or_404(User, user_id)
    form = UserForm(obj=user)
    form.organisation_id.choices = organisation_choices("—")
    if form.validate_on_submit():
        with shown_at(form):
            update_user(user.id, current_user, form.email.data, form.name.data, Role(form.role.data),
                        form.organisation_id.data, form.active.data, form.locale.data)
            flash(_("Account saved."), "success")
            return redirect(url_for("accounts.users"))
    return render_template("accounts/user_form.html", form=form, user=user,
                           history=audit_log.history("user", user.id))


@bp.post("/admin/users/<int:user_id>/invite")
@admin_required
@action(lambda user_id: url_for("accounts.users"))
def user_invite(user_id: int):
    """Send a fresh link to set a password (earlier links stop working)."""
    db.get_or_404(User, user_id)
    if ActionForm().validate_on_submit():
        user = invite_user(user_id, current_user)
        flash(_("A new link has been sent to %(email)s.", email=user.email), "success")


@bp.get("/admin/outbox")
@admin_required
def outbox():
    """Mail not yet delivered, and the last mails sent."""
    waiting = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.status != OutboxStatus.SENT).order_by(OutboxMessage.id)
    ).all()
    sent = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.status == OutboxStatus.SENT)
        .order_by(OutboxMessage.sent_at.desc()).limit(30)
    ).all()
    return render_template("accounts/outbox.html", waiting=waiting, sent=sent)


@bp.post("/admin/outbox/<int:message_id>/retry")
@admin_required
@action(lambda message_id: url_for("accounts.outbox"))
def outbox_retry(message_id: int):
    """Queue a mail that gave up once more."""
    db.get_or_404(OutboxMessage, message_id)
    if ActionForm().validate_on_submit() and retry_failed(message_id, current_user):
        flash(_("The mail is queued again."), "success")


@bp.get("/admin/audit")
@admin_required
def audit():
    """The audit trail: every staff action and state change, newest first, filtered by who, what kind
    of object and period."""
    found = audit_log.AuditFilter.from_args(request.args)
    number = request.args.get("page", "1")
    number = int(number) if number.isdecimal() and 0 < len(number) < 7 else 1
    rows, more = audit_log.page(found, number)
    return render_template("accounts/audit.html", rows=rows, found=found, number=number, more=more,
                           actors=audit_log.actors(), kinds=audit_log.OBJECT_KINDS)


@bp.get("/admin/audit.csv")
@admin_required
def audit_csv():
    """The filtered audit trail as a CSV file for German Excel."""
    header, rows = audit_log.csv_table(audit_log.AuditFilter.from_args(request.args))
    filename = f"fundus-audit-{local_today().isoformat()}.csv"
    return Response(csv_bytes(header, rows), content_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
