"""Periodic work of the trainings feature."""

from core.jobs import job
from events.notifications import send_reminders
from events.personal_data import anonymise_old_registrations, forget_health_answers
from events.seats import expire_holds


@job("registration holds")
def registration_holds() -> str:
    return f"{expire_holds()} expired"


@job("training reminders")
def training_reminders() -> str:
    return f"{send_reminders()} sent"


@job("anonymise registrations")
def anonymise_registrations() -> str:
    return f"{anonymise_old_registrations()} anonymised"


@job("health answers")
def health_answers() -> str:
    return f"{forget_health_answers()} registrations lost their accessibility and dietary answers"
