"""Running Fundus on several hosts (issue 20): files in the database, limits in Redis, jobs claimed once,
``/healthz`` and the staff's warning about stuck mail."""

import hashlib
import io
import logging
import os
from datetime import UTC, datetime, timedelta

import pytest
from PIL import Image
from sqlalchemy import func, select, text, update

from accounts.models import Role
from core.extensions import db
from core.jobs import JOBS, JobRun, job_names, run_all
from core.mail import OutboxMessage, OutboxStatus, queue_mail
from core.models import utcnow
from materials import files
from materials.models import StoredFile
from tests.conftest import free_port, run_concurrently

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def jpeg(width: int = 900, height: int = 1200, colour=(11, 85, 99)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "JPEG")
    return out.getvalue()


def stored_names() -> set[str]:
    return set(db.session.scalars(select(StoredFile.name)))


# Files ---------------------------------------------------------------------------------------------------


def test_files_are_stored_in_the_database_and_replaced_in_one_transaction(app, client, make_material, make_user):
    staff = make_user(Role.STAFF)
    material = make_material(title="Wegweiser")
    files.save_files(material.id, staff, cover=jpeg(), pdf=b"%PDF-1.7\n%eins\n")
    db.session.refresh(material)
    first = {f"{material.cover_path}.jpg", f"{material.cover_path}-thumb.jpg", material.pdf_path}
    assert stored_names() == first
    assert not os.path.exists(app.config["UPLOAD_FOLDER"]) or not os.listdir(app.config["UPLOAD_FOLDER"])

    # A refused upload stores nothing, and the files before stay.
    with pytest.raises(Exception, match="PDF"):
        files.save_files(material.id, staff, cover=jpeg(colour=(200, 0, 0)), pdf=b"<html>")
    assert stored_names() == first

    files.save_files(material.id, staff, cover=jpeg(colour=(0, 120, 0)))
    db.session.refresh(material)
    second = {f"{material.cover_path}.jpg", f"{material.cover_path}-thumb.jpg", material.pdf_path}
    assert second != first and stored_names() == second  # the old cover went with the change


def test_a_file_is_served_with_its_digest_and_cached_for_a_year_under_its_versioned_address(
        client, make_material, make_user):
    material = make_material(title="Wegweiser")
    files.save_files(material.id, make_user(Role.STAFF), cover=jpeg(), pdf=b"%PDF-1.7\n%eins\n")
    db.session.refresh(material)
    page = client.get(f"/materials/{material.id}").get_data(as_text=True)
    version = files.version(material.cover_path)
    assert f"cover.jpg?v={version}" in page and f"download.pdf?v={files.version(material.pdf_path)}" in page

    kept = client.get(f"/materials/{material.id}/cover.jpg?v={version}")
    content = db.session.scalar(select(StoredFile.content).where(StoredFile.name == f"{material.cover_path}.jpg"))
    assert kept.status_code == 200 and kept.get_data() == content and kept.mimetype == "image/jpeg"
    assert kept.cache_control.max_age == 365 * 24 * 3600 and kept.cache_control.immutable
    assert kept.cache_control.public and kept.headers["ETag"]
    unversioned = client.get(f"/materials/{material.id}/cover.jpg")
    assert unversioned.cache_control.max_age == 86400 and not unversioned.cache_control.immutable

    again = client.get(f"/materials/{material.id}/cover.jpg?v={version}",
                       headers={"If-None-Match": kept.headers["ETag"]})
    assert again.status_code == 304 and again.get_data() == b""
    pdf = client.get(f"/materials/{material.id}/download.pdf")
    assert pdf.get_data() == b"%PDF-1.7\n%eins\n" and "attachment" in pdf.headers["Content-Disposition"]
    part = client.get(f"/materials/{material.id}/download.pdf", headers={"Range": "bytes=0-4"})
    assert part.status_code == 206 and part.get_data() == b"%PDF-"  # a PDF viewer asks for parts
    assert client.get(f"/materials/{material.id}/cover.jpg?size=thumb").status_code == 200


def test_upgrading_moves_the_files_of_the_upload_folder_into_the_database(tmp_path):
    """SQLite upgrades itself on the first request: the covers of the older Fundus must not vanish with it."""
    from flask_migrate import downgrade, upgrade

    from app import create_app
    from tests.conftest import base_config

    folder = tmp_path / "uploads"
    app = create_app(base_config(f"sqlite:///{tmp_path / 'old.sqlite'}") | {"UPLOAD_FOLDER": str(folder)})
    with app.app_context():
        upgrade(revision="d5a7c3e9f182")  # the release before files moved into the database
        from materials.models import Lending, Material, MaterialKind

        old = Material(title="Alt", kind=MaterialKind.BROCHURE, lending=Lending.GIVEAWAY,  # its table is unchanged
                       cover_path="cover-1-0a1b2c3d", pdf_path="pdf-1-4e5f6a7b.pdf")
        old.refresh_search_text()
        db.session.add(old)
        db.session.commit()
        folder.mkdir()
        for name, data in {"cover-1-0a1b2c3d.jpg": jpeg(), "cover-1-0a1b2c3d-thumb.jpg": jpeg(90, 120),
                           "pdf-1-4e5f6a7b.pdf": b"%PDF-1.4\n"}.items():
            (folder / name).write_bytes(data)
        upgrade()
        assert stored_names() == {"cover-1-0a1b2c3d.jpg", "cover-1-0a1b2c3d-thumb.jpg", "pdf-1-4e5f6a7b.pdf"}
        answer = app.test_client().get("/materials/1/download.pdf")
        assert answer.status_code == 200 and answer.get_data() == b"%PDF-1.4\n"
        # And back: the files are written into the folder the older Fundus reads.
        for path in folder.iterdir():
            path.unlink()
        db.session.remove()
        downgrade(revision="d5a7c3e9f182")
        assert sorted(p.name for p in folder.iterdir()) == ["cover-1-0a1b2c3d-thumb.jpg", "cover-1-0a1b2c3d.jpg",
                                                           "pdf-1-4e5f6a7b.pdf"]
        assert (folder / "pdf-1-4e5f6a7b.pdf").read_bytes() == b"%PDF-1.4\n"
        db.engine.dispose()


def test_files_of_an_older_fundus_are_imported_from_the_folder_once(app, runner, make_material, tmp_path):
    folder = tmp_path / "old-uploads"
    folder.mkdir()
    material = make_material(title="Alt")
    material.cover_path, material.pdf_path = f"cover-{material.id}-0a1b2c3d", f"pdf-{material.id}-4e5f6a7b.pdf"
    db.session.commit()
    (folder / f"{material.cover_path}.jpg").write_bytes(jpeg())
    (folder / material.pdf_path).write_bytes(b"%PDF-1.4\n")  # the thumbnail is missing

    result = runner.invoke(args=["files", "import", "--folder", str(folder)])
    assert result.exit_code == 1, result.output  # a file the materials name is missing: a script must notice
    assert "2 files imported into the database, 1 missing" in result.output
    assert f"missing: {material.cover_path}-thumb.jpg" in result.output
    assert stored_names() == {f"{material.cover_path}.jpg", material.pdf_path}
    assert db.session.scalar(select(StoredFile.digest).where(StoredFile.name == material.pdf_path)) == \
        hashlib.sha256(b"%PDF-1.4\n").hexdigest()
    assert "0 files imported" in runner.invoke(args=["files", "import", "--folder", str(folder)]).output
    assert sorted(os.listdir(folder)) == sorted([f"{material.cover_path}.jpg", material.pdf_path])  # left as it was


# Jobs ----------------------------------------------------------------------------------------------------


def outcome(name: str) -> JobRun:
    db.session.expire_all()
    return db.session.get(JobRun, name)


def test_every_run_is_recorded_and_a_failing_job_stops_neither_the_others_nor_the_record(app, runner, monkeypatch):
    result = runner.invoke(args=["jobs", "run"])
    assert result.exit_code == 0, result.output
    for name in job_names():
        run = outcome(name)
        assert run.last_ok and run.last_success_at and run.running_since is None, name

    def broken() -> str:
        raise RuntimeError("disk full")

    monkeypatch.setattr("core.jobs.JOBS", [("broken", broken), *JOBS])
    before = outcome("mail").last_success_at
    result = runner.invoke(args=["jobs", "run"])
    assert result.exit_code == 1 and "broken: failed: RuntimeError: disk full" in result.output
    assert outcome("broken").last_ok is False and outcome("broken").last_success_at is None
    assert outcome("broken").last_report == "failed: RuntimeError: disk full"
    assert outcome("mail").last_success_at > before  # the others ran


def test_a_job_running_elsewhere_is_skipped_until_its_lease_runs_out(app, runner):
    run_all()
    db.session.execute(update(JobRun).where(JobRun.name == "training reminders")
                       .values(running_since=utcnow(), running_on="host-b:17:abc"))
    db.session.commit()
    assert "training reminders: skipped: running on host-b:17:abc" in runner.invoke(args=["jobs", "run"]).output

    stale = utcnow() - timedelta(minutes=app.config["JOB_LEASE_MINUTES"] + 1)
    db.session.execute(update(JobRun).where(JobRun.name == "training reminders").values(running_since=stale))
    db.session.commit()
    assert "training reminders: 0 sent" in runner.invoke(args=["jobs", "run"]).output
    assert outcome("training reminders").running_since is None


def test_each_job_is_claimed_by_exactly_one_of_several_runs_asking_at_once(app):
    from core.jobs import claim, new_runner

    names = [name for name, _ in JOBS]
    runners = [new_runner() for _ in range(6)]

    def claim_all(i: int) -> list[str]:  # each run asks for the jobs in another order
        order = names[i % len(names):] + names[:i % len(names)]
        return [name for name in (order if i % 2 else reversed(order)) if claim(name, runners[i])]

    won = run_concurrently(app, len(runners), claim_all)
    assert not [w for w in won if isinstance(w, Exception)], won
    assert sorted(name for names_won in won for name in names_won) == sorted(names)  # each once, by one run
    db.session.expire_all()
    for i, names_won in enumerate(won):
        for name in names_won:
            assert db.session.get(JobRun, name).running_on == runners[i]


def test_runs_started_at_once_send_every_mail_and_reminder_once(app, make_training, make_user, smtp_server):
    from events import registrations
    from events.models import Registration, RegistrationStatus

    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    training = make_training(sessions=[(soon, soon + timedelta(hours=2))], title="Bald")
    for n in range(3):
        registrations.register(training.id, f"Person {n}", f"p{n}@example.org")
    db.session.execute(update(Registration).values(status=RegistrationStatus.CONFIRMED))
    user = make_user()
    for n in range(10):
        queue_mail(user.email, f"Nachricht {n}", "accounts/reset_password", user=user, link="x", hours=2)
    db.session.commit()
    pending = db.session.scalar(select(func.count()).select_from(OutboxMessage)
                                .where(OutboxMessage.status == OutboxStatus.PENDING))

    results = run_concurrently(app, 4, lambda _i: run_all())
    assert not [r for r in results if isinstance(r, Exception)]
    expected = pending + 3  # the mails waiting, and one reminder for each participant
    received = smtp_server.wait_for(expected)
    subjects = sorted(m.original_content.split(b"Subject: ")[1].split(b"\r\n")[0].decode() for m in received)
    assert len(received) == expected, subjects
    assert subjects.count("Erinnerung: Bald") == 3
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(OutboxMessage)
                             .where(OutboxMessage.status != OutboxStatus.SENT)) == 0  # nothing left for later
    ran = [report for result in results for name, report, _ok in result if name == "training reminders"]
    assert [r for r in ran if r != "0 sent" and not r.startswith("skipped")] == ["3 sent"]


# Health --------------------------------------------------------------------------------------------------


def test_healthz_asks_for_an_operator_until_jobs_run_and_while_mail_is_stuck(app, client, runner, make_user, login):
    first = client.get("/healthz")
    assert first.status_code == 503 and first.json["status"] == "attention"
    assert "jobs: mail has not succeeded yet (is the timer of jobs run set up?)" in first.json["problems"]
    assert first.headers["Cache-Control"] == "no-store"

    runner.invoke(args=["jobs", "run"])
    healthy = client.get("/healthz")
    assert healthy.status_code == 200, healthy.json
    assert healthy.json["status"] == "ok" and healthy.json["problems"] == []
    assert healthy.json["migrations"]["database"] == healthy.json["migrations"]["code"]
    assert healthy.json["mail"] == {"pending": 0, "oldest_pending_minutes": None, "failed": 0}

    # A mail that cannot go out: the answer says so, without saying to whom.
    user = make_user(email="geheim@example.org")
    queue_mail(user.email, "Hallo", "accounts/reset_password", user=user, link="x", hours=2)
    db.session.execute(update(OutboxMessage).values(created_at=utcnow() - timedelta(minutes=45)))
    db.session.commit()
    stuck = client.get("/healthz")
    assert stuck.status_code == 503
    assert stuck.json["problems"] == ["mail: the oldest pending mail has waited 45 minutes"]
    assert "geheim" not in stuck.get_data(as_text=True)
    login(make_user(Role.STAFF))
    overview = client.get("/requests/overview").get_data(as_text=True)
    assert "Mails warten seit 45 Minuten auf den Versand." in overview

    # Jobs that stopped running.
    db.session.execute(update(OutboxMessage).values(status=OutboxStatus.SENT))
    db.session.execute(update(JobRun).values(last_success_at=utcnow() - timedelta(minutes=31)))
    db.session.commit()
    late = client.get("/healthz").json
    assert late["status"] == "attention" and "jobs: mail has not succeeded for 31 minutes" in late["problems"]
    assert "Mails warten" not in client.get("/requests/overview").get_data(as_text=True)


def test_mail_delivery_that_reaches_no_server_is_a_failed_job(app, client, runner, make_user, smtp_down):
    runner.invoke(args=["jobs", "run"])
    user = make_user()
    queue_mail(user.email, "Hallo", "accounts/reset_password", user=user, link="x", hours=2)
    db.session.commit()
    result = runner.invoke(args=["jobs", "run"])
    assert result.exit_code == 1 and "mail: 0 sent, 1 failed" in result.output
    assert outcome("mail").last_ok is False
    db.session.execute(update(JobRun).where(JobRun.name == "mail")
                       .values(last_success_at=utcnow() - timedelta(minutes=31)))
    db.session.commit()
    assert "jobs: mail has not succeeded for 31 minutes" in client.get("/healthz").json["problems"]
    smtp_down.start()
    db.session.execute(update(OutboxMessage).values(next_attempt_at=utcnow()))
    db.session.commit()
    assert runner.invoke(args=["jobs", "run"]).exit_code == 0
    assert client.get("/healthz").status_code == 200


def test_livez_asks_only_whether_this_host_reaches_the_database(client, make_app):
    """A load balancer asks /livez: stuck mail is the site's problem, and taking every host out would not help."""
    assert client.get("/healthz").status_code == 503  # no jobs run yet
    live = client.get("/livez")
    assert live.status_code == 200 and live.json == {"status": "ok"}
    port = free_port()
    other = make_app(SQLALCHEMY_DATABASE_URI=f"postgresql+psycopg://postgres@127.0.0.1:{port}/fundus",
                     SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"connect_timeout": 2}})
    assert other.test_client().get("/livez").status_code == 503


def test_healthz_names_a_pending_migration(app, client, runner):
    runner.invoke(args=["jobs", "run"])
    code = client.get("/healthz").json["migrations"]["code"]
    db.session.execute(text("UPDATE alembic_version SET version_num = 'd5a7c3e9f182'"))
    db.session.commit()
    try:
        answer = client.get("/healthz")
        assert answer.status_code == 503
        assert answer.json["problems"] == [f"migrations: the database is at d5a7c3e9f182, the code at {code} "
                                           "(flask --app app db upgrade)"]
    finally:
        db.session.execute(text("UPDATE alembic_version SET version_num = :code"), {"code": code})
        db.session.commit()


def test_healthz_answers_503_when_the_database_is_unreachable(make_app):
    port = free_port()  # nothing listens there
    other = make_app(SQLALCHEMY_DATABASE_URI=f"postgresql+psycopg://postgres@127.0.0.1:{port}/fundus",
                     SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"connect_timeout": 2}})
    answer = other.test_client().get("/healthz")
    assert answer.status_code == 503
    assert answer.json["database"] == "unreachable" and answer.json["problems"][0].startswith("database: ")


# Limits in Redis -----------------------------------------------------------------------------------------


def redis_or_skip():
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no Redis answers at {REDIS_URL} ({exc}); set TEST_REDIS_URL")


# That the limits count across hosts through Redis is shown by tests/test_two_hosts.py with two gunicorn
# instances: two apps in one test process share Flask-Limiter's one limiter object and would pass with memory://.


def wrong_password(client, email: str) -> int:
    return client.post("/login", data={"email": email, "password": "falsch"}).status_code


def test_without_redis_requests_are_served_and_limited_per_process(make_app, make_user, caplog):
    port = free_port()  # no Redis there
    client = make_app(RATELIMIT_ENABLED=True, RATELIMIT_STORAGE_URI=f"redis://127.0.0.1:{port}",
                      LOGIN_RATE_LIMIT="3 per minute").test_client()
    email = make_user().email
    with caplog.at_level(logging.WARNING):
        codes = [wrong_password(client, email) for _ in range(4)]
    assert codes == [200, 200, 200, 429]  # served, and still limited in this process
    assert any("storage" in r.getMessage().lower() for r in caplog.records), [r.getMessage() for r in caplog.records]
    assert client.get("/").status_code == 200
