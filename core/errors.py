"""The domain error every feature's services raise, and the two ways views show it.

Services are units of work (``core.db.unit_of_work``): by the time a ``DomainError`` reaches a view,
everything the call did is rolled back. Views never commit, roll back or catch it themselves:

- a view behind a button is decorated with ``@action(back)``: the message is flashed and the
  browser goes back to the page it came from, as after success;
- a form view runs its service call inside ``with shown_at(form):``: the message appears at its
  field (or above the form) and the form is shown again with what was typed.

One that escapes anyway gets the error page with its message and status 409 (``pages.views``).
"""

from contextlib import contextmanager
from functools import wraps

from flask import flash, redirect


class DomainError(Exception):
    """A rule was broken; ``message`` (translated) tells the user what to do, ``field`` where."""

    def __init__(self, message, field: str | None = None):
        super().__init__(str(message))
        self.message = message
        self.field = field


@contextmanager
def shown_at(form):
    """Run a form's service call; a domain error becomes a message at its field and the rest of the
    ``with`` block is skipped, so the view goes on to show the form again with what was typed."""
    try:
        yield
    except DomainError as error:
        field = getattr(form, error.field, None) if error.field else None
        if field is not None:
            field.errors = list(field.errors) + [str(error.message)]
        else:
            flash(str(error.message), "error")


def action(back, refused=None):
    """For a view behind a button: it calls its service and flashes what happened; a domain error is
    flashed instead. Then the browser goes to ``back(**view_args)`` (after a refusal to
    ``refused(**view_args)`` if given), unless the view returned a response of its own."""

    def decorator(view):
        @wraps(view)
        def run(**kwargs):
            target = back
            try:
                response = view(**kwargs)
            except DomainError as error:
                flash(str(error.message), "error")
                response, target = None, refused or back
            return response if response is not None else redirect(target(**kwargs))

        return run

    return decorator


def flash_form_errors(form) -> None:
    """For forms posted from another page: show their field errors as messages there."""
    for errors in form.errors.values():
        for message in errors:
            flash(str(message), "error")
