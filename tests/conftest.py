"""Fixtures: an app on a fresh database per test, a CSRF-aware client, factories, a real SMTP server.

SQLite (default): the schema is built once with the Alembic migrations into a
template file, and every test gets its own copy. PostgreSQL (``TEST_DATABASE_URL``):
the schema is dropped and built with the migrations once per run, and every
table is emptied after each test.
"""

import contextvars
import os
import re
import shutil
import socket
import time
from dataclasses import dataclass, field

import pytest
from aiosmtpd.controller import Controller
from flask import has_app_context
from flask.testing import FlaskClient
from flask_migrate import upgrade
from sqlalchemy import text

from accounts.models import Organisation, OrganisationKind, Role, User
from app import create_app
from core.after_response import sender
from core.db import dispose_engines
from core.extensions import db

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")
PASSWORD = "correct-horse-battery"


def base_config(url: str) -> dict:
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "SQLALCHEMY_DATABASE_URI": url,
        "AUTO_MIGRATE": False,
        "RATELIMIT_ENABLED": False,
        "MAIL_SERVER": "",
        "MAIL_SEND_AFTER_REQUEST": False,
        "BASE_URL": "http://fundus.test",
        "MAIL_FROM": "fundus@planerladen.test",
        "STAFF_EMAIL": "team@planerladen.test",
    }


def build_schema(url: str) -> None:
    """Build the schema from nothing with the migrations, as production does."""
    app = create_app(base_config(url))
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            with db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
        upgrade()
        db.engine.dispose()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    """A migrated database: the PostgreSQL test database, or an SQLite template file."""
    if TEST_DATABASE_URL:
        build_schema(TEST_DATABASE_URL)
        return TEST_DATABASE_URL
    template = tmp_path_factory.mktemp("template") / "template.sqlite"
    build_schema(f"sqlite:///{template}")
    return f"sqlite:///{template}"


@pytest.fixture
def app_config(database_url, tmp_path):
    uploads = {"UPLOAD_FOLDER": str(tmp_path / "uploads")}
    if database_url.startswith("sqlite"):
        source = database_url.removeprefix("sqlite:///")
        target = tmp_path / "test.sqlite"
        shutil.copyfile(source, target)
        return base_config(f"sqlite:///{target}") | uploads
    return base_config(database_url) | uploads


@pytest.fixture
def app(app_config):
    app = create_app(app_config)
    app.test_client_class = CSRFClient
    with app.app_context():
        yield app
        sender.wait()  # mails handed over after a response are done before the tables are emptied
        db.session.remove()
        if db.engine.dialect.name == "postgresql":
            tables = ", ".join(t.name for t in db.metadata.sorted_tables)
            with db.engine.begin() as conn:
                conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        dispose_engines()


class CSRFClient(FlaskClient):
    """A test client that sends the page's CSRF token with every POST, as a browser would.

    Each request runs in an empty context, so it gets its own app context, ``g``
    and database session, as in a real server, instead of sharing the test's.
    Afterwards the test's own session starts a fresh transaction to see what
    the request wrote (and what it deferred past its response).
    """

    def open(self, *args, **kwargs):
        if has_app_context():
            db.session.rollback()  # the test holds no lock while the request runs
        response = contextvars.Context().run(super().open, *args, **kwargs)
        if not self.application.config["MAIL_SEND_AFTER_REQUEST"]:
            sender.wait()  # work the request deferred past its response (``after_response``) is done
        if has_app_context():
            db.session.rollback()
        return response

    def csrf_token(self) -> str:
        page = self.get("/imprint").get_data(as_text=True)
        return re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)

    def post(self, *args, csrf: bool = True, **kwargs):
        data = kwargs.get("data")
        if csrf and (data is None or isinstance(data, dict)):
            data = dict(data or {})
            data.setdefault("csrf_token", self.csrf_token())
            kwargs["data"] = data
        return super().post(*args, **kwargs)


@pytest.fixture
def make_app(app_config):
    """Factory for a second app on the same database with other settings; disposed afterwards."""
    made = []

    def make(**overrides):
        other = create_app(app_config | overrides)
        other.test_client_class = CSRFClient
        made.append(other)
        return other

    yield make
    for other in made:
        with other.app_context():
            dispose_engines()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


_HASHES: dict[str, str] = {}


@pytest.fixture
def make_org(app):
    """Factory: ``make_org(name=…, kind=…)`` returns a committed organisation."""
    counter = iter(range(1, 10_000))

    def make(**kw) -> Organisation:
        n = next(counter)
        kw.setdefault("name", f"Wohnungsbau Test {n} eG")
        kw.setdefault("kind", OrganisationKind.HOUSING_COMPANY)
        kw.setdefault("city", "Dortmund")
        org = Organisation(**kw)
        db.session.add(org)
        db.session.commit()
        return org

    return make


@pytest.fixture
def make_user(app, make_org):
    """Factory: ``make_user(role, organisation=…, email=…)``; the password is ``PASSWORD``."""
    counter = iter(range(1, 10_000))

    def make(role: Role | str = Role.PARTNER, organisation: Organisation | None = None, **kw) -> User:
        role = Role(role)
        n = next(counter)
        kw.setdefault("email", f"{role.value}{n}@example.org")
        kw.setdefault("name", f"{role.value.title()} Person {n}")
        if role == Role.PARTNER and organisation is None:
            organisation = make_org()
        without_password = "password_hash" in kw and kw["password_hash"] is None  # invited, never signed in
        user = User(role=role, organisation_id=organisation.id if organisation else None, **kw)
        # Hashing is slow on purpose; hash the shared test password once per run.
        if PASSWORD not in _HASHES:
            user.set_password(PASSWORD)
            _HASHES[PASSWORD] = user.password_hash
        user.password_hash = None if without_password else _HASHES[PASSWORD]
        db.session.add(user)
        db.session.commit()
        return user

    return make


def signed_in_id(user: User) -> str:
    """A sign-in for ``user`` made directly in the database; what a session cookie holds for it."""
    from accounts.sessions import open_session

    open_session(user)
    db.session.commit()
    return user.get_id()


@pytest.fixture
def login(client):
    """Sign a user in through the real login form."""

    def do(user: User, password: str = PASSWORD, the_client=None):
        c = the_client or client
        response = c.post("/login", data={"email": user.email, "password": password})
        assert response.status_code == 302, response.get_data(as_text=True)
        return response

    return do


@dataclass
class SMTPServer:
    """A real SMTP server on 127.0.0.1 that keeps what it receives."""

    port: int
    messages: list = field(default_factory=list)
    controller: Controller | None = None

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        return "250 OK"

    def start(self) -> None:
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def wait_for(self, count: int, timeout: float = 5.0) -> list:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.messages


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server(app):
    """A running SMTP server, with the app configured to deliver to it."""
    server = SMTPServer(port=free_port())
    server.start()
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=server.port)
    yield server
    server.stop()


@pytest.fixture
def smtp_down(app):
    """An SMTP server that is not running yet; ``start()`` brings it up on the configured port."""
    server = SMTPServer(port=free_port())
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=server.port, MAIL_TIMEOUT=2)
    yield server
    server.stop()



@pytest.fixture
def make_material(app):
    """Factory: a material with editions ``{"de": stock}`` or, if returnable, units per edition.

    ``make_material(returnable=True, units={"de": ["AK-01", "AK-02"]}, buffer_days=2)``
    """
    from materials.models import Edition, Lending, Material, MaterialKind, Unit

    counter = iter(range(1, 10_000))

    def make(returnable: bool = False, editions: dict | None = None, units: dict | None = None, **kw):
        n = next(counter)
        kw.setdefault("title", f"Testmaterial {n}")
        kw.setdefault("kind", MaterialKind.EXHIBITION if returnable else MaterialKind.BROCHURE)
        material = Material(lending=Lending.RETURNABLE if returnable else Lending.GIVEAWAY, **kw)
        if returnable:
            for language, codes in (units or {"de": [f"U-{n}-1"]}).items():
                edition = Edition(language=language)
                edition.units = [Unit(inventory_code=code) for code in codes]
                material.editions.append(edition)
        else:
            for language, stock in (editions or {"de": 0}).items():
                material.editions.append(Edition(language=language, stock_on_hand=stock))
        material.refresh_search_text()
        db.session.add(material)
        db.session.commit()
        return material

    return make


def run_concurrently(app, count: int, work) -> list:
    """Run ``work(i)`` in ``count`` threads released at once, each with its own app context and session.

    Returns what each call returned, or the exception it raised.
    """
    import threading

    barrier = threading.Barrier(count)
    results: list = [None] * count
    db.session.rollback()  # the test itself holds no lock while the threads run

    def run(i):
        with app.app_context():
            barrier.wait()
            try:
                results[i] = work(i)
                db.session.commit()
            except Exception as exc:  # collected and asserted by the test
                db.session.rollback()
                results[i] = exc
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.fixture
def make_training(app):
    """Factory: a published training with ``sessions`` (list of (start, end) aware datetimes) and ``seats``."""
    from datetime import UTC, datetime, timedelta

    from events.models import Training, TrainingFormat, TrainingSession, TrainingStatus

    def make(seats: int = 10, sessions=None, **kw):
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=14)
        sessions = sessions or [(start, start + timedelta(hours=6))]
        kw.setdefault("title", "Diskriminierungsfreie Vermietung")
        kw.setdefault("format", TrainingFormat.IN_PERSON)
        kw.setdefault("status", TrainingStatus.PUBLISHED)
        kw.setdefault("venue", "Planerladen, Schützenstraße 42, Dortmund")
        training = Training(seats=seats, **kw)
        training.sessions = [TrainingSession(starts_at=a, ends_at=b) for a, b in sessions]
        db.session.add(training)
        db.session.commit()
        return training

    return make


def in_transaction(connection) -> bool:
    """Whether the database connection under a SQLAlchemy connection is inside a transaction, as the
    driver sees it (psycopg: its transaction status; sqlite3: its flag)."""
    driver = connection.connection.driver_connection
    status = getattr(getattr(driver, "info", None), "transaction_status", None)
    return driver.in_transaction if status is None else status != 0


def mail_text(message) -> str:
    """The plain-text body of an outbox message, decoded as a mail client would."""
    import email
    import email.policy

    return email.message_from_bytes(message.raw, policy=email.policy.default).get_body(("plain",)).get_content()


def without_tokens(page: str) -> str:
    """A page without what differs on every request (the CSRF token)."""
    return re.sub(r'(name="csrf[-_]token" (?:content|value)=)"[^"]+"', r"\1''", page)


def all_rows() -> dict[str, list]:
    """Every row of every table, to show what a request changed."""
    return {table.name: sorted(map(repr, db.session.execute(table.select()).all()))
            for table in db.metadata.sorted_tables}
