"""Whole answers to anonymous GET requests, kept per process until anything they show changes.

Visitors of the public pages (catalogue, material, programme, training, feeds, API, embed) are almost
all anonymous and get the same bytes for the same address until something changes. A view marked
``@kept_whole`` has its answer kept in this process under a key of everything it depends on:

- the path and the query string, as sent (another order of parameters is another entry);
- the language of the answer (``core.i18n.select_locale``: ``?lang=``, cookie, browser);
- the day (Berlin time), and an entry serves for ``PAGE_CACHE_SECONDS`` on the application's clock: what
  depends on the time (a training that has begun, a registration period that ends) is at most that old;
- every change counter (``core.changes.all_versions``: one statement over a handful of rows), raised in
  the same transaction as every change, so a change through any process or host misses every
  entry that was built before it, on the next request, on every process.

The counters are read before the view reads its data, so an entry is never older than its key.

Only what is the same for every visitor is kept, and only for a visitor to whom it can be given:

- no one signed in (no sign-in in the session, no "stay signed in" cookie), no message waiting to be
  shown (flash), both when the answer is built and when it is served;
- only a 200 to a GET, with a fixed set of headers (never ``Set-Cookie``, CORS or rate-limit headers:
  those are made per request by the hooks that run on a kept answer too);
- the page's CSRF token (the header's language switch, the training's registration form) is
  cut out when the answer is kept and the requesting visitor's own token put in when it is served,
  so one visitor's token never reaches another; the session cookie stays the visitor's own.

A conditional request (``If-None-Match``) for a kept answer with an ETag is answered 304 from the entry.
"""

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app, g, request, session
from flask.globals import request_ctx
from flask_babel import get_locale
from flask_login.config import COOKIE_NAME as REMEMBER_COOKIE
from flask_wtf.csrf import generate_csrf

from core.changes import all_versions
from core.i18n import local_today
from core.models import utcnow

# Headers an answer keeps; every other header is made again for each request by the hooks.
KEPT_HEADERS = ("Content-Type", "Content-Language", "Content-Disposition", "Content-Security-Policy",
                "Cache-Control", "ETag", "Last-Modified", "Vary", "Link")


def kept_whole(view):
    """Mark a public GET view whose answer is the same for every anonymous visitor (``core.pagecache``)."""
    view.kept_whole = True
    return view


@dataclass(frozen=True, slots=True)
class Kept:
    built_at: datetime
    parts: tuple[bytes, ...]  # the body around each place of the CSRF token
    headers: tuple[tuple[str, str], ...]

    def response(self):
        # Joining at the token's places: one copy, where replacing would search the whole body again.
        body = generate_csrf().encode().join(self.parts) if len(self.parts) > 1 else self.parts[0]
        response = current_app.response_class(body, status=200, headers=list(self.headers))
        return response.make_conditional(request) if response.headers.get("ETag") else response


class PageCache:
    """The kept answers of one process, the least recently used dropped beyond ``size``."""

    def __init__(self, size: int):
        self.size = size
        self._entries: OrderedDict[tuple, Kept] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple, now: datetime, seconds: int) -> Kept | None:
        """The entry for ``key`` if it was built within ``seconds`` before ``now``."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or not timedelta(0) <= now - entry.built_at < timedelta(seconds=seconds):
                return None
            self._entries.move_to_end(key)
            return entry

    def put(self, key: tuple, entry: Kept) -> None:
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


def init_page_cache(app) -> None:
    size = app.config["PAGE_CACHE_ENTRIES"]
    if size:
        app.extensions["pagecache"] = PageCache(size)
        app.before_request(serve_kept)
        app.after_request(keep)


def _anonymous_and_quiet() -> bool:
    """Nobody signed in and nothing waiting to be shown: the page is the one every visitor gets."""
    return ("_user_id" not in session and "_flashes" not in session and not g.get("sign_in_ended")
            and current_app.config.get("REMEMBER_COOKIE_NAME", REMEMBER_COOKIE) not in request.cookies)


def serve_kept():
    """Before the view: a kept answer for this request, if there is one (else note the key for ``keep``)."""
    if request.method not in ("GET", "HEAD"):
        return None
    view = current_app.view_functions.get(request.endpoint)
    if not getattr(view, "kept_whole", False) or not _anonymous_and_quiet():
        return None
    key = (request.path, request.query_string, str(get_locale()), local_today(), all_versions())
    now = utcnow()
    entry = current_app.extensions["pagecache"].get(key, now, current_app.config["PAGE_CACHE_SECONDS"])
    if entry is not None:
        return entry.response()
    if request.method == "GET":
        g.page_key, g.page_built_at = key, now  # the clock before the data, like the counters
    return None


def keep(response):
    """After a view built an answer ``serve_kept`` found no entry for: keep it if it is everyone's."""
    key = g.pop("page_key", None)
    if (key is None or response.status_code != 200 or response.direct_passthrough or response.is_streamed
            or not _anonymous_and_quiet() or request_ctx.flashes):
        return response
    body = response.get_data()
    token = g.get("csrf_token")
    parts = tuple(body.split(token.encode())) if token else (body,)
    headers = tuple((name, value) for name, value in response.headers.items() if name in KEPT_HEADERS)
    current_app.extensions["pagecache"].put(key, Kept(g.page_built_at, parts, headers))
    return response
