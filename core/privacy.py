"""What the privacy notice promises, kept where the code can keep it.

``PRIVACY_VERSION`` names the privacy texts of the public forms (the information on the legal basis
and the separate consent to answers that can be health data) together with the notice they point
to; every application and registration stores the version it was sent with. Raise it whenever one
of these texts changes.

The storage periods the notice states are the configuration values the jobs use
(``storage_periods``), so the notice and the deletions cannot drift apart.
"""

from flask_babel import lazy_gettext as _l
from flask_babel import ngettext

PRIVACY_VERSION = "2026-12-01"


def storage_periods(cfg) -> list[tuple[str, str]]:
    """(what, how long) for each kind of personal data Fundus keeps, from configuration."""
    hold = cfg["REGISTRATION_HOLD_HOURS"]
    months = cfg["REGISTRATION_RETENTION_MONTHS"]
    mail_days = cfg["MAIL_KEEP_DAYS"]
    rejected_days = cfg["REJECTED_APPLICATION_KEEP_DAYS"]
    return [
        (str(_l("Unconfirmed training registrations")),
         ngettext("The seat is held for %(num)s hour. If the address has not been confirmed by then, the "
                  "registration expires and name, e-mail address and answers are deleted.",
                  "The seat is held for %(num)s hours. If the address has not been confirmed by then, the "
                  "registration expires and name, e-mail address and answers are deleted.", hold)),
        (str(_l("Accessibility and dietary needs")),
         str(_l("Deleted when the training has ended."))),
        (str(_l("Training registrations")),
         ngettext("Name, e-mail address, organisation, position and answers are deleted %(num)s month after "
                  "the training; what remains (status, attendance) tells no one who you are.",
                  "Name, e-mail address, organisation, position and answers are deleted %(num)s months after "
                  "the training; what remains (status, attendance) tells no one who you are.", months)),
        (str(_l("E-mails we send you")),
         ngettext("Text and recipient address are deleted %(num)s day after sending (at once when your "
                  "registration's data is deleted); we keep only that a mail of which kind went out when.",
                  "Text and recipient address are deleted %(num)s days after sending (at once when your "
                  "registration's data is deleted); we keep only that a mail of which kind went out when.",
                  mail_days)),
        (str(_l("Applications for a partner account")),
         ngettext("Until we have decided. An approved application is kept with the account; a rejected one is "
                  "deleted %(num)s day after the decision.",
                  "Until we have decided. An approved application is kept with the account; a rejected one is "
                  "deleted %(num)s days after the decision.", rejected_days)),
        (str(_l("Partner accounts")),
         str(_l("As long as the account exists; write to the data protection contact to have it closed."))),
        (str(_l("Sign-ins")),
         ngettext("Each sign-in is forgotten when it ends, at the latest after %(num)s day; failed attempts are "
                  "counted for %(minutes)s minutes.",
                  "Each sign-in is forgotten when it ends, at the latest after %(num)s days; failed attempts are "
                  "counted for %(minutes)s minutes.", cfg["REMEMBER_DAYS"], minutes=cfg["LOGIN_LOCK_MINUTES"])),
        (str(_l("Server logs")),
         ngettext("Deleted after %(num)s day.", "Deleted after %(num)s days.", cfg["SERVER_LOG_DAYS"])),
        (str(_l("Record of staff actions (audit trail)")),
         str(_l("Kept as long as Fundus runs, so that our work can be checked. It names people only through "
                "their accounts and registrations; the reasons typed about a registration or application are "
                "deleted with its personal data."))),
    ]
