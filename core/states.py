"""State machines: which actions each state of a model allows, and the one way to change the state.

Every stateful model names its moves in one table, ``action -> {from state: {to states}}``, on a
``StateMachine`` class attribute ``states``. ``transition`` locks the row, refuses what the current
state does not allow with a clear message, changes the state and writes the audit entry, all in the
caller's unit of work. Templates ask ``obj.can("hand_over")`` instead of comparing status strings,
so the workflow is written down once.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from core import audit
from core.errors import DomainError
from core.extensions import db


class IllegalTransition(DomainError):
    """The object is not in a state that allows this action (any more)."""


def moves(sources: Iterable, targets: Iterable) -> dict:
    """Every state of ``sources`` may move to every state of ``targets``."""
    return {source: frozenset(targets) for source in sources}


@dataclass(frozen=True)
class StateMachine:
    """The allowed moves of one attribute (``status``, ``condition``), by action."""

    attribute: str
    table: dict[str, dict[Any, frozenset]]
    refused: Any = _l("This has changed meanwhile; please look at it again.")

    def targets(self, obj, action: str) -> frozenset:
        if action not in self.table:
            raise KeyError(f"{type(obj).__name__} has no action {action!r}")
        return self.table[action].get(getattr(obj, self.attribute), frozenset())

    def allows(self, obj, action: str) -> bool:
        return bool(self.targets(obj, action))

    def move(self, obj, action: str, actor, to=None, record: bool = True, **entry) -> audit.AuditEntry | None:
        """Change ``obj``'s state by ``action`` (to ``to`` where the action has several ends) and,
        unless ``record`` is false (the move is part of another entry), write its audit entry."""
        current = getattr(obj, self.attribute)
        targets = self.targets(obj, action)
        if to is None and len(targets) == 1:
            (to,) = targets
        if to not in targets:
            raise IllegalTransition(self.refused)
        setattr(obj, self.attribute, to)
        if record:
            return audit.record(actor, action, obj, from_state=current, to_state=to, **entry)
        return None


MACHINES: dict[str, StateMachine] = {}  # by the audit name of their model


class Stateful:
    """Mixin for models with a ``states`` machine: ``obj.can(action)`` for templates and checks."""

    states: ClassVar[StateMachine]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        MACHINES[audit.type_of(cls)] = cls.states

    def can(self, action: str) -> bool:
        return self.states.allows(self, action)

    @property
    def state(self) -> str:
        """The current state's value, which action forms send back as ``seen`` (see ``seen_state``)."""
        return getattr(self, self.states.attribute).value


def state_label(object_type: str, value: str) -> str:
    """The translated name of a state recorded in the audit trail (the value itself if unknown)."""
    machine = MACHINES.get(object_type)
    if machine is None or not value:
        return value
    states = {state for table in machine.table.values() for source, targets in table.items()
              for state in (source, *targets)}
    for state in states:
        if state.value == value:
            return state.label
    return value


def lock(model, object_id: int, unknown=_l("This no longer exists.")):
    """The row with its lock held to the end of the transaction, read afresh (SELECT … FOR UPDATE on
    PostgreSQL; SQLite's writing transactions hold the database's write lock)."""
    obj = db.session.scalar(select(model).where(model.id == object_id).with_for_update()
                            .execution_options(populate_existing=True))
    if obj is None:
        raise DomainError(unknown)
    return obj


def transition(model, object_id: int, action: str, actor, to=None, **entry):
    """Lock the row, refuse what its state does not allow, change the state and write the audit entry."""
    obj = lock(model, object_id)
    model.states.move(obj, action, actor, to=to, **entry)
    return obj


def seen_state(form) -> str | None:
    """The state an action form was shown in (its hidden ``seen`` field), or None if it sent none."""
    value = form.get("seen", "")
    return value if value.isidentifier() and len(value) <= 40 else None
