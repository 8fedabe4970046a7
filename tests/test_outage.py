"""A database outage: 503 with Retry-After instead of 500, one log line when it begins and one when it
ends, and the site back by itself afterwards."""

import logging
import socket
import threading

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from accounts.models import Role
from core.extensions import db
from events.models import Registration
from tests.conftest import TEST_DATABASE_URL

PAGES = ["/materials/", "/events/", "/events/archive", "/events/calendar.ics", "/materials/1"]


def outage_lines(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "fundus.database"]


def test_an_unreachable_database_answers_503_with_retry_after_and_logs_once(make_app, caplog):
    """Nothing listens where the database should be: every page that needs it says so, in the
    visitor's language, and the log gets one line instead of a traceback per request."""
    down = make_app(SQLALCHEMY_DATABASE_URI="postgresql+psycopg://fundus@127.0.0.1:1/fundus")
    client = down.test_client()
    with caplog.at_level(logging.INFO):
        responses = [client.get(path) for path in PAGES * 4]
        posted = client.post("/events/1", data={"name": "A", "email": "a@example.org", "consent": "y"})
    assert [r.status_code for r in responses] == [503] * len(responses)
    assert posted.status_code == 503
    assert all(r.headers["Retry-After"] == "30" for r in responses)
    assert "kann ihre Datenbank gerade nicht erreichen" in responses[0].get_data(as_text=True)
    client.set_cookie("lang", "en", domain="localhost")
    english = client.get("/materials/").get_data(as_text=True)
    assert "cannot reach its database" in english
    lines = outage_lines(caplog)
    assert len(lines) == 1 and lines[0].levelno == logging.ERROR and lines[0].exc_info is None
    assert not [r for r in caplog.records if r.exc_info]  # no traceback at all
    assert client.get("/imprint").status_code == 200  # pages that need no database still work


class Proxy:
    """A TCP proxy to the database that can be cut off and brought back, as a restart would."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.sockets: list[socket.socket] = []
        self.listener: socket.socket | None = None
        self.port = 0
        self.start()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(32)
        self.port = listener.getsockname()[1]
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _address = listener.accept()
            except OSError:
                return  # stopped
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self) -> None:
        """Refuse new connections and cut the open ones."""
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() waiting in the other thread (Linux)
        except OSError:
            pass
        self.listener.close()
        for s in self.sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self.sockets = []


@pytest.mark.skipif(not TEST_DATABASE_URL, reason="PostgreSQL only: needs a database server to restart")
def test_the_site_comes_back_by_itself_after_the_database_restarts(make_app, make_user, make_training, login,
                                                                   caplog):
    url = make_url(TEST_DATABASE_URL)
    proxy = Proxy(url.host or "127.0.0.1", url.port or 5432)
    try:
        via_proxy = make_app(SQLALCHEMY_DATABASE_URI=url.set(port=proxy.port).render_as_string(hide_password=False))
        client = via_proxy.test_client()
        training = make_training(seats=5)
        staff = make_user(Role.STAFF)
        login(staff, the_client=client)
        assert client.get(f"/events/staff/{training.id}").status_code == 200
        visitor = via_proxy.test_client()  # anonymous: the change counters come through their own pool
        assert visitor.get("/events/").status_code == 200 and visitor.get("/events/").status_code == 200
        caplog.clear()
        with caplog.at_level(logging.INFO):
            proxy.stop()
            during = [client.get(f"/events/staff/{training.id}"), client.get("/account"),
                      *[client.get(path) for path in PAGES],
                      client.post(f"/events/{training.id}", data={"name": "Ada", "email": "ada@example.org",
                                                                  "consent": "y"})]
            assert [r.status_code for r in during] == [503] * len(during)
            proxy.start()
            after = client.get(f"/events/staff/{training.id}")  # still signed in, no restart of the app
            assert after.status_code == 200 and "Teilnehmende" in after.get_data(as_text=True)
            assert visitor.get("/events/").status_code == 200  # its pooled connection was dropped: read again
            registered = client.post(f"/events/{training.id}", data={"name": "Ada", "email": "ada@example.org",
                                                                       "consent": "y"})
            assert registered.status_code == 200
        lines = [r.getMessage() for r in outage_lines(caplog)]
        assert len(lines) == 2 and lines[0].startswith("Database unavailable") and "available again" in lines[1]
        assert not [r for r in caplog.records if r.exc_info]
        db.session.rollback()
        assert db.session.scalar(select(func.count()).select_from(Registration)) == 1  # the refused one left nothing
    finally:
        proxy.stop()
