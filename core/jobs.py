"""Periodic jobs, run by cron through ``flask --app app jobs run``.

Features register their jobs with ``@job``; mail delivery always runs last so
that mail the other jobs queue goes out in the same run.
"""

from collections.abc import Callable

import click
from flask.cli import AppGroup

from core.db import ensure_schema
from core.mail import deliver_pending, erase_old_mails

JOBS: list[tuple[str, Callable[[], str]]] = []


def job(name: str):
    """Register a function that runs once per ``jobs run`` and returns a one-line report."""

    def register(func):
        JOBS.append((name, func))
        return func

    return register


@job("old mails")
def old_mails() -> str:
    return f"{erase_old_mails()} erased"


def run_all() -> list[tuple[str, str]]:
    reports = [(name, func()) for name, func in JOBS]
    reports.append(("mail", str(deliver_pending())))
    return reports


jobs_cli = AppGroup("jobs", help="Periodic work: reminders, expiries, mail delivery.")


@jobs_cli.command("run")
def run_command():
    """Run every job once (put this in cron, e.g. every five minutes)."""
    ensure_schema()
    for name, report in run_all():
        click.echo(f"{name}: {report}")
