"""The errors of the trainings feature."""

from core.errors import DomainError


class EventsError(DomainError):
    """A rule of the trainings feature was broken."""
