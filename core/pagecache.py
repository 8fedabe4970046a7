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

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app, g, request, session
from flask.globals import request_ctx
from flask_babel import get_locale
from flask_wtf.csrf import generate_csrf
from sqlalchemy import String, Text, delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Mapped, mapped_column

from core.changes import all_versions
from core.db import lone_read, lone_statements, unit_of_work
from core.extensions import db
from core.i18n import local_today
from core.models import utcnow
from core.security import may_be_signed_in

# The headers of a conditional request, as the WSGI environment names them.
CONDITIONS = ("HTTP_IF_NONE_MATCH", "HTTP_IF_MODIFIED_SINCE")
# A body kept at most: a large calendar feed has its own cache of built calendars (events.views), and the
# entries of a process hold at most ``PageCache.budget`` bytes together, however many addresses are asked for.
LARGEST = 2**20
# Headers an answer keeps; every other header is made again for each request by the hooks.
KEPT_HEADERS = ("Content-Type", "Content-Language", "Content-Disposition", "Content-Security-Policy",
                "Cache-Control", "ETag", "Last-Modified", "Vary", "Link")


def kept_whole(view):
    """Mark a public GET view whose answer is the same for every anonymous visitor (``core.pagecache``)."""
    view.kept_whole = True
    return view


@dataclass(frozen=True, slots=True)
class Kept:
    parts: tuple[bytes, ...]  # the body around each place of the CSRF token
    headers: tuple[tuple[str, str], ...]

    def response(self):
        # Joining at the token's places: one copy, where replacing would search the whole body again.
        body = generate_csrf().encode().join(self.parts) if len(self.parts) > 1 else self.parts[0]
        response = current_app.response_class(body, status=200, headers=list(self.headers))
        return response.make_conditional(request) if response.headers.get("ETag") else response


class PageCache:
    """What one process keeps (answers, and values such as the figures of a period), the least recently
    used dropped beyond ``size``."""

    def __init__(self, size: int, budget: int = 64 * 2**20):
        self.size, self.budget, self.bytes = size, budget, 0  # at most ``size`` entries, ``budget`` bytes of bodies
        self._entries: OrderedDict[tuple, tuple[datetime, object, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple, now: datetime, seconds: int):
        """The value kept for ``key`` if it was built within ``seconds`` before ``now``, else None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or not timedelta(0) <= now - entry[0] < timedelta(seconds=seconds):
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, key: tuple, value, built_at: datetime, size: int = 0) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            self.bytes += size - (old[2] if old else 0)
            self._entries[key] = (built_at, value, size)
            while len(self._entries) > self.size or self.bytes > self.budget:
                self.bytes -= self._entries.popitem(last=False)[1][2]

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
    return not may_be_signed_in() and "_flashes" not in session and not g.get("sign_in_ended")


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
        # A conditional request builds the whole answer, to keep it; ``keep`` answers the condition.
        g.page_conditions = {name: request.environ.pop(name) for name in CONDITIONS if name in request.environ}
    return None


def keep(response):
    """After a view built an answer ``serve_kept`` found no entry for: keep it if it is everyone's."""
    key = g.pop("page_key", None)
    if (key is None or response.status_code != 200 or response.direct_passthrough or response.is_streamed
            or not _anonymous_and_quiet() or request_ctx.flashes):
        return _answer_conditions(response)
    body = response.get_data()
    if len(body) > LARGEST:
        return _answer_conditions(response)
    token = g.get("csrf_token")
    parts = tuple(body.split(token.encode())) if token else (body,)
    headers = tuple((name, value) for name, value in response.headers.items() if name in KEPT_HEADERS)
    current_app.extensions["pagecache"].put(key, Kept(parts, headers), g.page_built_at, len(body))
    return _answer_conditions(response)


def _answer_conditions(response):
    """The conditions ``serve_kept`` took from the request, answered now (a 304 where they hold)."""
    conditions = g.pop("page_conditions", None)
    if conditions:
        request.environ.update(conditions)
        for parsed in ("if_none_match", "if_modified_since"):  # parsed without them: parse again
            request.__dict__.pop(parsed, None)
        if response.status_code == 200 and response.headers.get("ETag"):
            return response.make_conditional(request)
    return response


class SharedValue(db.Model):
    """A value ``kept_value`` shares between processes and hosts (JSON), under the digest of its key and every
    change counter: a value in this table is right for as long as its key can be asked for. Old rows are
    removed by ``jobs run`` (``forget_shared_values``)."""

    __tablename__ = "shared_values"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    value: Mapped[str] = mapped_column(Text)


@dataclass(frozen=True)
class Codec:
    """How a shared value becomes JSON and back."""

    dump: Callable[[object], object]
    load: Callable[[object], object]


def kept_value(key: tuple, build, shared: Codec | None = None):
    """``build()``, kept in this process under ``key`` and every change counter for ``PAGE_CACHE_SECONDS``
    (a value that depends on the data the counters count, and on the time by less than that): the figures
    of a period, asked again for the exports or by the next person, are not counted again. With ``shared``,
    a value one process built is also read by every other process and host (``SharedValue``, one statement),
    so a value that takes long to build (a year's figures) is built once after each change, not once per
    worker. ``key`` must then hold everything the value depends on besides the counters: it is not limited
    to ``PAGE_CACHE_SECONDS``."""
    cache = current_app.extensions.get("pagecache")
    if cache is None:
        return build()
    # The counters before the data, as for answers, and in the session's transaction: on SQLite a request's
    # snapshot may be older than a read on another connection, and a value must never be older than its key.
    key = ("value", *key, all_versions(in_session=True))
    now = utcnow()
    value = cache.get(key, now, current_app.config["PAGE_CACHE_SECONDS"])
    if value is not None:
        return value
    digest = hashlib.sha256(repr(key).encode()).hexdigest() if shared else None
    if shared:
        text = lone_read(lambda connection: connection.execute(
            select(SharedValue.value).where(SharedValue.key == digest)).scalar())
        value = None if text is None else shared.load(json.loads(text))
    if value is None:
        value = build()
        if shared:
            _share(digest, json.dumps(shared.dump(value), separators=(",", ":")))
    cache.put(key, value, now)
    return value


def _share(digest: str, text: str) -> None:
    """Store a shared value on a connection of its own, outside the request's transaction (nothing of the
    request is committed with it); two processes storing the same key at once store it once. A cache write is
    worth no wait: on SQLite, when another writer holds the database for more than a second, or this thread's
    own session holds it, the value stays kept in this process only."""
    sqlite = db.engine.dialect.name == "sqlite"
    if sqlite and not _session_lets_others_write():
        return
    insert = sqlite_insert if sqlite else postgresql_insert
    statement = (insert(SharedValue.__table__).values(key=digest, value=text, created_at=utcnow())
                 .on_conflict_do_nothing())
    try:
        with lone_statements() as connection:
            connection.info["read_only"] = False  # this connection's last request's flag (core.db): a cache may write
            if sqlite:
                connection.exec_driver_sql("PRAGMA busy_timeout = 1000")
            try:
                connection.execute(statement)
                connection.commit()
            finally:
                if sqlite:
                    connection.exec_driver_sql("PRAGMA busy_timeout = 30000")
    except OperationalError as exc:
        current_app.logger.info("A shared value was not stored: %s", type(exc.orig).__name__)


def _session_lets_others_write() -> bool:
    """SQLite: whether another connection of this thread may write now. A GET's transaction only reads (WAL lets a
    writer go on beside it), and so does one in ``core.db.reading_only`` (the job that counts ahead); any other
    transaction of the session holds the write lock, and the value is then not shared."""
    session = db.session()
    return not session.in_transaction() or bool(session.connection().info.get("read_only"))


@unit_of_work
def forget_shared_values(older_than: timedelta = timedelta(days=1)) -> int:
    """Remove shared values stored more than ``older_than`` ago (their keys name counters long passed)."""
    return db.session.execute(delete(SharedValue).where(SharedValue.created_at < utcnow() - older_than)).rowcount
