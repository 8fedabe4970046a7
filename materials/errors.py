"""The errors of the materials feature: a broken rule, with a message for the user."""

from flask_babel import lazy_gettext as _l

from core.errors import DomainError


class MaterialsError(DomainError):
    """A rule of the materials feature was broken."""


class NotAvailable(MaterialsError):
    """What was asked for is (no longer) there."""


class Shortage(MaterialsError):
    """Submitting failed because of these items; ``problems`` lists one message per item."""

    def __init__(self, problems: list):
        super().__init__(_l("Not everything is available any more. Nothing has been reserved."))
        self.problems = problems
