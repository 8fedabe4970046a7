"""Role checks, safe redirects, secret tokens and the HTTP security headers."""

import base64
import hashlib
import hmac
import secrets
from functools import wraps
from urllib.parse import urlsplit

from flask import abort, current_app, g, request, session
from flask_login import current_user
from flask_login.config import COOKIE_NAME as REMEMBER_COOKIE


def _require(allowed):
    """Decorator factory: anonymous users go to the login page, others need ``allowed(user)``."""

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated:
                return current_app.login_manager.unauthorized()
            if not allowed(current_user):
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


staff_required = _require(lambda user: user.is_staff)
staff_required.__doc__ = "Let staff and admins through; others get 403, anonymous users the login page."
admin_required = _require(lambda user: user.is_admin)
admin_required.__doc__ = "Let admins through; others get 403, anonymous users the login page."


def may_be_signed_in() -> bool:
    """Whether the request carries a sign-in at all (Flask-Login's key in the session, or its "stay signed in"
    cookie), known without loading anyone: without one, the visitor is anonymous."""
    return "_user_id" in session or current_app.config.get("REMEMBER_COOKIE_NAME", REMEMBER_COOKIE) in request.cookies


def is_safe_next(target: str | None) -> bool:
    """True for a path on this site: relative, no scheme, no host, no backslash tricks."""
    if not target:
        return False
    target = target.strip()
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return False
    if any(ord(c) < 32 for c in target):
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc


def safe_next(default: str) -> str:
    """The ``next`` parameter if it stays on this site, otherwise ``default``."""
    target = request.values.get("next")
    return target.strip() if is_safe_next(target) else default


def new_token() -> tuple[str, str]:
    """A fresh URL-safe secret and the hash to store for it."""
    token = secrets.token_urlsafe(32)
    return token, hash_token(token)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def derived_token(purpose: str, salt: str) -> str:
    """A URL-safe secret derived from a stored random salt and the secret key.

    Lets a link be mailed again and again while the database holds only the
    salt and the hash: without the secret key the salt gives nothing away.
    """
    digest = hmac.new(current_app.secret_key.encode(), f"{purpose}:{salt}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'self'",
        "object-src 'none'",
    ]
)


def framable_by(origins: list[str]) -> str:
    """The Content-Security-Policy of a page made to be framed by this site and by ``origins`` (checked
    origins from the configuration): the site's policy with only ``frame-ancestors`` changed. Such a page
    carries no X-Frame-Options, which cannot name origins (``set_security_headers``)."""
    ancestors = " ".join(["'self'", *origins])
    return CONTENT_SECURITY_POLICY.replace("frame-ancestors 'none'", f"frame-ancestors {ancestors}")


# Pages of one person reached through a secret link: no cache on the way may keep them.
PRIVATE_ENDPOINTS = {"events.manage", "events.confirm", "my.registrations", "accounts.reset_password"}


def set_security_headers(response):
    """Add the headers every response carries; a signed-in person's pages and secret-link pages are
    never stored by a browser or proxy cache (a shared computer, a company proxy)."""
    headers = response.headers
    user = g.get("_login_user")  # only if the page looked at who is signed in
    if request.endpoint in PRIVATE_ENDPOINTS or (user is not None and user.is_authenticated):
        headers["Cache-Control"] = "no-store"
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    if "frame-ancestors 'none'" in headers["Content-Security-Policy"]:  # all but pages made for frames
        headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    if current_app.config["SESSION_COOKIE_SECURE"]:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response
