"""The secret links of people without an account: a registration's manage and confirm links, and
one address's "my registrations" link and personal calendar feed.

Each link is derived from a random stored salt with the secret key; the database keeps the salts
and the links' hashes, so every mail can carry the links and the database gives none away.
"""

import secrets

from sqlalchemy import select

from core.db import unit_of_work
from core.extensions import db
from core.security import derived_token, hash_token
from core.states import lock
from events.models import Registration, TraineeKey


def set_link_salt(registration: Registration) -> None:
    """Draw the salt the registration's manage and confirm links are derived from."""
    registration.link_salt = secrets.token_urlsafe(24)
    registration.manage_token_hash = hash_token(manage_token(registration))
    registration.confirm_token_hash = hash_token(confirm_token(registration))


def manage_token(registration: Registration) -> str:
    return derived_token("registration-manage", registration.link_salt)


def confirm_token(registration: Registration) -> str:
    return derived_token("registration-confirm", registration.link_salt)


def by_token(token: str, confirm: bool = False) -> Registration | None:
    column = Registration.confirm_token_hash if confirm else Registration.manage_token_hash
    return db.session.scalar(select(Registration).where(column == hash_token(token)))


def draw_key_salts(key: TraineeKey, list_link: bool = True, calendar: bool = True) -> None:
    if list_link:
        key.list_salt = secrets.token_urlsafe(24)
        key.list_token_hash = hash_token(derived_token("my-registrations", key.list_salt))
    if calendar:
        key.calendar_salt = secrets.token_urlsafe(24)
        key.calendar_token_hash = hash_token(derived_token("my-calendar", key.calendar_salt))


def list_token(key: TraineeKey) -> str:
    return derived_token("my-registrations", key.list_salt)


def calendar_token(key: TraineeKey) -> str:
    return derived_token("my-calendar", key.calendar_salt)


def key_by_token(token: str, calendar: bool = False) -> TraineeKey | None:
    column = TraineeKey.calendar_token_hash if calendar else TraineeKey.list_token_hash
    return db.session.scalar(select(TraineeKey).where(column == hash_token(token)))


@unit_of_work
def new_calendar_address(key_id: int) -> None:
    """Revoke the personal feed address; the old one answers 404 from now on."""
    draw_key_salts(lock(TraineeKey, key_id), list_link=False)
