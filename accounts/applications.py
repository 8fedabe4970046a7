"""Applications for a partner account, decided by staff."""


from datetime import timedelta

from flask import current_app
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from accounts.errors import AccountError
from accounts.models import AccountApplication, ApplicationStatus, Organisation, OrganisationKind, Role, User
from accounts.passwords import user_by_email
from accounts.users import create_user
from core import audit
from core.db import unit_of_work
from core.extensions import db
from core.mail import erase_mails_about, queue_mail
from core.models import utcnow
from core.privacy import PRIVACY_VERSION
from core.states import IllegalTransition, lock, transition
from core.text import normalise_email
from core.urls import external_url


@unit_of_work
def submit_application(
    name: str,
    email: str,
    organisation_name: str,
    position: str = "",
    phone: str = "",
    message: str = "",
) -> None:
    """Record an application for a partner account and tell the applicant and staff.

    The applicant names the organisation in their own words (no public list tells who is a partner);
    staff match it to an organisation when they approve. The answer is the same whether or not the
    address has an account or an open application: the address is told by mail instead, so the form
    reveals nobody's account.
    """
    email = normalise_email(email)
    user = user_by_email(email)
    if user is not None:
        _mail_known_address(user)
        return
    if _mail_if_pending(email):
        return
    if not organisation_name.strip():
        raise AccountError(_l("Please enter the name of your organisation."), field="organisation_name")
    application = AccountApplication(
        name=name.strip(),
        email=email,
        organisation_name=organisation_name.strip(),
        position=position.strip(),
        phone=phone.strip(),
        message=message.strip(),
        locale=str(get_locale()),
        consent_at=utcnow(),
        privacy_version=PRIVACY_VERSION,
    )
    try:
        with db.session.begin_nested():
            db.session.add(application)
    except IntegrityError:  # a second submit of the same form at the same moment
        if _mail_if_pending(email):
            return
        raise
    audit.record(audit.PUBLIC, "submit", application, to_state=application.status)
    queue_mail(
        email,
        _l("We have received your application"),
        "accounts/application_received",
        locale=application.locale,
        about=application,
        application=application,
    )
    queue_mail(
        current_app.config["STAFF_EMAIL"],
        _l("New application for a partner account"),
        "accounts/application_staff_notice",
        locale="de",
        about=application,
        application=application,
        link=external_url("accounts.application_detail", application_id=application.id),
    )


def _mail_known_address(user: User) -> None:
    """Someone applied with the address of an existing account: tell its owner how to get in."""
    queue_mail(
        user.email,
        _l("You already have a Fundus account"),
        "accounts/application_known_address",
        locale=user.locale,
        user=user,
        login_link=external_url("accounts.login"),
        reset_link=external_url("accounts.forgot_password"),
    )


def _mail_if_pending(email: str) -> bool:
    """If an application for ``email`` is being reviewed, tell the address so (not the visitor)."""
    pending = db.session.scalar(
        select(AccountApplication).where(
            AccountApplication.email == email, AccountApplication.status == ApplicationStatus.PENDING
        )
    )
    if pending is None:
        return False
    queue_mail(
        email,
        _l("Your application is being reviewed"),
        "accounts/application_pending",
        locale=pending.locale,
        about=pending,
        application=pending,
    )
    return True


def matching_organisation(application: AccountApplication) -> Organisation | None:
    """The organisation whose name is the one the applicant typed (ignoring case), for staff to confirm."""
    name = (application.organisation_name or "").strip()
    if not name:
        return None
    return db.session.scalar(select(Organisation).where(func.lower(Organisation.name) == name.lower()))


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
        about=application,
        application=application,
    )


@unit_of_work
def delete_old_rejected_applications() -> int:
    """``jobs run``: delete applications rejected more than ``REJECTED_APPLICATION_KEEP_DAYS`` ago, with the
    text and recipient of their mails and the reasons typed about them; the trail keeps that it happened."""
    cutoff = utcnow() - timedelta(days=current_app.config["REJECTED_APPLICATION_KEEP_DAYS"])
    ids = list(db.session.scalars(
        select(AccountApplication.id).where(AccountApplication.status == ApplicationStatus.REJECTED,
                                            AccountApplication.decided_at < cutoff)
    ))
    if not ids:
        return 0
    erase_mails_about(AccountApplication.audit_type, ids)
    audit.forget_text(AccountApplication.audit_type, ids)
    db.session.execute(delete(AccountApplication).where(AccountApplication.id.in_(ids))
                       .execution_options(synchronize_session=False))
    for application_id in ids:
        audit.record(audit.SYSTEM, "delete", audit.Subject(AccountApplication.audit_type, application_id),
                     from_state=ApplicationStatus.REJECTED)
    return len(ids)
