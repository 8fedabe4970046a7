"""Running Fundus on several hosts (issue 20): files in the database, limits in Redis, jobs claimed once,
``/healthz`` and the staff's warning about stuck mail."""

import hashlib
import io
import logging
import os
import secrets
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
from tests.conftest import PASSWORD, free_port, run_concurrently

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
    assert client.get(f"/materials/{material.id}/cover.jpg?size=thumb").status_code == 200


def test_files_of_an_older_fundus_are_imported_from_the_folder_once(app, runner, make_material, tmp_path):
    folder = tmp_path / "old-uploads"
    folder.mkdir()
    material = make_material(title="Alt")
    material.cover_path, material.pdf_path = f"cover-{material.id}-0a1b2c3d", f"pdf-{material.id}-4e5f6a7b.pdf"
    db.session.commit()
    (folder / f"{material.cover_path}.jpg").write_bytes(jpeg())
    (folder / material.pdf_path).write_bytes(b"%PDF-1.4\n")  # the thumbnail is missing

    result = runner.invoke(args=["files", "import", "--folder", str(folder)])
    assert result.exit_code == 0, result.output
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
    ran = [report for result in results for name, report, _ok in result if name == "training reminders"]
    assert sorted(r for r in ran if not r.startswith("skipped")) in (["3 sent"], ["0 sent", "3 sent"],
                                                                       ["0 sent", "0 sent", "3 sent"],
                                                                       ["0 sent", "0 sent", "0 sent", "3 sent"])


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
    assert healthy.json["mail"] == {"pending": 0, "oldest_pending_minutes": None}

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


def wrong_password(client, email: str) -> int:
    return client.post("/login", data={"email": email, "password": "falsch"}).status_code


def test_a_limit_counted_on_one_host_holds_on_the_other(make_app, make_user):
    redis_or_skip()
    shared = {"RATELIMIT_ENABLED": True, "RATELIMIT_STORAGE_URI": REDIS_URL, "LOGIN_RATE_LIMIT": "3 per minute",
              "RATELIMIT_KEY_PREFIX": f"fundus-test-{secrets.token_hex(4)}"}
    one, two = make_app(**shared).test_client(), make_app(**shared).test_client()
    email = make_user().email
    assert [wrong_password(one, email), wrong_password(two, email), wrong_password(one, email)] == [200] * 3
    assert wrong_password(two, email) == 429
    # Another client address is not held.
    assert two.post("/login", data={"email": email, "password": PASSWORD},
                    environ_base={"REMOTE_ADDR": "10.0.0.9"}).status_code == 302


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
