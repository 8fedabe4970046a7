"""Accounts: created by admins (or by approving an application), changed, one's own profile."""


from flask_babel import lazy_gettext as _l
from sqlalchemy.exc import IntegrityError

from accounts.errors import AccountError
from accounts.models import Organisation, Role, User
from accounts.passwords import check_password_rules, send_set_password_link, user_by_email
from accounts.sessions import revoke_sessions
from core import audit
from core.db import unit_of_work
from core.extensions import db
from core.states import lock
from core.text import normalise_email


@unit_of_work
def create_user(
    email: str,
    name: str,
    role: Role,
    actor,
    organisation_id: int | None = None,
    password: str | None = None,
    locale: str = "de",
    send_link: bool = True,
) -> User:
    """Create an account; without a password, mail a link to set one. ``actor`` is the admin or
    staff member (``core.audit.SYSTEM`` on the command line)."""
    email = normalise_email(email)
    if user_by_email(email) is not None:
        raise AccountError(_l("An account with this e-mail address exists already."), field="email")
    if role == Role.PARTNER and organisation_id is None:
        raise AccountError(_l("A partner contact needs an organisation."), field="organisation_id")
    if organisation_id is not None and db.session.get(Organisation, organisation_id) is None:
        raise AccountError(_l("Unknown organisation."), field="organisation_id")
    user = User(
        email=email,
        name=name.strip(),
        role=role,
        organisation_id=organisation_id if role == Role.PARTNER else None,
        locale=locale,
    )
    if password is not None:
        check_password_rules(password, email)
        user.set_password(password)
    try:
        with db.session.begin_nested():
            db.session.add(user)
    except IntegrityError:  # the same address at the same moment
        raise AccountError(_l("An account with this e-mail address exists already."), field="email") from None
    audit.record(actor, "create", user, to_state=role, refs=[user.organisation])
    if password is None and send_link:
        send_set_password_link(user)
    return user


@unit_of_work
def update_user(
    user_id: int,
    acting: User,
    email: str,
    name: str,
    role: Role,
    organisation_id: int | None,
    active: bool,
    locale: str,
) -> User:
    """Change an account; an admin cannot demote or disable themselves."""
    user = lock(User, user_id)
    email = normalise_email(email)
    if user.id == acting.id and (role != Role.ADMIN or not active):
        raise AccountError(_l("You cannot take away your own admin rights or deactivate yourself."))
    other = user_by_email(email)
    if other is not None and other.id != user.id:
        raise AccountError(_l("An account with this e-mail address exists already."), field="email")
    if role == Role.PARTNER and organisation_id is None:
        raise AccountError(_l("A partner contact needs an organisation."), field="organisation_id")
    before = (user.role, user.active)
    changed = [name for name, old, new in (("email", user.email, email), ("name", user.name, name.strip()),
                                           ("role", user.role, role), ("locale", user.locale, locale),
                                           ("organisation", user.organisation_id,
                                            organisation_id if role == Role.PARTNER else None),
                                           ("active", user.active, active)) if old != new]
    user.email = email
    user.name = name.strip()
    user.role = role
    user.locale = locale
    user.organisation_id = organisation_id if role == Role.PARTNER else None
    if user.active and not active:
        revoke_sessions(user)  # sign the account out everywhere
    user.active = active
    audit.record(acting, "edit", user, from_state=before[0] if before[0] != role else None,
                 to_state=role if before[0] != role else None, details=", ".join(changed),
                 refs=[user.organisation])
    return user


@unit_of_work
def update_profile(user: User, name: str, locale: str) -> None:
    """One's own name and language."""
    user.name = name.strip()
    user.locale = locale
    audit.record(user, "edit", user, details="profile")


@unit_of_work
def set_locale(user: User, locale: str) -> None:
    """Remember the language chosen with the header's switch (a preference, not recorded)."""
    if user.locale != locale:
        user.locale = locale
