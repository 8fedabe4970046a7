"""The database layer: migrations build the schema the models describe, SQLite is set up safely."""

import sqlite3
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from accounts.models import Organisation, OrganisationKind, Role, User
from app import create_app
from core.db import writes
from core.extensions import db
from tests.conftest import base_config, in_transaction


def test_migrations_match_models(app):
    """Every model change has its migration: the migrated schema equals the models."""
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, db.metadata)
    assert diff == []


def test_sqlite_pragmas(app):
    if db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite only")
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


def test_lone_statements_run_outside_a_transaction_and_leave_the_pool_as_it_was(app):
    """The conditional feed's one read needs no BEGIN/ROLLBACK; afterwards the pooled connection still
    begins its transactions as configured (SQLAlchemy's AUTOCOMMIT level, once reset, would have
    turned pysqlite's own transaction handling back on)."""
    from core.changes import ChangeCounter, bump
    from core.db import lone_statements

    bump(db.session, "test")
    db.session.commit()
    with lone_statements() as connection:
        assert connection.scalar(text("SELECT value FROM change_counters WHERE name = 'test'")) == 1
        assert in_transaction(connection) is False
    db.session.remove()
    with db.engine.connect() as connection:
        driver = connection.connection.driver_connection
        if db.engine.dialect.name == "sqlite":
            assert driver.isolation_level is None
        else:
            assert driver.autocommit is False
        assert connection.scalar(text("SELECT 1")) == 1
        assert in_transaction(connection) is True
    assert db.session.get(ChangeCounter, "test").value == 1


def test_sqlite_pages_read_while_another_process_writes(app, client, make_material):
    """GET requests begin DEFERRED: a writer holding SQLite's write lock does not hold up reading pages
    (with IMMEDIATE they waited for it, so four workers served one page at a time)."""
    if db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite only")
    make_material(title="Lesbar beim Schreiben")
    db.session.commit()
    path = app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///")
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA busy_timeout = 0")
    try:
        writer.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        response = client.get("/materials/")
        assert response.status_code == 200
        assert "Lesbar beim Schreiben" in response.get_data(as_text=True)
        assert time.monotonic() - started < 5  # the busy timeout is 30 s
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_writing_get_view_must_say_so(app, client, caplog):
    """Under test, a GET view that writes without ``@writes`` fails loudly instead of risking
    SQLITE_BUSY_SNAPSHOT in production; a marked one takes the write lock."""
    if db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite only")

    def unmarked():
        db.session.execute(text("UPDATE users SET name = name"))
        db.session.commit()
        return "ok"

    app.add_url_rule("/__unmarked", view_func=unmarked)
    app.add_url_rule("/__marked", endpoint="marked", view_func=writes(lambda: unmarked()))
    assert client.get("/__unmarked").status_code == 500
    assert "mark the view with @writes" in caplog.text
    assert client.get("/__marked").get_data(as_text=True) == "ok"


def test_first_request_creates_sqlite_database(tmp_path):
    """The embedded database needs no set-up command: the first request migrates it."""
    path = tmp_path / "fresh.sqlite"
    config = base_config(f"sqlite:///{path}") | {"AUTO_MIGRATE": True}
    app = create_app(config)
    response = app.test_client().get("/")
    assert response.status_code == 200
    with app.app_context():
        tables = set(inspect(db.engine).get_table_names())
        db.engine.dispose()
    assert {"users", "organisations", "outbox_messages", "alembic_version"} <= tables


def test_foreign_keys_are_enforced(app):
    user = User(email="x@example.org", name="X", role=Role.PARTNER, organisation_id=9999)
    db.session.add(user)
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()


def test_partner_needs_organisation_in_database(app):
    """The check constraint holds even if the code forgets it."""
    db.session.add(User(email="y@example.org", name="Y", role=Role.PARTNER))
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()


def test_datetimes_come_back_aware_utc(app):
    org = Organisation(name="Zeit eG", kind=OrganisationKind.OTHER)
    db.session.add(org)
    db.session.commit()
    local = datetime(2026, 3, 29, 3, 30, tzinfo=timezone(timedelta(hours=2)))
    org.created_at = local
    db.session.commit()
    db.session.expire_all()
    stored = db.session.get(Organisation, org.id).created_at
    assert stored.tzinfo is not None
    assert stored == local
    assert stored.utcoffset() == timedelta(0)


def test_naive_datetimes_are_refused(app):
    org = Organisation(name="Naiv eG", kind=OrganisationKind.OTHER, created_at=datetime(2026, 1, 1))
    db.session.add(org)
    with pytest.raises(Exception, match="naive datetime"):
        db.session.commit()
    db.session.rollback()


def test_postgres_url_is_normalised():
    from core.config import normalise_database_url

    assert normalise_database_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    assert normalise_database_url("postgresql://u@h/d") == "postgresql+psycopg://u@h/d"
    assert normalise_database_url("postgresql+psycopg://u@h/d") == "postgresql+psycopg://u@h/d"
    assert normalise_database_url("sqlite:///x") == "sqlite:///x"


def test_configuration_layers(tmp_path, monkeypatch):
    """Defaults, then instance/config.py, then the environment."""
    from flask import Flask

    from core.config import load_config

    (tmp_path / "config.py").write_text('ORG_NAME = "Agentur Nord"\nMAIL_PORT = 2525\nORG_PHONE = "1"\n')
    monkeypatch.setenv("MAIL_PORT", "587")
    monkeypatch.setenv("MAIL_USE_TLS", "true")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("SECRET_KEY", raising=False)
    flask_app = Flask("t", instance_path=str(tmp_path), instance_relative_config=True)
    load_config(flask_app, None)
    cfg = flask_app.config
    assert cfg["ORG_NAME"] == "Agentur Nord"  # from the instance file
    assert cfg["MAIL_PORT"] == 587  # the environment wins over the file
    assert cfg["MAIL_USE_TLS"] is True
    assert cfg["ORG_EMAIL"] == "integration@planerladen.de"  # default
    assert cfg["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'fundus.sqlite'}"
    # A secret key is generated once and kept.
    key = cfg["SECRET_KEY"]
    assert len(key) >= 32 and (tmp_path / "secret_key").read_text() == key
    again = Flask("t", instance_path=str(tmp_path), instance_relative_config=True)
    load_config(again, None)
    assert again.config["SECRET_KEY"] == key
    assert cfg["SESSION_COOKIE_HTTPONLY"] and cfg["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert cfg["SESSION_COOKIE_SECURE"] is False


def test_aware_default_is_evaluated_per_row(app):
    first = Organisation(name="Erste eG", kind=OrganisationKind.OTHER)
    db.session.add(first)
    db.session.commit()
    second = Organisation(name="Zweite eG", kind=OrganisationKind.OTHER)
    db.session.add(second)
    db.session.commit()
    assert second.created_at >= first.created_at
    assert abs(datetime.now(UTC) - second.created_at) < timedelta(minutes=1)
    assert db.session.execute(text("SELECT count(*) FROM organisations")).scalar() == 2


def test_downgrade_and_upgrade_keep_the_booking_guard(tmp_path):
    """Every migration can be undone and redone, and the overlap guard survives (SQLite rebuilds tables)."""
    from datetime import date

    from flask_migrate import downgrade, upgrade

    from materials.models import Booking, Edition, Lending, Material, MaterialKind, Unit

    app = create_app(base_config(f"sqlite:///{tmp_path / 'roundtrip.sqlite'}"))
    with app.app_context():
        upgrade()
        downgrade(revision="7abc98dbceb9")
        upgrade()
        material = Material(title="K", kind=MaterialKind.EXHIBITION, lending=Lending.RETURNABLE)
        material.editions = [Edition(language="de", units=[Unit(inventory_code="R-1")])]
        db.session.add(material)
        db.session.commit()
        unit_id = material.editions[0].units[0].id
        db.session.add(Booking(unit_id=unit_id, starts_on=date(2027, 1, 1), ends_on=date(2027, 1, 3),
                               blocked_until=date(2027, 1, 5)))
        db.session.commit()
        db.session.add(Booking(unit_id=unit_id, starts_on=date(2027, 1, 4), ends_on=date(2027, 1, 6),
                               blocked_until=date(2027, 1, 8)))
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()
        downgrade(revision="base")
        assert inspect(db.engine).get_table_names() == ["alembic_version"]
        db.engine.dispose()


def test_a_deadlock_is_retried_and_both_transactions_succeed(app, make_org):
    """Two units of work take two rows in opposite order and wait for each other: PostgreSQL aborts
    one as a deadlock, ``unit_of_work`` runs it again, and both changes are there."""
    import threading

    from sqlalchemy import update

    from core.db import unit_of_work

    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only: SQLite serialises writers, so they cannot deadlock")
    first, second = make_org().id, make_org().id
    barrier = threading.Barrier(2, timeout=10)
    attempts = []

    @unit_of_work
    def touch(order, text_):
        attempts.append(text_)
        for n, org_id in enumerate(order):
            db.session.execute(update(Organisation).where(Organisation.id == org_id)
                               .values(notes=Organisation.notes + text_))
            if n == 0 and attempts.count(text_) == 1:
                barrier.wait()  # both hold their first row before asking for the second

    db.session.rollback()
    errors = []

    def run(order, text_):
        with app.app_context():
            try:
                touch(order, text_)
            except Exception as exc:  # reported below
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=args) for args in (([first, second], "a"), ([second, first], "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(attempts) == 3  # one of the two ran twice
    notes = sorted(db.session.scalars(select(Organisation.notes).where(Organisation.id.in_([first, second]))))
    assert [sorted(n) for n in notes] == [["a", "b"], ["a", "b"]]


def test_only_conflicts_between_transactions_are_retried(app):
    from sqlalchemy.exc import OperationalError

    from core.db import retryable, unit_of_work

    class Deadlock(Exception):
        sqlstate = "40P01"

    class Other(Exception):
        sqlstate = "23505"

    busy = sqlite3.OperationalError("database is locked")
    busy.sqlite_errorcode = sqlite3.SQLITE_BUSY
    assert retryable(OperationalError("x", {}, Deadlock())) and retryable(OperationalError("x", {}, busy))
    assert not retryable(IntegrityError("x", {}, Other()))
    calls = []

    @unit_of_work
    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise OperationalError("UPDATE …", {}, Deadlock())
        return "done"

    assert flaky() == "done" and len(calls) == 3

    @unit_of_work
    def broken():
        calls.append(2)
        raise IntegrityError("INSERT …", {}, Other())

    with pytest.raises(IntegrityError):
        broken()
    assert calls.count(2) == 1


def test_the_publication_is_taken_from_the_audit_trail_when_the_column_arrives(tmp_path):
    """Migration d5a7c3e9f182: a cancelled training with a "publish" entry was public (and stays so), one
    without was a draft (and stays private); a published one without an entry counts from its creation."""
    from flask_migrate import downgrade, upgrade

    app = create_app(base_config(f"sqlite:///{tmp_path / 'published.sqlite'}"))
    with app.app_context():
        upgrade()
        downgrade(revision="5e81c4a8b531")
        with db.engine.begin() as conn:
            for id_, status in ((1, "published"), (2, "cancelled"), (3, "cancelled"), (4, "draft")):
                conn.execute(text(
                    "INSERT INTO trainings (id, title, description, target_groups, format, venue, address, online_link,"
                    " trainers, language, seats, seats_taken, status, ask_accessibility, ask_dietary, free_question,"
                    " sequence, created_at, updated_at) VALUES (:id, 'T', '', '', 'online', '', '', '', '', 'de', 5, 0,"
                    " :status, 0, 0, '', 0, '2026-01-0' || :id || ' 10:00:00', '2026-01-01 10:00:00')"),
                    {"id": id_, "status": status})
            conn.execute(text(
                "INSERT INTO audit_entries (created_at, actor_role, action, object_type, object_id, from_state,"
                " to_state, reason, details) VALUES ('2026-02-01 09:00:00', 'staff', 'publish', 'training', 2,"
                " 'draft', 'published', '', '')"))
        upgrade()
        with db.engine.connect() as conn:
            published = dict(conn.execute(text("SELECT id, published_at FROM trainings ORDER BY id")).all())
        assert published[1].startswith("2026-01-01 10:00:00")
        assert published[2].startswith("2026-02-01 09:00:00")
        assert published[3] is None and published[4] is None
        db.engine.dispose()
