"""Asking first: the page between a button and an action that cannot be undone or tells people.

An action that ends something for others (cancel a training or a registration, reject a request,
retire a unit, delete a person's data) is two requests. A link leads to ``GET …`` (it changes
nothing), which shows what will happen in plain words and how many addresses will get a mail, as
the service that does the action computes it (its ``…_consequences()`` beside it, which refuses
what the state no longer allows with the action's own message); where someone is told, it asks for
a reason that goes into the mail. Its button posts to the action, which checks everything again.
"""

from dataclasses import dataclass, field

from flask import render_template
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import TextAreaField
from wtforms.validators import Length

REASON_LENGTH = 2000  # the longest reason a mail carries (stored as text in the audit entry)


@dataclass(frozen=True)
class Consequences:
    """What an action is about to do: sentences in plain words, and how many addresses get a mail."""

    effects: tuple[str, ...]
    mails: int = 0


class ReasonForm(FlaskForm):
    """The reason given to the people an action tells; it goes into their mail and the audit entry."""

    reason = TextAreaField(_l("Reason (goes into the mail)"), validators=[Length(max=REASON_LENGTH)])


@dataclass
class Confirmation:
    """One confirmation page: ``heading`` asks, ``subject`` names what is acted on, ``button`` posts
    to ``action``, ``back`` leads away unchanged; ``form`` (with a ``reason`` field) where someone is
    told; ``seen`` the state the page shows, so a change made meanwhile is refused; ``hidden`` more
    fields the action needs (a person's address)."""

    heading: str
    subject: str
    consequences: Consequences
    button: str
    action: str
    back: str
    form: FlaskForm | None = None
    seen: str | None = None
    hidden: dict = field(default_factory=dict)


def confirm_page(confirmation: Confirmation, status: int = 200):
    """The page that asks (``status`` 422 when a posted reason is shown again with its error)."""
    return render_template("confirm.html", c=confirmation), status
