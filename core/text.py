"""Text that comes from people: e-mail addresses compared as one."""


def normalise_email(email: str) -> str:
    """Addresses are compared and stored lower-case, without surrounding space."""
    return email.strip().lower()
