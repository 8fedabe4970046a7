"""Account workflows: sign-in, tokens, passwords, applications, organisations and users.

Services raise ``AccountError`` with a message for the user and never touch
``request`` or ``flash``; the views turn the error into a form message.
"""

from datetime import timedelta
from functools import cache

from flask import current_app
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from accounts.models import (
    AccountApplication,
    ApplicationStatus,
    Organisation,
    OrganisationKind,
    Role,
    TokenPurpose,
    User,
    UserToken,
)
from core.errors import DomainError
from core.extensions import db
from core.mail import queue_mail
from core.models import utcnow
from core.security import hash_token, new_token
from core.urls import external_url


class AccountError(DomainError):
    """A rule of the accounts feature was broken."""


def normalise_email(email: str) -> str:
    return email.strip().lower()


def load_user(user_id: str) -> User | None:
    """Flask-Login loader: ``"<id>:<session_version>"``; an older version is signed out."""
    ident, _, version = user_id.partition(":")
    if not ident.isdigit() or not version.isdigit():
        return None
    user = db.session.get(User, int(ident))
    if user is None or user.session_version != int(version) or not user.active:
        return None
    return user


def user_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == normalise_email(email)))


# Sign-in -----------------------------------------------------------------------------

LOGIN_FAILED = _l("E-mail address or password is wrong.")


@cache
def _dummy_hash() -> str:
    return generate_password_hash("no account has this password", method="scrypt")


def authenticate(email: str, password: str) -> User:
    """Return the user for these credentials or raise; count failures and lock the account."""
    cfg = current_app.config
    user = user_by_email(email)
    now = utcnow()
    if user is None or not user.active:
        check_password_hash(_dummy_hash(), password)  # same time as for a real account
        raise AccountError(LOGIN_FAILED)
    if user.locked_until and user.locked_until > now:
        raise AccountError(
            _l(
                "Too many failed attempts. Please wait %(minutes)s minutes or reset your password.",
                minutes=cfg["LOGIN_LOCK_MINUTES"],
            )
        )
    if not user.check_password(password):
        # Counted in the database, so the limit holds across all app processes.
        db.session.execute(
            update(User).where(User.id == user.id).values(failed_logins=User.failed_logins + 1)
        )
        db.session.refresh(user)
        if user.failed_logins >= cfg["LOGIN_MAX_FAILURES"]:
            user.locked_until = now + timedelta(minutes=cfg["LOGIN_LOCK_MINUTES"])
            user.failed_logins = 0
        db.session.commit()
        raise AccountError(LOGIN_FAILED)
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    db.session.commit()
    return user


# Tokens and passwords ---------------------------------------------------------------


def issue_token(user: User, purpose: TokenPurpose) -> str:
    """Create a single-use token for ``user``; earlier unused ones of that purpose stop working."""
    cfg = current_app.config
    lifetime = (
        timedelta(hours=cfg["PASSWORD_RESET_HOURS"])
        if purpose == TokenPurpose.RESET_PASSWORD
        else timedelta(days=cfg["SET_PASSWORD_DAYS"])
    )
    now = utcnow()
    db.session.execute(
        update(UserToken)
        .where(UserToken.user_id == user.id, UserToken.purpose == purpose, UserToken.used_at.is_(None))
        .values(used_at=now)
    )
    token, digest = new_token()
    db.session.add(UserToken(user=user, purpose=purpose, token_hash=digest, expires_at=now + lifetime))
    return token


def _mail_token_link(user: User, purpose: TokenPurpose, subject, template: str, **context) -> None:
    token = issue_token(user, purpose)
    link = external_url("accounts.reset_password", token=token)
    queue_mail(user.email, subject, template, locale=user.locale, user=user, link=link, **context)


def send_set_password_link(user: User) -> None:
    """Queue the welcome mail with a link to choose a first password."""
    _mail_token_link(
        user, TokenPurpose.SET_PASSWORD, _l("Your Fundus account"), "accounts/set_password",
        days=current_app.config["SET_PASSWORD_DAYS"],
    )


def request_password_reset(email: str) -> None:
    """Mail a reset link if an active account has this address; say nothing either way."""
    user = user_by_email(email)
    if user is None or not user.active:
        return
    _mail_token_link(
        user, TokenPurpose.RESET_PASSWORD, _l("Reset your Fundus password"), "accounts/reset_password",
        hours=current_app.config["PASSWORD_RESET_HOURS"],
    )
    db.session.commit()


def valid_token(token: str) -> UserToken | None:
    """The unused, unexpired token row for this secret, or None."""
    row = db.session.scalar(select(UserToken).where(UserToken.token_hash == hash_token(token)))
    if row is None or row.used_at is not None or row.expires_at <= utcnow() or not row.user.active:
        return None
    return row


def reset_password(token: str, password: str) -> User:
    """Set a new password through a token; the token is used up exactly once."""
    row = valid_token(token)
    if row is None:
        raise AccountError(_l("This link is invalid, used or expired. Please request a new one."))
    # Conditional update: of two requests with the same link, only one gets here.
    result = db.session.execute(
        update(UserToken)
        .where(UserToken.id == row.id, UserToken.used_at.is_(None))
        .values(used_at=utcnow())
    )
    if result.rowcount != 1:
        db.session.rollback()
        raise AccountError(_l("This link is invalid, used or expired. Please request a new one."))
    user = row.user
    check_password_rules(password, user.email)
    user.set_password(password)
    user.failed_logins = 0
    user.locked_until = None
    db.session.commit()
    return user


def check_password_rules(password: str, email: str) -> None:
    if len(password) < 10:
        raise AccountError(_l("Use at least 10 characters."), field="password")
    if password.strip().lower() == email.lower():
        raise AccountError(_l("Do not use your e-mail address as password."), field="password")


def change_password(user: User, current: str, new: str) -> None:
    """Change the password after checking the current one; other sessions are signed out."""
    if not user.check_password(current):
        raise AccountError(_l("The current password is wrong."), field="current_password")
    check_password_rules(new, user.email)
    user.set_password(new)
    db.session.commit()


def update_profile(user: User, name: str, locale: str) -> None:
    user.name = name.strip()
    user.locale = locale
    db.session.commit()


def set_locale(user: User, locale: str) -> None:
    if user.locale != locale:
        user.locale = locale
        db.session.commit()


# Users -----------------------------------------------------------------------------


def create_user(
    email: str,
    name: str,
    role: Role,
    organisation_id: int | None = None,
    password: str | None = None,
    locale: str = "de",
    send_link: bool = True,
) -> User:
    """Create an account; without a password, mail a link to set one."""
    email = normalise_email(email)
    if user_by_email(email) is not None:
        raise AccountError(_l("An account with this e-mail address exists already."), field="email")
    if role == Role.PARTNER and organisation_id is None:
        raise AccountError(_l("A partner contact needs an organisation."), field="organisation_id")
    if organisation_id is not None and db.session.get(Organisation, organisation_id) is None:
        raise AccountError(_l("Unknown organisation."), field="organisation_id")
    user = User(
        email=email,
        name=name.strip(),
        role=role,
        organisation_id=organisation_id if role == Role.PARTNER else None,
        locale=locale,
    )
    if password is not None:
        check_password_rules(password, email)
        user.set_password(password)
    db.session.add(user)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise AccountError(
            _l("An account with this e-mail address exists already."), field="email"
        ) from None
    if password is None and send_link:
        send_set_password_link(user)
    return user


def update_user(
    user: User,
    acting: User,
    email: str,
    name: str,
    role: Role,
    organisation_id: int | None,
    active: bool,
    locale: str,
) -> None:
    """Change an account; an admin cannot demote or disable themselves."""
    email = normalise_email(email)
    if user.id == acting.id and (role != Role.ADMIN or not active):
        raise AccountError(_l("You cannot take away your own admin rights or deactivate yourself."))
    other = user_by_email(email)
    if other is not None and other.id != user.id:
        raise AccountError(_l("An account with this e-mail address exists already."), field="email")
    if role == Role.PARTNER and organisation_id is None:
        raise AccountError(_l("A partner contact needs an organisation."), field="organisation_id")
    user.email = email
    user.name = name.strip()
    user.role = role
    user.locale = locale
    user.organisation_id = organisation_id if role == Role.PARTNER else None
    if user.active and not active:
        user.session_version += 1  # sign the account out everywhere
    user.active = active
    db.session.commit()


# Organisations ---------------------------------------------------------------------


def save_organisation(org: Organisation | None, **fields) -> Organisation:
    """Create (``org`` None) or update an organisation; names are unique, ignoring case."""
    name = fields["name"].strip()
    clash = db.session.scalar(
        select(Organisation).where(func.lower(Organisation.name) == name.lower())
    )
    if clash is not None and (org is None or clash.id != org.id):
        raise AccountError(_l("An organisation with this name exists already."), field="name")
    if org is None:
        org = Organisation(name=name, kind=fields["kind"])
        db.session.add(org)
    for key, value in fields.items():
        setattr(org, key, value.strip() if isinstance(value, str) else value)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise AccountError(_l("An organisation with this name exists already."), field="name") from None
    return org


# Account applications --------------------------------------------------------------


def submit_application(
    name: str,
    email: str,
    organisation_id: int | None,
    organisation_name: str,
    position: str = "",
    phone: str = "",
    message: str = "",
) -> AccountApplication:
    """Record an application for a partner account and tell the applicant and staff."""
    email = normalise_email(email)
    if user_by_email(email) is not None:
        raise AccountError(
            _l("There is an account for this address already. Use “Forgot password” to get in."),
            field="email",
        )
    pending = db.session.scalar(
        select(AccountApplication).where(
            AccountApplication.email == email, AccountApplication.status == ApplicationStatus.PENDING
        )
    )
    if pending is not None:
        raise AccountError(_l("An application for this address is being reviewed already."), field="email")
    if organisation_id is None and not organisation_name.strip():
        raise AccountError(_l("Choose your organisation or enter its name."), field="organisation_name")
    if organisation_id is not None and db.session.get(Organisation, organisation_id) is None:
        raise AccountError(_l("Unknown organisation."), field="organisation_id")
    application = AccountApplication(
        name=name.strip(),
        email=email,
        organisation_id=organisation_id,
        organisation_name="" if organisation_id else organisation_name.strip(),
        position=position.strip(),
        phone=phone.strip(),
        message=message.strip(),
        locale=str(get_locale()),
        consent_at=utcnow(),
    )
    db.session.add(application)
    try:
        db.session.flush()
    except IntegrityError:  # a second submit of the same form at the same moment
        db.session.rollback()
        raise AccountError(
            _l("An application for this address is being reviewed already."), field="email"
        ) from None
    queue_mail(
        email,
        _l("We have received your application"),
        "accounts/application_received",
        locale=application.locale,
        application=application,
    )
    queue_mail(
        current_app.config["STAFF_EMAIL"],
        _l("New application for a partner account"),
        "accounts/application_staff_notice",
        locale="de",
        application=application,
        link=external_url("accounts.application_detail", application_id=application.id),
    )
    db.session.commit()
    return application


def _pending_application(application_id: int) -> AccountApplication:
    """Lock the application row and check it still waits for a decision."""
    application = db.session.scalar(
        select(AccountApplication).where(AccountApplication.id == application_id).with_for_update()
    )
    if application is None or application.status != ApplicationStatus.PENDING:
        db.session.rollback()
        raise AccountError(_l("This application has been decided already."))
    return application


def approve_application(
    application_id: int,
    staff: User,
    organisation_id: int | None,
    new_organisation_kind: OrganisationKind | None = None,
) -> User:
    """Create the partner account (and the organisation, if new) and mail the set-password link."""
    application = _pending_application(application_id)
    if organisation_id is None:
        if new_organisation_kind is None:
            raise AccountError(_l("Choose the organisation or the kind of the new one."))
        name = application.organisation_name or application.name
        existing = db.session.scalar(
            select(Organisation).where(func.lower(Organisation.name) == name.lower())
        )
        if existing is not None:
            raise AccountError(
                _l("An organisation with this name exists already; choose it from the list.")
            )
        org = Organisation(name=name, kind=new_organisation_kind)
        db.session.add(org)
        db.session.flush()
        organisation_id = org.id
    user = create_user(
        application.email,
        application.name,
        Role.PARTNER,
        organisation_id=organisation_id,
        locale=application.locale,
        send_link=True,
    )
    application.status = ApplicationStatus.APPROVED
    application.organisation_id = organisation_id
    application.decided_at = utcnow()
    application.decided_by_id = staff.id
    application.user_id = user.id
    db.session.commit()
    return user


def reject_application(application_id: int, staff: User, reason: str) -> None:
    """Decline an application and tell the applicant, with the reason if one is given."""
    application = _pending_application(application_id)
    application.status = ApplicationStatus.REJECTED
    application.reject_reason = reason.strip()
    application.decided_at = utcnow()
    application.decided_by_id = staff.id
    queue_mail(
        application.email,
        _l("Your application for a Fundus account"),
        "accounts/application_rejected",
        locale=application.locale,
        application=application,
    )
    db.session.commit()
