"""Pages for signing in, one's own account, applications, organisations and users."""

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import func, or_, select
from sqlalchemy.orm import selectinload
from wtforms.fields.choices import SelectChoice

from accounts import errors, passwords, signin
from accounts.applications import approve_application, reject_application, submit_application
from accounts.forms import (
    ActionForm,
    ApplicationForm,
    ApproveForm,
    ChangePasswordForm,
    ContactForm,
    ForgotPasswordForm,
    LoginForm,
    OrganisationForm,
    ProfileForm,
    RejectForm,
    SetPasswordForm,
    UserForm,
)
from accounts.models import AccountApplication, ApplicationStatus, Organisation, OrganisationKind, Role, User
from accounts.organisations import save_organisation
from accounts.users import create_user, update_profile, update_user
from core.errors import form_error
from core.extensions import db, limiter
from core.i18n import set_language_cookie
from core.mail import OutboxMessage, OutboxStatus, retry_failed
from core.security import admin_required, safe_next, staff_required

bp = Blueprint("accounts", __name__)


def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


def organisation_choices(empty_label: str) -> list[SelectChoice]:
    names = db.session.execute(select(Organisation.id, Organisation.name).order_by(Organisation.name))
    return [SelectChoice(0, empty_label)] + [SelectChoice(row.id, row.name) for row in names]


def get_organisation_for(user: User, organisation_id: int) -> Organisation:
    """The organisation if ``user`` may see it: staff any, a partner only their own."""
    org = db.get_or_404(Organisation, organisation_id)
    if not user.is_staff and user.organisation_id != org.id:
        abort(403)
    return org


# Sign-in, sign-out, passwords -------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def login():
    """Sign in with e-mail address and password."""
    if current_user.is_authenticated:
        return redirect(safe_next(url_for("accounts.account")))
    form = LoginForm()
    if form.validate_on_submit():
        try:
            user = signin.authenticate(form.email.data, form.password.data)
        except errors.AccountError as error:
            form_error(form, error)
        else:
            login_user(user, remember=form.remember.data)
            flash(_("Welcome, %(name)s.", name=user.name), "success")
            return redirect(safe_next(url_for("pages.home")))
    return render_template("accounts/login.html", form=form)


@bp.post("/logout")
def logout():
    """Sign out (a POST with CSRF token, so no other site can sign you out)."""
    if ActionForm().validate_on_submit():
        logout_user()
        flash(_("You are signed out."), "success")
    return redirect(url_for("pages.home"))


@bp.route("/password/forgot", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def forgot_password():
    """Ask for a password-reset link by e-mail."""
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        passwords.request_password_reset(form.email.data)
        flash(
            _("If an account exists for this address, we have sent a link to it. It is valid for %(hours)s hours.",
              hours=current_app.config["PASSWORD_RESET_HOURS"]),
            "success",
        )
        return redirect(url_for("accounts.login"))
    return render_template("accounts/forgot_password.html", form=form)


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def reset_password(token: str):
    """Choose a new (or first) password through a single-use link."""
    row = passwords.valid_token(token)
    if row is None:
        return render_template("accounts/token_invalid.html"), 410
    form = SetPasswordForm()
    if form.validate_on_submit():
        try:
            user = passwords.reset_password(token, form.password.data)
        except errors.AccountError as error:
            form_error(form, error)
        else:
            logout_user()
            login_user(user)
            flash(_("Your password is saved. You are signed in."), "success")
            return redirect(url_for("accounts.account"))
    return render_template("accounts/reset_password.html", form=form, user=row.user)


# One's own account ------------------------------------------------------------------


@bp.route("/account", methods=["GET", "POST"])
@login_required
def account():
    """See and edit one's own name and language."""
    form = ProfileForm(obj=current_user)
    if form.validate_on_submit():
        update_profile(current_user, form.name.data, form.locale.data)
        flash(_("Your details are saved."), "success")
        return set_language_cookie(redirect(url_for("accounts.account")), form.locale.data)
    return render_template("accounts/account.html", form=form)


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def change_password():
    """Change one's password; every other session of the account is signed out."""
    form = ChangePasswordForm()
    if form.validate_on_submit():
        try:
            passwords.change_password(current_user, form.current_password.data, form.password.data)
        except errors.AccountError as error:
            form_error(form, error)
        else:
            login_user(current_user._get_current_object())  # renew with the new session version
            flash(_("Your password is changed."), "success")
            return redirect(url_for("accounts.account"))
    return render_template("accounts/change_password.html", form=form)


@bp.route("/apply", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def apply():
    """Apply for a partner account (contact persons of partner organisations)."""
    form = ApplicationForm()
    form.organisation_id.choices = organisation_choices(_("— my organisation is not listed —"))
    if form.validate_on_submit():
        try:
            submit_application(
                name=form.name.data,
                email=form.email.data,
                organisation_id=form.organisation_id.data,
                organisation_name=form.organisation_name.data or "",
                position=form.position.data or "",
                phone=form.phone.data or "",
                message=form.message.data or "",
            )
        except errors.AccountError as error:
            form_error(form, error)
        else:
            return render_template("accounts/apply_done.html")
    return render_template("accounts/apply.html", form=form)


@bp.get("/organisation")
@login_required
def my_organisation():
    """A partner's own organisation and its contact persons."""
    if current_user.organisation_id is None:
        abort(404)
    return redirect(url_for("accounts.organisation_detail", organisation_id=current_user.organisation_id))


# Staff: organisations ----------------------------------------------------------------


@bp.get("/staff/organisations")
@staff_required
def organisations():
    """All partner organisations, searchable by name and city, filterable by kind."""
    q = request.args.get("q", "").strip()
    kind = request.args.get("kind", "")
    query = select(Organisation).order_by(Organisation.name)
    if q:
        pattern = f"%{q.lower()}%"
        query = query.where(
            or_(func.lower(Organisation.name).like(pattern), func.lower(Organisation.city).like(pattern))
        )
    if kind in {k.value for k in OrganisationKind}:
        query = query.where(Organisation.kind == OrganisationKind(kind))
    page = db.paginate(query, per_page=50, error_out=False)
    counts = dict(
        db.session.execute(
            select(User.organisation_id, func.count()).where(User.organisation_id.is_not(None)).group_by(User.organisation_id)
        ).all()
    )
    return render_template(
        "accounts/organisations.html", page=page, q=q, kind=kind, kinds=list(OrganisationKind), counts=counts
    )


@bp.route("/staff/organisations/new", methods=["GET", "POST"])
@staff_required
def organisation_new():
    """Create a partner organisation."""
    form = OrganisationForm()
    if form.validate_on_submit():
        try:
            org = save_organisation(None, **_organisation_fields(form))
        except errors.AccountError as error:
            form_error(form, error)
        else:
            flash(_("Organisation “%(name)s” created.", name=org.name), "success")
            return redirect(url_for("accounts.organisation_detail", organisation_id=org.id))
    return render_template("accounts/organisation_form.html", form=form, org=None)


@bp.route("/staff/organisations/<int:organisation_id>/edit", methods=["GET", "POST"])
@staff_required
def organisation_edit(organisation_id: int):
    """Edit a partner organisation."""
    org = db.get_or_404(Organisation, organisation_id)
    form = OrganisationForm(obj=org)
    if form.validate_on_submit():
        try:
            save_organisation(org, **_organisation_fields(form))
        except errors.AccountError as error:
            form_error(form, error)
        else:
            flash(_("Organisation saved."), "success")
            return redirect(url_for("accounts.organisation_detail", organisation_id=org.id))
    return render_template("accounts/organisation_form.html", form=form, org=org)


def _organisation_fields(form: OrganisationForm) -> dict:
    fields = {name: getattr(form, name).data or "" for name in
              ("name", "street", "postcode", "city", "phone", "email", "notes")}
    fields["kind"] = OrganisationKind(form.kind.data)
    return fields


@bp.route("/organisations/<int:organisation_id>", methods=["GET", "POST"])
@login_required
def organisation_detail(organisation_id: int):
    """An organisation with its contacts; staff can add a contact here."""
    org = get_organisation_for(current_user, organisation_id)
    form = ContactForm() if current_user.is_staff else None
    if form is not None and form.validate_on_submit():
        try:
            user = create_user(
                form.email.data, form.name.data, Role.PARTNER, organisation_id=org.id,
                locale=form.locale.data,
            )
            db.session.commit()
        except errors.AccountError as error:
            form_error(form, error)
        else:
            flash(_("%(name)s added; the invitation is on its way.", name=user.name), "success")
            return redirect(url_for("accounts.organisation_detail", organisation_id=org.id))
    if request.method == "POST" and form is None:
        abort(403)
    return render_template("accounts/organisation_detail.html", org=org, form=form)


# Staff: account applications ----------------------------------------------------------


@bp.get("/staff/applications")
@staff_required
def applications():
    """Applications for partner accounts: open ones first, then the last decided."""
    pending = db.session.scalars(
        select(AccountApplication)
        .where(AccountApplication.status == ApplicationStatus.PENDING)
        .options(selectinload(AccountApplication.organisation))
        .order_by(AccountApplication.created_at)
    ).all()
    decided = db.session.scalars(
        select(AccountApplication)
        .where(AccountApplication.status != ApplicationStatus.PENDING)
        .options(selectinload(AccountApplication.organisation), selectinload(AccountApplication.decided_by))
        .order_by(AccountApplication.decided_at.desc())
        .limit(50)
    ).all()
    return render_template("accounts/applications.html", pending=pending, decided=decided)


@bp.get("/staff/applications/<int:application_id>")
@staff_required
def application_detail(application_id: int):
    """One application with the forms to approve or reject it."""
    application = db.get_or_404(AccountApplication, application_id)
    approve_form = ApproveForm(organisation_id=application.organisation_id or 0)
    approve_form.organisation_id.choices = organisation_choices(_("— create a new organisation —"))
    return render_template(
        "accounts/application_detail.html", application=application,
        approve_form=approve_form, reject_form=RejectForm(),
    )


@bp.post("/staff/applications/<int:application_id>/approve")
@staff_required
def application_approve(application_id: int):
    """Approve: create the partner account and send the set-password link."""
    db.get_or_404(AccountApplication, application_id)
    form = ApproveForm()
    form.organisation_id.choices = organisation_choices("")
    if form.validate_on_submit():
        try:
            user = approve_application(
                application_id, current_user, form.organisation_id.data,
                OrganisationKind(form.new_kind.data),
            )
        except errors.AccountError as error:
            db.session.rollback()
            flash(str(error.message), "error")
        else:
            flash(_("Approved. %(name)s gets an e-mail with a link to set a password.", name=user.name), "success")
            return redirect(url_for("accounts.applications"))
    else:
        flash(_("Please check the form."), "error")
    return redirect(url_for("accounts.application_detail", application_id=application_id))


@bp.post("/staff/applications/<int:application_id>/reject")
@staff_required
def application_reject(application_id: int):
    """Reject an application; the applicant is told."""
    db.get_or_404(AccountApplication, application_id)
    form = RejectForm()
    if form.validate_on_submit():
        try:
            reject_application(application_id, current_user, form.reason.data or "")
        except errors.AccountError as error:
            flash(str(error.message), "error")
        else:
            flash(_("Application rejected; the applicant is told."), "success")
            return redirect(url_for("accounts.applications"))
    else:
        flash(_("Please check the form."), "error")
    return redirect(url_for("accounts.application_detail", application_id=application_id))


# Admin: users and outbox ---------------------------------------------------------------


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
        try:
            user = create_user(
                form.email.data, form.name.data, Role(form.role.data),
                organisation_id=form.organisation_id.data, locale=form.locale.data,
            )
            db.session.commit()
        except errors.AccountError as error:
            form_error(form, error)
        else:
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
        try:
            update_user(
                user, current_user, form.email.data, form.name.data, Role(form.role.data),
                form.organisation_id.data, form.active.data, form.locale.data,
            )
        except errors.AccountError as error:
            form_error(form, error)
        else:
            flash(_("Account saved."), "success")
            return redirect(url_for("accounts.users"))
    return render_template("accounts/user_form.html", form=form, user=user)


@bp.post("/admin/users/<int:user_id>/invite")
@admin_required
def user_invite(user_id: int):
    """Send a fresh link to set a password (earlier links stop working)."""
    user = db.get_or_404(User, user_id)
    if ActionForm().validate_on_submit():
        passwords.send_set_password_link(user)
        db.session.commit()
        flash(_("A new link has been sent to %(email)s.", email=user.email), "success")
    return redirect(url_for("accounts.users"))


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
def outbox_retry(message_id: int):
    """Queue a mail that gave up once more."""
    db.get_or_404(OutboxMessage, message_id)
    if ActionForm().validate_on_submit() and retry_failed(message_id):
        flash(_("The mail is queued again."), "success")
    return redirect(url_for("accounts.outbox"))
