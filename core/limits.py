"""Limits on what one client, or one e-mail address, may ask of Fundus (Flask-Limiter).

Public forms that write rows or send mail are limited twice: per client address (``PROXY_COUNT``
makes that the real client behind a proxy) and per e-mail address the form names, whichever client
sends it, so nobody floods a training with registrations or an inbox with links; the count per
address only grows when a mail goes out. The counts live in
``RATELIMIT_STORAGE_URI`` (one count per process with ``memory://``; Redis for one count across
processes). Every limit is a configuration value.
"""

import hashlib

from flask import current_app, g, request

from core.extensions import limiter
from core.text import normalise_email


def configured(name: str):
    """The limit in configuration value ``name``, read per request (tests and instances set their own)."""
    return lambda: current_app.config[name]


def form_address() -> str:
    """The limiter key of the e-mail address in the posted form (a digest, not the address)."""
    address = normalise_email(request.form.get("email", "")[:320])
    return "address:" + hashlib.sha256(address.encode()).hexdigest()


def per_client(name: str):
    """Decorator: the limit ``name`` per client address, counted on POST."""
    return limiter.limit(configured(name), methods=["POST"])


def _refused_sign_in(_response) -> bool:
    return not g.get("signed_in", False)


def per_client_sign_in(name: str = "LOGIN_RATE_LIMIT"):
    """Decorator: the limit ``name`` per client address on the sign-in form, where only a refused
    sign-in counts (the view marks a successful one): the staff of a housing company behind one
    address sign in every morning without using up the limit that stops password guessing."""
    return limiter.limit(configured(name), methods=["POST"], deduct_when=_refused_sign_in)


def _mailed(_response) -> bool:
    return g.get("mailed", False)


def per_address(name: str = "ADDRESS_RATE_LIMIT"):
    """Decorator: the limit ``name`` per e-mail address in the form, from any client. Only a request
    that mails (``core.mail`` marks it) counts, so forms sent invalid on purpose with someone's
    address cannot use up that person's limit."""
    return limiter.limit(configured(name), key_func=form_address, methods=["POST"], deduct_when=_mailed)
