"""Absolute links for mails, feeds and calendar subscriptions, always from the configured ``BASE_URL``.

A link built from the request's Host header would let anyone who can send a request choose where a
password-reset mail points; calendar UIDs and links in mails queued by ``jobs run`` have no request
at all. So every absolute link is ``BASE_URL`` plus the route's path, in and outside requests alike.
"""

from urllib.parse import urlsplit

from flask import current_app


def external_url(endpoint: str, **values) -> str:
    """``BASE_URL`` + the path of ``endpoint`` (never the request's host)."""
    adapter = current_app.url_map.bind("localhost")  # only builds paths; the host is not used
    return current_app.config["BASE_URL"] + adapter.build(endpoint, values)


def webcal_url(endpoint: str, **values) -> str:
    """A calendar subscription link (``webcal://``) to a feed."""
    return "webcal://" + external_url(endpoint, **values).split("://", 1)[1]


def site_domain() -> str:
    """The host name of ``BASE_URL``: the domain of calendar UIDs."""
    return urlsplit(current_app.config["BASE_URL"]).hostname or "localhost"


def check_base_url(url: str) -> str:
    """``BASE_URL`` without a trailing slash, or a clear error for a value that is not an address."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise RuntimeError(f"BASE_URL must be the site's public address, e.g. https://fundus.example.org (got {url!r})")
    return url.strip().rstrip("/")
