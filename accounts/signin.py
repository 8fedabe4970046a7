"""Signing in (DOMAIN rule 6): failed attempts slowed down per address and client, the same for
addresses with and without an account; a success opens a sign-in (``accounts.sessions``).

- Failed attempts are counted per (address, client) and per address from everywhere, atomically,
  before the password is checked: at most ``LOGIN_MAX_FAILURES`` checks per address and client in
  ``LOGIN_LOCK_MINUTES`` however many arrive at once.
- A browser the account signed in from before carries a device cookie for it (a random nonce of its
  own and a MAC over it, the account and its password hash, so a password change voids it): its
  attempts are counted for that browser alone, and the count from everywhere (guessing spread over
  many client addresses) does not lock it, so nobody can lock the owner out of their own browser.
  A success clears only its own client's count.
- Unknown addresses, and accounts without a password yet, cost the same scrypt check as real ones.
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from typing import Any

from flask import current_app, has_request_context, request
from flask_babel import lazy_gettext as _l
from sqlalchemy import case, delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from werkzeug.security import check_password_hash, generate_password_hash

from accounts.models import SignInThrottle, User
from accounts.passwords import user_by_email
from accounts.sessions import open_session
from core.db import unit_of_work
from core.extensions import db
from core.models import utcnow
from core.text import normalise_email

EVERYWHERE = "*"
DEVICE_COOKIE = "device"
DEVICES_KEPT = 5  # accounts one browser is known for (a shared office computer)
LOGIN_FAILED = _l("E-mail address or password is wrong.")


@cache
def _dummy_hash() -> str:
    return generate_password_hash("no account has this password", method="scrypt")


def _client() -> str:
    return ((request.remote_addr or "") if has_request_context() else "")[:64] or "unknown"


def _count_attempt(account_key: str, client: str) -> int:
    """Add one attempt to the counter and return the new count, in one atomic statement (an upsert);
    a window that has passed starts again at 1."""
    now = utcnow()
    window_start = now - timedelta(minutes=current_app.config["LOGIN_LOCK_MINUTES"])
    insert = pg_insert if db.session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stale = SignInThrottle.since < window_start
    statement = insert(SignInThrottle).values(account_key=account_key, client=client, attempts=1, since=now)
    statement = statement.on_conflict_do_update(
        index_elements=[SignInThrottle.account_key, SignInThrottle.client],
        set_={"attempts": case((stale, 1), else_=SignInThrottle.attempts + 1),
              "since": case((stale, now), else_=SignInThrottle.since)},
    ).returning(SignInThrottle.attempts)
    return db.session.execute(statement).scalar_one()


def _device_mac(user: User, nonce: str) -> str:
    """The device cookie's proof for ``user`` and one browser's ``nonce``: a MAC only this site can
    make, valid while the account keeps its password (a change voids every device cookie)."""
    secret = current_app.config["SECRET_KEY"].encode()
    message = f"device:{user.id}:{nonce}:{user.password_hash}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()[:32]


def _devices() -> list[tuple[str, str]]:
    """The (nonce, proof) pairs this browser's device cookie holds."""
    raw = request.cookies.get(DEVICE_COOKIE, "") if has_request_context() else ""
    pairs = [item.partition(":")[::2] for item in raw[:400].split(".")[:DEVICES_KEPT]]
    return [(nonce, mac) for nonce, mac in pairs if len(nonce) == 16 and len(mac) == 32]


def _device_of(user: User | None) -> str | None:
    """This browser's nonce if it signed in as ``user`` before, with the password the account has now."""
    if user is None or not user.active or not user.password_hash:
        return None
    for nonce, mac in _devices():
        if hmac.compare_digest(mac, _device_mac(user, nonce)):
            return nonce
    return None


def remember_device(response, user: User):
    """Mark this browser as one ``user`` signed in from: a random nonce of its own (its own count of
    attempts) with its proof; the cookie keeps the last few accounts of a shared computer."""
    nonce = _device_of(user) or secrets.token_hex(8)
    kept = [f"{nonce}:{_device_mac(user, nonce)}"] + [f"{n}:{m}" for n, m in _devices() if n != nonce]
    cfg = current_app.config
    response.set_cookie(DEVICE_COOKIE, ".".join(kept[:DEVICES_KEPT]), max_age=cfg["REMEMBER_COOKIE_DURATION"],
                        secure=cfg["SESSION_COOKIE_SECURE"], httponly=True, samesite="Lax")
    return response


def _account_key(email: str) -> str:
    return hashlib.sha256(normalise_email(email).encode()).hexdigest()


@dataclass
class SignIn:
    """The outcome of a sign-in: the account, or why not (attempts are counted, so a refusal is not
    an error that would roll the count back)."""

    user: User | None = None
    refused: Any = None


@unit_of_work
def authenticate(email: str, password: str) -> SignIn:
    """The account for these credentials and a new sign-in, or the refusal."""
    cfg = current_app.config
    account_key = _account_key(email)
    user = user_by_email(email)
    device = _device_of(user)
    client = f"device:{device}" if device else _client()
    here = _count_attempt(account_key, client)
    everywhere = 0 if device else _count_attempt(account_key, EVERYWHERE)
    if here > cfg["LOGIN_MAX_FAILURES"] or everywhere > cfg["LOGIN_MAX_FAILURES_ANYWHERE"]:
        return SignIn(refused=_l("Too many attempts for this address. Please wait %(minutes)s minutes or reset "
                                 "your password.", minutes=cfg["LOGIN_LOCK_MINUTES"]))
    if user is None or not user.active or not user.has_password:
        check_password_hash(_dummy_hash(), password)  # the same time as for a real account
        return SignIn(refused=LOGIN_FAILED)
    if not user.check_password(password):
        return SignIn(refused=LOGIN_FAILED)
    db.session.execute(delete(SignInThrottle).where(SignInThrottle.account_key == account_key,
                                                    SignInThrottle.client == client))
    user.last_login_at = utcnow()
    open_session(user)
    return SignIn(user=user)
