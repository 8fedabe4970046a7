"""Who may see what of the trainings feature (DOMAIN rule 6): one loader per object kind, used by
every view (and by the API).

- a training: everyone once published (or cancelled); a draft only staff;
- a registration: whoever holds its secret manage link, and staff;
- one address's registrations and personal feed: whoever holds that address's secret link.
"""

from flask import abort

from core.extensions import db
from events.links import by_token, key_by_token
from events.models import Registration, TraineeKey, Training


def _is_staff(user) -> bool:
    return bool(user and user.is_authenticated and user.is_staff)


def training_for(user, training_id: int) -> Training:
    """A public training (``Training.is_public``: published, or cancelled after it was); a draft, or a draft
    cancelled unpublished, only for staff (404 for everyone else)."""
    training = db.get_or_404(Training, training_id)
    if not training.is_public and not _is_staff(user):
        abort(404)
    return training


def registration_by_link(token: str) -> Registration:
    """The registration whose manage link this is (404 for any other token)."""
    registration = by_token(token)
    if registration is None:
        abort(404)
    return registration


def key_by_link(token: str, calendar: bool = False) -> TraineeKey:
    """The address whose "my registrations" (or personal calendar) link this is (404 otherwise)."""
    key = key_by_token(token, calendar=calendar)
    if key is None:
        abort(404)
    return key
