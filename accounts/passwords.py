"""Passwords and single-use links: the rules for a password, reset and first-password links."""

from datetime import timedelta

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select, update

from accounts.errors import AccountError
from accounts.models import TokenPurpose, User, UserToken
from accounts.sessions import open_session, revoke_sessions
from core import audit
from core.db import unit_of_work
from core.extensions import db
from core.mail import build_message, queue_mail
from core.models import utcnow
from core.security import hash_token, new_token
from core.states import lock
from core.text import normalise_email
from core.urls import external_url


def user_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == normalise_email(email)))


def check_password_rules(password: str, email: str) -> None:
    if len(password) < 10:
        raise AccountError(_l("Use at least 10 characters."), field="password")
    if password.strip().lower() == email.lower():
        raise AccountError(_l("Do not use your e-mail address as password."), field="password")


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


@unit_of_work
def request_password_reset(email: str) -> None:
    """Mail a reset link if an active account has this address; say nothing either way."""
    user = user_by_email(email)
    if user is None or not user.active:
        # The same work as for an account (a token and the mail, made but not kept), so the answer
        # takes as long and tells nobody whether the address has an account.
        new_token()
        build_message(email, _l("Reset your Fundus password"), "accounts/reset_password", user=User(name=""),
                      link=external_url("accounts.reset_password", token="x" * 43),
                      hours=current_app.config["PASSWORD_RESET_HOURS"]).as_bytes()
        return
    _mail_token_link(
        user, TokenPurpose.RESET_PASSWORD, _l("Reset your Fundus password"), "accounts/reset_password",
        hours=current_app.config["PASSWORD_RESET_HOURS"],
    )


def valid_token(token: str) -> UserToken | None:
    """The unused, unexpired token row for this secret, or None."""
    row = db.session.scalar(select(UserToken).where(UserToken.token_hash == hash_token(token)))
    if row is None or row.used_at is not None or row.expires_at <= utcnow() or not row.user.active:
        return None
    return row


def _void_links(user: User) -> None:
    """Every unused reset or first-password link of the account stops working."""
    db.session.execute(update(UserToken).where(UserToken.user_id == user.id, UserToken.used_at.is_(None))
                       .values(used_at=utcnow()).execution_options(synchronize_session=False))


@unit_of_work
def reset_password(token: str, password: str) -> User:
    """Set a new password through a token, used up exactly once; every earlier sign-in and every other
    link of the account stops working, and the person is signed in anew."""
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
        raise AccountError(_l("This link is invalid, used or expired. Please request a new one."))
    user = row.user
    check_password_rules(password, user.email)
    user.set_password(password)
    _void_links(user)
    revoke_sessions(user)
    open_session(user)
    audit.record(user, "password", user, details=row.purpose.value)
    return user


@unit_of_work
def change_password(user: User, current: str, new: str) -> None:
    """Change the password after checking the current one; the account's other sign-ins end, and
    reset links sent before stop working."""
    if not user.check_password(current):
        raise AccountError(_l("The current password is wrong."), field="current_password")
    check_password_rules(new, user.email)
    user.set_password(new)
    _void_links(user)
    revoke_sessions(user, keep=user.session_token)
    audit.record(user, "password", user)


@unit_of_work
def invite_user(user_id: int, actor: User) -> User:
    """Send a fresh link to set a password (earlier links stop working)."""
    user = lock(User, user_id)
    send_set_password_link(user)
    audit.record(actor, "invite", user, refs=[user.organisation])
    return user
