"""Sign-ins the server can end (DOMAIN rule 6).

A sign-in is a ``UserSession`` row; the browser's session and remember cookie carry its token (in
``User.get_id()``), the database keeps the token's hash. Signing out revokes it, a password change
revokes the account's other sign-ins, a reset or a deactivation all of them: no earlier cookie works
afterwards, whatever the browser kept.
"""

import secrets
from datetime import timedelta

from flask import current_app, flash, g, redirect, request, session
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_url
from sqlalchemy import delete, select, update

from accounts.models import SignInThrottle, User, UserSession
from core.db import unit_of_work
from core.extensions import db
from core.models import utcnow
from core.security import hash_token


def load_user(user_id: str) -> User | None:
    """Flask-Login loader: ``"<account id>:<sign-in token>"``, valid while that sign-in is."""
    ident, _, token = user_id.partition(":")
    if not ident.isdecimal() or len(ident) > 10 or not token:
        return None
    user = db.session.scalar(
        select(User).join(UserSession, UserSession.user_id == User.id)
        .where(UserSession.token_hash == hash_token(token), UserSession.user_id == int(ident),
               UserSession.revoked_at.is_(None), User.active.is_(True))
    )
    if user is not None:
        user.session_token = token
    return user


SIGN_IN_ENDED = _l("Your sign-in has ended (signed out elsewhere, or the password was changed). Please sign in again.")


def notice_ended_sign_in() -> None:
    """Before each request: a browser whose sign-in the server ended (signed out on another device,
    password changed, account deactivated) is told so on its next page, public or not, once."""
    if request.endpoint == "static" or session.get("_user_id") is None or current_user.is_authenticated:
        return
    session.pop("_user_id", None)
    g.sign_in_ended = True
    flash(SIGN_IN_ENDED, "info")


def sign_in_needed():
    """Flask-Login's answer to a page that needs a sign-in: to the sign-in page, and back afterwards
    (with the usual request to sign in, unless the browser was just told its sign-in ended)."""
    if not g.get("sign_in_ended"):
        flash(current_app.login_manager.login_message, "info")
    return redirect(login_url(current_app.login_manager.login_view, next_url=request.url))


def open_session(user: User) -> str:
    """Start a sign-in for ``user`` (in the caller's transaction); its token goes into ``get_id()``."""
    token = secrets.token_urlsafe(32)
    db.session.add(UserSession(user_id=user.id, token_hash=hash_token(token)))
    user.session_token = token
    return token


def revoke_sessions(user: User, keep: str | None = None) -> None:
    """End every sign-in of ``user`` but ``keep`` (a token), in the caller's transaction."""
    query = update(UserSession).where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None))
    if keep:
        query = query.where(UserSession.token_hash != hash_token(keep))
    db.session.execute(query.values(revoked_at=utcnow()).execution_options(synchronize_session=False))


@unit_of_work
def sign_out(user: User) -> None:
    """End this sign-in on the server: the session cookie and the remember cookie stop working."""
    if user.session_token:
        db.session.execute(update(UserSession).where(UserSession.token_hash == hash_token(user.session_token))
                           .values(revoked_at=utcnow()).execution_options(synchronize_session=False))


@unit_of_work
def forget_old_sign_ins() -> int:
    """Housekeeping for ``jobs run``: ended sign-ins and sign-ins older than the remember cookie, and
    attempt counters whose window has passed."""
    now = utcnow()
    old = now - current_app.config["REMEMBER_COOKIE_DURATION"]
    removed = db.session.execute(delete(UserSession).where(
        (UserSession.revoked_at.is_not(None)) | (UserSession.created_at < old))).rowcount
    db.session.execute(delete(SignInThrottle).where(
        SignInThrottle.since < now - timedelta(minutes=current_app.config["LOGIN_LOCK_MINUTES"])))
    return removed
