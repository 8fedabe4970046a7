"""Periodic work of the materials feature, run by ``flask --app app jobs run``."""

from core.jobs import job
from materials.lending import send_overdue_reminders


@job("overdue reminders")
def overdue_reminders() -> str:
    return f"{send_overdue_reminders()} sent"
