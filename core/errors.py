"""The domain error every feature's services raise, and how views show it."""

from flask import flash

from core.extensions import db


class DomainError(Exception):
    """A rule was broken; ``message`` (translated) tells the user what to do, ``field`` where."""

    def __init__(self, message, field: str | None = None):
        super().__init__(str(message))
        self.message = message
        self.field = field


def form_error(form, error: DomainError) -> None:
    """Undo the failed work and show the message next to its field, or above the form."""
    db.session.rollback()
    field = getattr(form, error.field, None) if error.field else None
    if field is not None:
        field.errors = list(field.errors) + [str(error.message)]
    else:
        flash(str(error.message), "error")


def flash_form_errors(form) -> None:
    """For forms posted from another page: show their field errors as messages there."""
    for errors in form.errors.values():
        for message in errors:
            flash(str(message), "error")
