"""Users, organisations, account applications and single-use tokens."""

import enum
from datetime import datetime

from flask_babel import lazy_gettext as _l
from flask_login import UserMixin
from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from core import audit
from core.extensions import db
from core.models import LabelledEnum, TimestampMixin, set_labels, str_enum, utcnow
from core.states import Stateful, StateMachine, moves


class Role(LabelledEnum):
    ADMIN = "admin"
    STAFF = "staff"
    PARTNER = "partner"


ROLE_LABELS = set_labels(Role, {
    Role.ADMIN: _l("Administrator"),
    Role.STAFF: _l("Staff"),
    Role.PARTNER: _l("Partner contact"),
})


class OrganisationKind(LabelledEnum):
    HOUSING_COMPANY = "housing_company"
    MUNICIPAL = "municipal"
    ASSOCIATION = "association"
    COUNSELLING = "counselling"
    OTHER = "other"


ORGANISATION_KIND_LABELS = set_labels(OrganisationKind, {
    OrganisationKind.HOUSING_COMPANY: _l("Housing company"),
    OrganisationKind.MUNICIPAL: _l("Municipal administration"),
    OrganisationKind.ASSOCIATION: _l("Association"),
    OrganisationKind.COUNSELLING: _l("Counselling centre"),
    OrganisationKind.OTHER: _l("Other"),
})


class ApplicationStatus(LabelledEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


APPLICATION_STATUS_LABELS = set_labels(ApplicationStatus, {
    ApplicationStatus.PENDING: _l("Pending"),
    ApplicationStatus.APPROVED: _l("Approved"),
    ApplicationStatus.REJECTED: _l("Rejected"),
})


class TokenPurpose(enum.StrEnum):
    RESET_PASSWORD = "reset_password"
    SET_PASSWORD = "set_password"


class Organisation(TimestampMixin, db.Model):
    """A partner organisation: housing company, city office, association, counselling centre."""

    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[OrganisationKind] = mapped_column(str_enum(OrganisationKind, "organisation_kind"))
    street: Mapped[str] = mapped_column(String(200), default="")
    postcode: Mapped[str] = mapped_column(String(20), default="")
    city: Mapped[str] = mapped_column(String(100), default="")
    phone: Mapped[str] = mapped_column(String(50), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    notes: Mapped[str] = mapped_column(Text, default="")

    contacts: Mapped[list["User"]] = relationship(
        back_populates="organisation", order_by="User.name"
    )

    def __repr__(self) -> str:
        return f"<Organisation {self.id} {self.name!r}>"


class User(UserMixin, TimestampMixin, db.Model):
    """An account: admin, staff member, or contact person of one partner organisation."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(
            "role <> 'partner' OR organisation_id IS NOT NULL", name="partner_has_organisation"
        ),
        CheckConstraint("email = lower(email)", name="email_lowercase"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(str_enum(Role, "role"))
    organisation_id: Mapped[int | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="RESTRICT"), index=True
    )
    password_hash: Mapped[str | None] = mapped_column(String(255))
    locale: Mapped[str] = mapped_column(String(5), default="de")
    active: Mapped[bool] = mapped_column(default=True)
    last_login_at: Mapped[datetime | None]

    organisation: Mapped[Organisation | None] = relationship(back_populates="contacts")

    # The sign-in this object was loaded for (``accounts.signin``); not a column.
    session_token = None

    def __repr__(self) -> str:
        return f"<User {self.id} {self.email} {self.role}>"

    # Flask-Login keeps this in the session and the remember cookie: the account and the sign-in,
    # which the server can end (sign-out, password change) whatever the browser still holds.
    def get_id(self) -> str:
        return f"{self.id}:{self.session_token}"

    @property
    def is_active(self) -> bool:
        return self.active

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password, method="scrypt")

    def check_password(self, password: str) -> bool:
        if not self.password_hash:
            return False
        return check_password_hash(self.password_hash, password)

    @property
    def has_password(self) -> bool:
        return bool(self.password_hash)

    @property
    def is_staff(self) -> bool:
        """Staff and admins run the centre's side of Fundus."""
        return self.role in (Role.STAFF, Role.ADMIN)

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN


class UserSession(db.Model):
    """One sign-in of an account: the browser holds its token (in the session and the remember
    cookie), the server its hash. Signing out, a password change or a deactivation revokes it."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class SignInThrottle(db.Model):
    """Failed sign-ins for one address (its hash, whether an account has it or not), from one client
    (``client`` "*": from everywhere), since the window began. Counted in the database with one
    atomic statement, so the limit holds across processes and concurrent attempts."""

    __tablename__ = "sign_in_throttles"

    account_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    client: Mapped[str] = mapped_column(String(64), primary_key=True)
    attempts: Mapped[int] = mapped_column(default=0)
    since: Mapped[datetime] = mapped_column(default=utcnow)


class AccountApplication(Stateful, TimestampMixin, db.Model):
    """A contact person's online application for a partner account, decided by staff."""

    __tablename__ = "account_applications"
    audit_type = "application"
    states = StateMachine("status", {
        "approve": moves([ApplicationStatus.PENDING], [ApplicationStatus.APPROVED]),
        "reject": moves([ApplicationStatus.PENDING], [ApplicationStatus.REJECTED]),
    }, refused=_l("This application has been decided already."))
    __table_args__ = (
        # At most one open application per address; decided ones are history.
        Index(
            "uq_account_applications_pending_email",
            "email",
            unique=True,
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254))
    organisation_id: Mapped[int | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="SET NULL"), index=True
    )
    organisation_name: Mapped[str] = mapped_column(String(200), default="")
    position: Mapped[str] = mapped_column(String(200), default="")
    phone: Mapped[str] = mapped_column(String(50), default="")
    message: Mapped[str] = mapped_column(Text, default="")
    locale: Mapped[str] = mapped_column(String(5), default="de")
    consent_at: Mapped[datetime]  # sent, with the privacy texts of ``privacy_version``
    privacy_version: Mapped[str] = mapped_column(String(32), default="")  # core.privacy.PRIVACY_VERSION
    status: Mapped[ApplicationStatus] = mapped_column(
        str_enum(ApplicationStatus, "application_status"), default=ApplicationStatus.PENDING
    )
    decided_at: Mapped[datetime | None]
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reject_reason: Mapped[str] = mapped_column(Text, default="")
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    organisation: Mapped[Organisation | None] = relationship()
    decided_by: Mapped[User | None] = relationship(foreign_keys=[decided_by_id])
    user: Mapped[User | None] = relationship(foreign_keys=[user_id])

    @property
    def organisation_label(self) -> str:
        return self.organisation.name if self.organisation else self.organisation_name


class UserToken(db.Model):
    """A single-use secret for password reset or first password; only its hash is stored."""

    __tablename__ = "user_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[TokenPurpose] = mapped_column(str_enum(TokenPurpose, "token_purpose"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]

    user: Mapped[User] = relationship()


audit.names("user", User.name)
audit.names("organisation", Organisation.name)
audit.names("application", AccountApplication.name)
