"""Periodic work of the trainings feature."""

from core.jobs import job
from events.services import expire_holds


@job("registration holds")
def registration_holds() -> str:
    return f"{expire_holds()} expired"
