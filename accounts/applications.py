"""Applications for a partner account, decided by staff."""


from flask import current_app
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from accounts.errors import AccountError
from accounts.models import AccountApplication, ApplicationStatus, Organisation, OrganisationKind, Role, User
from accounts.passwords import user_by_email
from accounts.users import create_user
from core import audit
from core.db import unit_of_work
from core.extensions import db
from core.mail import queue_mail
from core.models import utcnow
from core.states import IllegalTransition, lock, transition
from core.text import normalise_email
from core.urls import external_url


@unit_of_work
def submit_application(
    name: str,
    email: str,
    organisation_id: int | None,
    organisation_name: str,
    position: str = "",
    phone: str = "",
    message: str = "",
) -> AccountApplication:
    """Record an application for a partner account and tell the applicant and staff."""
    email = normalise_email(email)
    if user_by_email(email) is not None:
        raise AccountError(
            _l("There is an account for this address already. Use “Forgot password” to get in."),
            field="email",
        )
    pending = db.session.scalar(
        select(AccountApplication).where(
            AccountApplication.email == email, AccountApplication.status == ApplicationStatus.PENDING
        )
    )
    if pending is not None:
        raise AccountError(_l("An application for this address is being reviewed already."), field="email")
    if organisation_id is None and not organisation_name.strip():
        raise AccountError(_l("Choose your organisation or enter its name."), field="organisation_name")
    if organisation_id is not None and db.session.get(Organisation, organisation_id) is None:
        raise AccountError(_l("Unknown organisation."), field="organisation_id")
    application = AccountApplication(
        name=name.strip(),
        email=email,
        organisation_id=organisation_id,
        organisation_name="" if organisation_id else organisation_name.strip(),
        position=position.strip(),
        phone=phone.strip(),
        message=message.strip(),
        locale=str(get_locale()),
        consent_at=utcnow(),
    )
    try:
        with db.session.begin_nested():
            db.session.add(application)
    except IntegrityError:  # a second submit of the same form at the same moment
        raise AccountError(_l("An application for this address is being reviewed already."), field="email") from None
    audit.record(audit.PUBLIC, "submit", application, to_state=application.status, refs=[application.organisation])
    queue_mail(
        email,
        _l("We have received your application"),
        "accounts/application_received",
        locale=application.locale,
        application=application,
    )
    queue_mail(
        current_app.config["STAFF_EMAIL"],
        _l("New application for a partner account"),
        "accounts/application_staff_notice",
        locale="de",
        application=application,
        link=external_url("accounts.application_detail", application_id=application.id),
    )
    return application


@unit_of_work
def approve_application(
    application_id: int,
    staff: User,
    organisation_id: int | None,
    new_organisation_kind: OrganisationKind | None = None,
) -> User:
    """Create the partner account (and the organisation, if new) and mail the set-password link."""
    application = lock(AccountApplication, application_id)
    if not application.can("approve"):
        raise IllegalTransition(AccountApplication.states.refused)
    if organisation_id is None:
        if new_organisation_kind is None:
            raise AccountError(_l("Choose the organisation or the kind of the new one."))
        name = application.organisation_name or application.name
        existing = db.session.scalar(
            select(Organisation).where(func.lower(Organisation.name) == name.lower())
        )
        if existing is not None:
            raise AccountError(
                _l("An organisation with this name exists already; choose it from the list.")
            )
        org = Organisation(name=name, kind=new_organisation_kind)
        db.session.add(org)
        db.session.flush()
        audit.record(staff, "create", org, details=name)
        organisation_id = org.id
    user = create_user(
        application.email,
        application.name,
        Role.PARTNER,
        staff,
        organisation_id=organisation_id,
        locale=application.locale,
        send_link=True,
    )
    application.organisation_id = organisation_id
    application.decided_at = utcnow()
    application.decided_by_id = staff.id
    application.user_id = user.id
    AccountApplication.states.move(application, "approve", staff, refs=[user, user.organisation])
    return user


@unit_of_work
def reject_application(application_id: int, staff: User, reason: str) -> None:
    """Decline an application and tell the applicant, with the reason if one is given."""
    application = transition(AccountApplication, application_id, "reject", staff, reason=reason)
    application.reject_reason = reason.strip()
    application.decided_at = utcnow()
    application.decided_by_id = staff.id
    queue_mail(
        application.email,
        _l("Your application for a Fundus account"),
        "accounts/application_rejected",
        locale=application.locale,
        application=application,
    )
