"""Pages for signing in and out, passwords, one's own account, and the application for an account.

The staff pages (organisations, applications) are in ``accounts.staff_views``, the admins' (accounts,
outbox, audit trail) in ``accounts.admin_views``; all are routes of the one ``accounts`` blueprint.
"""

from flask import Blueprint, current_app, flash, g, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import select
from wtforms.fields.choices import SelectChoice

from accounts import passwords, sessions, signin
from accounts.applications import submit_application
from accounts.forms import (
    ActionForm,
    ApplicationForm,
    ChangePasswordForm,
    ForgotPasswordForm,
    LoginForm,
    ProfileForm,
    SetPasswordForm,
)
from accounts.models import Organisation
from accounts.users import update_profile
from core.after_response import after_response
from core.errors import shown_at
from core.extensions import db
from core.i18n import set_language_cookie
from core.limits import per_address, per_client, per_client_sign_in
from core.security import safe_next

bp = Blueprint("accounts", __name__)


def organisation_choices(empty_label: str) -> list[SelectChoice]:
    names = db.session.execute(select(Organisation.id, Organisation.name).order_by(Organisation.name))
    return [SelectChoice(0, empty_label)] + [SelectChoice(row.id, row.name) for row in names]


# Sign-in, sign-out, passwords -------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
@per_client_sign_in("LOGIN_RATE_LIMIT")
def login():
    """Sign in with e-mail address and password."""
    if current_user.is_authenticated:
        return redirect(safe_next(url_for("accounts.account")))
    form = LoginForm()
    if form.validate_on_submit():
        result = signin.authenticate(form.email.data, form.password.data)
        if result.user is None:
            flash(str(result.refused), "error")
        else:
            login_user(result.user, remember=form.remember.data)
            g.signed_in = True  # a successful sign-in does not count against the limit
            flash(_("Welcome, %(name)s.", name=result.user.name), "success")
            start = url_for("requests.overview") if result.user.is_staff else url_for("pages.home")
            return signin.remember_device(redirect(safe_next(start)), result.user)
    return render_template("accounts/login.html", form=form)


@bp.post("/logout")
def logout():
    """Sign out (a POST with CSRF token, so no other site can sign you out)."""
    if ActionForm().validate_on_submit():
        if current_user.is_authenticated:
            sessions.sign_out(current_user)  # the server forgets this sign-in: no cookie of it works any more
        logout_user()
        flash(_("You are signed out."), "success")
    return redirect(url_for("pages.home"))


@bp.route("/password/forgot", methods=["GET", "POST"])
@per_client("LOGIN_RATE_LIMIT")
@per_address()
def forgot_password():
    """Ask for a password-reset link by e-mail."""
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        after_response(passwords.request_password_reset, form.email.data)  # the same answer, at once
        flash(
            _("If an account exists for this address, we have sent a link to it. It is valid for %(hours)s hours.",
              hours=current_app.config["PASSWORD_RESET_HOURS"]),
            "success",
        )
        return redirect(url_for("accounts.login"))
    return render_template("accounts/forgot_password.html", form=form)


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
@per_client("LOGIN_RATE_LIMIT")
def reset_password(token: str):
    """Choose a new (or first) password through a single-use link."""
    row = passwords.valid_token(token)
    if row is None:
        return render_template("accounts/token_invalid.html"), 410
    form = SetPasswordForm()
    if form.validate_on_submit():
        with shown_at(form):
            user = passwords.reset_password(token, form.password.data)
            logout_user()
            login_user(user)
            flash(_("Your password is saved. You are signed in."), "success")
            return signin.remember_device(redirect(url_for("accounts.account")), user)
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
        with shown_at(form):
            passwords.change_password(current_user, form.current_password.data, form.password.data)
            flash(_("Your password is changed."), "success")
            # The new password voided this browser's device cookie with the others: a new one.
            return signin.remember_device(redirect(url_for("accounts.account")), current_user)
    return render_template("accounts/change_password.html", form=form)


@bp.route("/apply", methods=["GET", "POST"])
@per_client("LOGIN_RATE_LIMIT")
@per_address()
def apply():
    """Apply for a partner account (contact persons of partner organisations)."""
    form = ApplicationForm()
    if form.validate_on_submit():
        with shown_at(form):
            # The same page whether or not the address has an account or an open application (the
            # address is told by mail), and no list of the partner organisations.
            submit_application(
                name=form.name.data,
                email=form.email.data,
                organisation_name=form.organisation_name.data or "",
                position=form.position.data or "",
                phone=form.phone.data or "",
                message=form.message.data or "",
            )
            return render_template("accounts/apply_done.html")
    return render_template("accounts/apply.html", form=form)
