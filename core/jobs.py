"""Periodic jobs, run by a timer or cron through ``flask --app app jobs run``, on one host or on several.

Features register their jobs with ``@job``; mail delivery always runs last so that mail the other jobs
queue goes out in the same run. Each job is claimed before it runs (``job_runs.running_since``, set by a
conditional update that only one run can win): ``jobs run`` started at the same minute on two hosts runs
every job once, the other run skips it. A claim older than ``JOB_LEASE_MINUTES`` is taken as a crashed
run and may be claimed again. Mail delivery is not claimed: every run delivers, because each message is
claimed on its own (``core.mail``) and a run must send what its own jobs queued (a run that skipped it
while another delivered would leave its reminders for the next run). Every run records each job's outcome
(``last_ok``, ``last_report``, ``last_success_at``), which ``/healthz`` reads (``core.health``); delivery
counts as failed when nothing due could be sent. The jobs stay safe to run twice in a row (reminders are
marked one by one).
"""

import logging
import os
import secrets
import socket
from collections.abc import Callable
from datetime import datetime, timedelta

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import String, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from core.db import ensure_schema, unit_of_work
from core.extensions import db
from core.mail import deliver_pending, erase_old_mails
from core.models import utcnow

log = logging.getLogger("fundus.jobs")

JOBS: list[tuple[str, Callable[[], str]]] = []
MAIL = "mail"


class JobRun(db.Model):
    """The state of one job: who runs it now, and how its last run ended."""

    __tablename__ = "job_runs"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    running_since: Mapped[datetime | None]
    running_on: Mapped[str] = mapped_column(String(255), default="")  # host and process
    last_started_at: Mapped[datetime | None]
    last_finished_at: Mapped[datetime | None]
    last_ok: Mapped[bool | None]
    last_report: Mapped[str] = mapped_column(String(500), default="")  # the one-line report, or the error
    last_success_at: Mapped[datetime | None]


def job(name: str):
    """Register a function that runs once per ``jobs run`` and returns a one-line report."""

    def register(func):
        JOBS.append((name, func))
        return func

    return register


@job("old mails")
def old_mails() -> str:
    return f"{erase_old_mails()} erased"


def job_names() -> list[str]:
    return [name for name, _ in JOBS] + [MAIL]


def new_runner() -> str:
    """Who runs: host, process and a mark of this run (two runs in one process are two runners)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"[:255]


def _known(name: str) -> None:
    """The job's row exists (a run on another host may be adding it at the same moment)."""
    if db.session.get(JobRun, name) is None:
        try:
            with db.session.begin_nested():
                db.session.add(JobRun(name=name))
        except IntegrityError:
            pass


@unit_of_work
def claim(name: str, runner: str) -> bool:
    """Mark the job as running here, unless another run holds it (and has not outlived its lease)."""
    _known(name)
    now = utcnow()
    lease = timedelta(minutes=current_app.config["JOB_LEASE_MINUTES"])
    return db.session.execute(
        update(JobRun)
        .where(JobRun.name == name, or_(JobRun.running_since.is_(None), JobRun.running_since < now - lease))
        .values(running_since=now, running_on=runner, last_started_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount == 1


@unit_of_work
def finish(name: str, runner: str | None, ok: bool, report: str) -> None:
    """Record how the job ended (and release its claim, if ``runner`` holds it)."""
    now = utcnow()
    values = {"last_finished_at": now, "last_ok": ok, "last_report": report[:500]}
    if ok:
        values["last_success_at"] = now
    if runner is None:
        _known(name)
        condition = JobRun.name == name
    else:
        values["running_since"] = None
        condition = (JobRun.name == name) & (JobRun.running_on == runner)
    db.session.execute(update(JobRun).where(condition).values(**values).execution_options(synchronize_session=False))


def _run(name: str, func: Callable[[], tuple[str, bool]]) -> tuple[str, bool]:
    try:
        return func()
    except Exception as exc:  # one job failing does not stop the others; its outcome is recorded
        db.session.rollback()
        log.exception("Job %r failed", name)
        return f"failed: {type(exc).__name__}: {exc}", False


def _deliver() -> tuple[str, bool]:
    report = deliver_pending()
    return str(report), not (report.failed and not report.sent)  # failed: nothing due could be sent


def run_all() -> list[tuple[str, str, bool]]:
    """Run every job this run can claim, then deliver mail: (name, report, ok) for each, skipped ones
    included (ok)."""
    runner, results = new_runner(), []
    for name, func in JOBS:
        if not claim(name, runner):
            holder = db.session.scalar(select(JobRun.running_on).where(JobRun.name == name))
            results.append((name, f"skipped: running on {holder}", True))
            continue
        report, ok = _run(name, lambda func=func: (func(), True))
        finish(name, runner, ok, report)
        results.append((name, report, ok))
    report, ok = _run(MAIL, _deliver)
    finish(MAIL, None, ok, report)
    results.append((MAIL, report, ok))
    return results


jobs_cli = AppGroup("jobs", help="Periodic work: reminders, expiries, mail delivery.")


@jobs_cli.command("run")
def run_command():
    """Run every job once (a systemd timer or cron, every five minutes; on several hosts at once is safe)."""
    ensure_schema()
    results = run_all()
    for name, report, _ok in results:
        click.echo(f"{name}: {report}")
    if not all(ok for _name, _report, ok in results):
        raise SystemExit(1)
