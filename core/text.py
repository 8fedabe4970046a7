"""Text that comes from people: e-mail addresses compared as one, and checked."""

from email_validator import EmailNotValidError, validate_email


def normalise_email(email: str) -> str:
    """Addresses are compared and stored lower-case, without surrounding space."""
    return email.strip().lower()


def is_email(text: str) -> bool:
    """Whether ``text`` is written like an e-mail address (nothing is looked up)."""
    try:
        validate_email(text.strip(), check_deliverability=False)
    except EmailNotValidError:
        return False
    return len(text.strip()) <= 254
