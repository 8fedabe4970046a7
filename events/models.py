"""Trainings, their sessions and registrations.

Seats are the rule users rely on: never more seat-holding registrations
(pending or confirmed) than seats. Registration locks the training row
(``SELECT … FOR UPDATE`` on PostgreSQL; SQLite transactions begin IMMEDIATE)
around counting and inserting. One e-mail holds at most one active
registration per training: a partial unique index.
"""

from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import CheckConstraint, Column, ForeignKey, Index, String, Table, Text, and_, or_, text
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from core import audit
from core.extensions import db
from core.models import LabelledEnum, TimestampMixin, set_labels, str_enum, utcnow
from core.states import Stateful, StateMachine, moves
from core.vocabulary import TargetGroup, target_groups
from materials.models import Material


class TrainingFormat(LabelledEnum):
    IN_PERSON = "in-person"
    ONLINE = "online"
    HYBRID = "hybrid"


FORMAT_LABELS = set_labels(TrainingFormat, {
    TrainingFormat.IN_PERSON: _l("In person"),
    TrainingFormat.ONLINE: _l("Online"),
    TrainingFormat.HYBRID: _l("Hybrid"),
})


class TrainingStatus(LabelledEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    CANCELLED = "cancelled"


TRAINING_STATUS_LABELS = set_labels(TrainingStatus, {
    TrainingStatus.DRAFT: _l("Draft"),
    TrainingStatus.PUBLISHED: _l("Published"),
    TrainingStatus.CANCELLED: _l("Training cancelled"),
})


class RegistrationStatus(LabelledEnum):
    PENDING = "pending"  # holds a seat until the e-mail is confirmed or the hold expires
    CONFIRMED = "confirmed"  # holds a seat
    WAITING = "waiting"  # on the waiting list
    CANCELLED = "cancelled"
    EXPIRED = "expired"


REGISTRATION_STATUS_LABELS = set_labels(RegistrationStatus, {
    RegistrationStatus.PENDING: _l("Waiting for e-mail confirmation"),
    RegistrationStatus.CONFIRMED: _l("Confirmed"),
    RegistrationStatus.WAITING: _l("Waiting list"),
    RegistrationStatus.CANCELLED: _l("Cancelled"),
    RegistrationStatus.EXPIRED: _l("Expired"),
})

# Answers that can say something about a person's health: stored only with their own consent
# (Art. 9 (2) (a) GDPR), deleted when the training has ended.
HEALTH_ANSWERS = ("accessibility", "dietary")

SEAT_HOLDING = (RegistrationStatus.PENDING, RegistrationStatus.CONFIRMED)
ACTIVE = (RegistrationStatus.PENDING, RegistrationStatus.CONFIRMED, RegistrationStatus.WAITING)


class Training(Stateful, TimestampMixin, db.Model):
    """A training (Fortbildung) with one or more sessions.

    ``seats_taken`` counts the seat-holding registrations. Triggers on ``registrations`` keep it in
    step in the same transaction as any change of a registration (migration ``5eab2c04a1f0``), and
    its CHECK refuses more than ``seats``: an overbooking fails in the database, whoever writes it.
    """

    __tablename__ = "trainings"
    __table_args__ = (
        CheckConstraint("seats > 0", name="seats_positive"),
        CheckConstraint("seats_taken >= 0 AND seats_taken <= seats", name="seats_not_overbooked"),
    )
    states = StateMachine("status", {
        "publish": moves([TrainingStatus.DRAFT], [TrainingStatus.PUBLISHED]),
        "cancel": moves([TrainingStatus.DRAFT, TrainingStatus.PUBLISHED], [TrainingStatus.CANCELLED]),
        "edit": {TrainingStatus.DRAFT: frozenset([TrainingStatus.DRAFT]),
                 TrainingStatus.PUBLISHED: frozenset([TrainingStatus.PUBLISHED])},
    }, refused=_l("This training has changed meanwhile; please look at it again."))

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    target_groups: Mapped[str] = mapped_column(String(300), default="")  # comma-separated TargetGroup values
    format: Mapped[TrainingFormat] = mapped_column(str_enum(TrainingFormat, "training_format"))
    venue: Mapped[str] = mapped_column(String(300), default="")
    address: Mapped[str] = mapped_column(Text, default="")
    online_link: Mapped[str] = mapped_column(String(500), default="")  # only for confirmed participants
    trainers: Mapped[str] = mapped_column(String(500), default="")
    language: Mapped[str] = mapped_column(String(8), default="de")
    seats: Mapped[int]
    seats_taken: Mapped[int] = mapped_column(default=0, server_default="0")  # kept by the database
    registration_opens_at: Mapped[datetime | None]
    registration_closes_at: Mapped[datetime | None]
    status: Mapped[TrainingStatus] = mapped_column(
        str_enum(TrainingStatus, "training_status"), default=TrainingStatus.DRAFT
    )
    # When it was first published: a draft cancelled before that was never public and stays private.
    published_at: Mapped[datetime | None]
    ask_accessibility: Mapped[bool] = mapped_column(default=False)
    ask_dietary: Mapped[bool] = mapped_column(default=False)
    free_question: Mapped[str] = mapped_column(String(300), default="")
    # Rises whenever time, place or status change, for calendar clients.
    sequence: Mapped[int] = mapped_column(default=0)

    sessions: Mapped[list["TrainingSession"]] = relationship(
        back_populates="training", order_by="TrainingSession.starts_at", cascade="all, delete-orphan"
    )
    registrations: Mapped[list["Registration"]] = relationship(back_populates="training")
    handouts: Mapped[list["Material"]] = relationship(secondary="training_handouts", order_by="Material.title")

    @property
    def target_group_list(self) -> list[TargetGroup]:
        return target_groups(self.target_groups)

    @property
    def is_cancelled(self) -> bool:
        return self.status == TrainingStatus.CANCELLED

    @hybrid_property
    def is_public(self) -> bool:
        """What the programme, the feeds, the API and the training's page show everyone: a published
        training, or one cancelled after it was published (still listed, marked cancelled). Never a draft,
        nor a draft cancelled before it was published."""
        return self.status == TrainingStatus.PUBLISHED or (
            self.status == TrainingStatus.CANCELLED and self.published_at is not None)

    @is_public.inplace.expression
    @classmethod
    def _is_public(cls):
        return or_(cls.status == TrainingStatus.PUBLISHED,
                   and_(cls.status == TrainingStatus.CANCELLED, cls.published_at.is_not(None)))

    @validates("status")
    def _note_publication(self, _key, status):
        """The first publication is kept, by whatever sets the status (the state machine, a fixture)."""
        if status == TrainingStatus.PUBLISHED and self.published_at is None:
            self.published_at = utcnow()
        return status

    @property
    def has_venue(self) -> bool:
        """People come to a place (in person or hybrid)."""
        return self.format != TrainingFormat.ONLINE

    @property
    def starts_at(self) -> datetime | None:
        return self.sessions[0].starts_at if self.sessions else None

    @property
    def ends_at(self) -> datetime | None:
        return max(s.ends_at for s in self.sessions) if self.sessions else None


training_handouts = Table(
    "training_handouts",
    db.Model.metadata,
    Column("training_id", ForeignKey("trainings.id", ondelete="CASCADE"), primary_key=True),
    Column("material_id", ForeignKey("materials.id", ondelete="CASCADE"), primary_key=True),
)


class TrainingSession(db.Model):
    """One dated part of a training."""

    __tablename__ = "training_sessions"
    __table_args__ = (CheckConstraint("ends_at > starts_at", name="ends_after_start"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    training_id: Mapped[int] = mapped_column(ForeignKey("trainings.id", ondelete="CASCADE"), index=True)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime] = mapped_column(index=True)  # programme and feeds: sessions still to come

    training: Mapped[Training] = relationship(back_populates="sessions")


TRAININGS_COUNTER = "trainings"  # raised by core.changes with every change of a training or its sessions


class Registration(Stateful, TimestampMixin, db.Model):
    """A person's registration for a training, managed through a secret link (no account)."""

    __tablename__ = "registrations"
    states = StateMachine("status", {
        # Confirming the address while on the waiting list keeps the place there.
        "confirm": {RegistrationStatus.PENDING: frozenset([RegistrationStatus.CONFIRMED]),
                    RegistrationStatus.WAITING: frozenset([RegistrationStatus.WAITING])},
        # A free seat: held until confirmed, or confirmed at once for a confirmed address.
        "promote": moves([RegistrationStatus.WAITING], [RegistrationStatus.PENDING, RegistrationStatus.CONFIRMED]),
        "give_seat": moves([RegistrationStatus.WAITING], [RegistrationStatus.PENDING, RegistrationStatus.CONFIRMED]),
        "cancel": moves(ACTIVE, [RegistrationStatus.CANCELLED]),
        "expire": moves([RegistrationStatus.PENDING], [RegistrationStatus.EXPIRED]),
        # Staff end a registration whose address is unconfirmed before its time (a flood of
        # registrations nobody will confirm): its held seat or its place on the waiting list.
        "release": moves([RegistrationStatus.PENDING, RegistrationStatus.WAITING], [RegistrationStatus.EXPIRED]),
        "end": moves(ACTIVE, [RegistrationStatus.CANCELLED]),  # the training is cancelled
    }, refused=_l("This registration is not active."))
    __table_args__ = (
        Index(
            "uq_registrations_active_email",
            "training_id",
            "email",
            unique=True,
            sqlite_where=text("status IN ('pending', 'confirmed', 'waiting')"),
            postgresql_where=text("status IN ('pending', 'confirmed', 'waiting')"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    training_id: Mapped[int] = mapped_column(ForeignKey("trainings.id", ondelete="RESTRICT"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254), index=True)
    organisation: Mapped[str] = mapped_column(String(200), default="")
    position: Mapped[str] = mapped_column(String(200), default="")
    answers: Mapped[str] = mapped_column(Text, default="")  # JSON of the extra questions
    locale: Mapped[str] = mapped_column(String(5), default="de")
    status: Mapped[RegistrationStatus] = mapped_column(str_enum(RegistrationStatus, "registration_status"))
    confirmed_at: Mapped[datetime | None]  # e-mail confirmed (double opt-in)
    hold_expires_at: Mapped[datetime | None]  # pending seats are freed after this
    manage_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    confirm_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    consent_at: Mapped[datetime]  # sent, with the privacy texts of ``privacy_version``
    privacy_version: Mapped[str] = mapped_column(String(32), default="")  # core.privacy.PRIVACY_VERSION
    # Explicit consent (Art. 9 (2) (a) GDPR) to the answers that can be health data (accessibility,
    # dietary); they are deleted when the training has ended (``events.personal_data``).
    health_consent_at: Mapped[datetime | None]
    # Random per registration; the manage and confirm links are derived from it with the secret key,
    # so every mail can carry them while the database holds only their hashes.
    link_salt: Mapped[str | None] = mapped_column(String(64))
    reminded_at: Mapped[datetime | None]  # the reminder two days before was sent
    anonymised_at: Mapped[datetime | None]  # personal data removed; the row stays for statistics
    # When the training's cancellation ended it while it held a seat: the person's calendar keeps the
    # training, as cancelled, instead of losing it.
    ended_with_seat_at: Mapped[datetime | None]
    # Calendar messages (invitations, cancellations) sent about this registration: the SEQUENCE of
    # the next one to the same address rises with them (events.notifications.invitation_sequence).
    calendar_messages: Mapped[int] = mapped_column(default=0, server_default="0")

    training: Mapped[Training] = relationship(back_populates="registrations")
    attended: Mapped[list["Attendance"]] = relationship(back_populates="registration", cascade="all, delete-orphan")

    @property
    def holds_seat(self) -> bool:
        return self.status in SEAT_HOLDING

    @property
    def is_waiting(self) -> bool:
        return self.status == RegistrationStatus.WAITING

    @property
    def sees_details(self) -> bool:
        """Confirmed participants see the full address and the online link."""
        return self.status == RegistrationStatus.CONFIRMED

    @property
    def unconfirmed(self) -> bool:
        """Active, and the address was never confirmed: what staff may free after a flood."""
        return self.status in ACTIVE and self.confirmed_at is None

    @property
    def needs_confirmation(self) -> bool:
        """Holds a seat that is freed unless the address is confirmed in time."""
        return self.status == RegistrationStatus.PENDING


# The organisation Fundus knows by the name a registration gave, if any (a table of its own, so adding it
# left the registrations table and its seat triggers as they were). It stays when the personal data
# goes, so the figures still know which organisations were reached (accounts.organisations.known_organisation_id).
registration_organisations = Table(
    "registration_organisations",
    db.metadata,
    Column("registration_id", ForeignKey("registrations.id", ondelete="CASCADE"), primary_key=True),
    Column("organisation_id", ForeignKey("organisations.id", ondelete="CASCADE"), nullable=False, index=True),
)


class Attendance(db.Model):
    """A registered person was there for one session (marked by staff)."""

    __tablename__ = "attendances"

    registration_id: Mapped[int] = mapped_column(
        ForeignKey("registrations.id", ondelete="CASCADE"), primary_key=True
    )
    session_id: Mapped[int] = mapped_column(
        ForeignKey("training_sessions.id", ondelete="CASCADE"), primary_key=True, index=True
    )

    registration: Mapped[Registration] = relationship(back_populates="attended")


class TraineeKey(TimestampMixin, db.Model):
    """One address's keys: the link to "my registrations" and the personal calendar feed.

    Both are random (never derived from the address) and revocable by drawing a new salt;
    the links are derived from the salts with the secret key, the database keeps their hashes.
    """

    __tablename__ = "trainee_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    list_salt: Mapped[str] = mapped_column(String(64))
    list_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    calendar_salt: Mapped[str] = mapped_column(String(64))
    calendar_token_hash: Mapped[str] = mapped_column(String(64), unique=True)


audit.names("training", Training.title)
audit.names("registration", Registration.name)
