"""The errors of the accounts feature."""

from core.errors import DomainError


class AccountError(DomainError):
    """A rule of the accounts feature was broken."""
