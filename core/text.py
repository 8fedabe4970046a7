"""Text that comes from people or from configuration: e-mail addresses compared as one, and checked;
names and addresses set into sentences and pages (Jinja filters ``sentence``, ``lines``, ``one_line``)."""

import re

from email_validator import EmailNotValidError, validate_email
from markupsafe import Markup, escape


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


# A full stop right after a word's own full stop ("e.V." + "."), not part of an ellipsis ("...").
_SECOND_STOP = re.compile(r"(?<=\w\.)\.(?=\s|<|$)")


def sentence(text: str) -> str:
    """A sentence that ends with a name ending in a full stop ("… von Planerladen e.V.") keeps one
    full stop, not two: use it where a translated sentence takes a configured name."""
    fixed = _SECOND_STOP.sub("", str(text))
    return Markup(fixed) if isinstance(text, Markup) else fixed


def lines(text: str) -> Markup:
    """A configured value of several lines (a postal address) for a page: escaped, one ``<br>`` a line."""
    return Markup("<br>").join(escape(line.strip()) for line in str(text).splitlines() if line.strip())


def one_line(text: str, separator: str = ", ") -> str:
    """A configured value of several lines on one line (a footer, a calendar's location)."""
    return separator.join(line.strip() for line in str(text).splitlines() if line.strip())
