"""Periodic work of the trainings feature."""

from core.jobs import job
from events.services import anonymise_old_registrations, expire_holds, send_reminders


@job("registration holds")
def registration_holds() -> str:
    return f"{expire_holds()} expired"


@job("training reminders")
def training_reminders() -> str:
    return f"{send_reminders()} sent"


@job("anonymise registrations")
def anonymise_registrations() -> str:
    return f"{anonymise_old_registrations()} anonymised"
