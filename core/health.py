"""``/healthz``: whether this Fundus needs an operator, for monitors; ``/livez``: whether this host can serve,
for load balancers.

No authentication, no personal data (counts, ages and revisions only), a few short statements. ``/healthz``
answers 503 when an operator is needed: the database cannot be reached, its schema is not the code's
(``flask --app app db upgrade`` pending), a mail has been pending longer than ``HEALTH_MAIL_MINUTES``, or a
job has not succeeded for ``HEALTH_JOBS_MINUTES`` (the timer of ``jobs run`` stopped, or a job keeps
failing, mail delivery included). Those are problems of the whole site, not of one host: a load balancer
that took every host out for a mail server outage would take the site down, so it asks ``/livez``, which
answers 503 only when this host cannot reach the database. Staff see stuck mail on their overview
(``stuck_mail``).
"""

from datetime import datetime, timedelta

from flask import Blueprint, current_app, jsonify
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from core.db import head_revision
from core.extensions import db, limiter
from core.jobs import JobRun, job_names
from core.mail import OutboxMessage, OutboxStatus
from core.models import utcnow

bp = Blueprint("health", __name__)

_code_revision: list[str | None] = []  # the code's migration head, read once per process


def pending_mail() -> tuple[int, datetime | None]:
    """How many mails wait for delivery, and since when the oldest waits."""
    count, oldest = db.session.execute(
        select(func.count(), func.min(OutboxMessage.created_at)).where(OutboxMessage.status == OutboxStatus.PENDING)
    ).one()
    return count, oldest


def minutes_since(moment: datetime | None, now: datetime) -> int | None:
    return None if moment is None else max(0, int((now - moment).total_seconds() // 60))


def stuck_mail() -> int | None:
    """Minutes the oldest pending mail has waited, if longer than ``HEALTH_MAIL_MINUTES`` (else None)."""
    waited = minutes_since(pending_mail()[1], utcnow())
    return waited if waited is not None and waited > current_app.config["HEALTH_MAIL_MINUTES"] else None


def check() -> tuple[dict, list[str]]:
    """The state (JSON-ready) and the problems an operator must look at (empty: all is well)."""
    now = utcnow()
    cfg = current_app.config
    if not _code_revision:
        _code_revision.append(head_revision())
    try:
        database = db.session.scalar(text("SELECT version_num FROM alembic_version"))
    except SQLAlchemyError as exc:
        db.session.rollback()
        return {"database": "unreachable"}, [f"database: {type(exc).__name__}"]
    migrations = {"database": database, "code": _code_revision[0]}
    if database != _code_revision[0]:  # the tables below may not be there yet
        db.session.rollback()
        return {"database": "ok", "migrations": migrations}, [
            f"migrations: the database is at {database}, the code at {_code_revision[0]} (flask --app app db upgrade)"]
    try:
        count, oldest = pending_mail()
        failed = db.session.scalar(select(func.count()).where(OutboxMessage.status == OutboxStatus.FAILED))
        runs = {run.name: run for run in db.session.scalars(select(JobRun))}
    except SQLAlchemyError as exc:
        return {"database": "error", "migrations": migrations}, [f"database: {type(exc).__name__}"]
    finally:
        db.session.rollback()
    problems: list[str] = []
    waited = minutes_since(oldest, now)
    if waited is not None and waited > cfg["HEALTH_MAIL_MINUTES"]:
        problems.append(f"mail: the oldest pending mail has waited {waited} minutes")
    jobs = {}
    limit = timedelta(minutes=cfg["HEALTH_JOBS_MINUTES"])
    for name in job_names():
        run = runs.get(name)
        success = run.last_success_at if run else None
        jobs[name] = {"last_success": success.isoformat(timespec="seconds") if success else None,
                      "last_ok": run.last_ok if run else None,
                      "running": bool(run and run.running_since)}
        if success is None or now - success > limit:
            problems.append(f"jobs: {name} has not succeeded " +
                            ("yet (is the timer of jobs run set up?)" if success is None
                             else f"for {minutes_since(success, now)} minutes"))
    # Given up (after MAIL_MAX_ATTEMPTS or refused for good): shown, not a problem by itself; admins see them in
    # the outbox. A mail server that stays away shows as pending mail and as failed delivery runs first.
    state = {"database": "ok", "migrations": migrations,
             "mail": {"pending": count, "oldest_pending_minutes": waited, "failed": failed}, "jobs": jobs}
    return state, problems


@bp.get("/livez")
@limiter.exempt
def livez():
    """Whether this host can serve: its database answers (one statement)."""
    try:
        db.session.execute(text("SELECT 1"))
        ok = True
    except SQLAlchemyError:
        ok = False
    finally:
        db.session.rollback()
    response = jsonify({"status": "ok" if ok else "unavailable"})
    response.status_code = 200 if ok else 503
    response.cache_control.no_store = True
    return response


@bp.get("/healthz")
@limiter.exempt
def healthz():
    state, problems = check()
    response = jsonify({"status": "attention" if problems else "ok", "problems": problems, **state})
    response.status_code = 503 if problems else 200
    response.cache_control.no_store = True
    return response
