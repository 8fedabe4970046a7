"""Signing in: the session loader, and authentication with counted failures and a lock."""

from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from typing import Any

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import update
from werkzeug.security import check_password_hash, generate_password_hash

from accounts.models import User
from accounts.passwords import user_by_email
from core.db import unit_of_work
from core.extensions import db
from core.models import utcnow


def load_user(user_id: str) -> User | None:
    """Flask-Login loader: ``"<id>:<session_version>"``; an older version is signed out."""
    ident, _, version = user_id.partition(":")
    if not ident.isdigit() or not version.isdigit():
        return None
    user = db.session.get(User, int(ident))
    if user is None or user.session_version != int(version) or not user.active:
        return None
    return user


LOGIN_FAILED = _l("E-mail address or password is wrong.")


@cache
def _dummy_hash() -> str:
    return generate_password_hash("no account has this password", method="scrypt")


@dataclass
class SignIn:
    """The outcome of a sign-in: the account, or why not (a failure is counted, so it is not an error
    that would roll back)."""

    user: User | None = None
    refused: Any = None


@unit_of_work
def authenticate(email: str, password: str) -> SignIn:
    """The account for these credentials, or the refusal; failures are counted and lock the account."""
    cfg = current_app.config
    user = user_by_email(email)
    now = utcnow()
    if user is None or not user.active:
        check_password_hash(_dummy_hash(), password)  # same time as for a real account
        return SignIn(refused=LOGIN_FAILED)
    if user.locked_until and user.locked_until > now:
        return SignIn(refused=_l("Too many failed attempts. Please wait %(minutes)s minutes or reset your password.",
                                 minutes=cfg["LOGIN_LOCK_MINUTES"]))
    if not user.check_password(password):
        # Counted in the database, so the limit holds across all app processes.
        db.session.execute(
            update(User).where(User.id == user.id).values(failed_logins=User.failed_logins + 1)
        )
        db.session.refresh(user)
        if user.failed_logins >= cfg["LOGIN_MAX_FAILURES"]:
            user.locked_until = now + timedelta(minutes=cfg["LOGIN_LOCK_MINUTES"])
            user.failed_logins = 0
        return SignIn(refused=LOGIN_FAILED)
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    return SignIn(user=user)
