"""Catalogue, language editions, giveaway stock with its ledger, returnable units, requests and bookings.

The rules users rely on are enforced by the database, not only by code:
- ``editions.stock_on_hand`` has a CHECK (>= 0); services change it with a
  conditional UPDATE and write a ledger row in the same transaction.
- A unit's active bookings never overlap, counting the buffer days after each
  booking: an exclusion constraint on PostgreSQL, a trigger on SQLite (both in
  the migration, as neither is expressible in portable metadata).
- A unit is in at most one open loan: a partial unique index.
"""

import unicodedata
from datetime import date, datetime

from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from accounts.models import Organisation, User
from core import audit
from core.extensions import db
from core.models import TimestampMixin, str_enum, utcnow
from core.states import Stateful, StateMachine, moves
from core.vocabulary import TargetGroup, target_groups
from materials.vocabulary import (  # noqa: F401 (re-exported: the models' words are imported from here too)
    ACTIVE_BOOKING,
    BOOKING_STATUS_LABELS,
    MATERIAL_KIND_LABELS,
    REQUEST_STATUS_LABELS,
    STOCK_REASON_LABELS,
    UNIT_CONDITION_LABELS,
    BookingStatus,
    Delivery,
    Lending,
    MaterialKind,
    RequestStatus,
    StockReason,
    UnitCondition,
)


def fold(value: str) -> str:
    """Fold text for search: case, accents and German umlaut spellings compare equal.

    "Broschüre", "Broschuere" and "broschure" all become "broschure".
    """
    value = value.casefold().replace("ß", "ss")
    value = unicodedata.normalize("NFKD", value)
    value = "".join(c for c in value if not unicodedata.combining(c))
    for spelled, plain in (("ae", "a"), ("oe", "o"), ("ue", "u")):
        value = value.replace(spelled, plain)
    return value


material_topics = Table(
    "material_topics",
    db.metadata,
    Column("material_id", ForeignKey("materials.id", ondelete="CASCADE"), primary_key=True),
    Column("topic_id", ForeignKey("topics.id", ondelete="CASCADE"), primary_key=True),
)


class Topic(db.Model):
    """A tag such as "AGG" or "Wohnungssuche"."""

    __tablename__ = "topics"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)  # German, as staff type it on a material
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    name_en: Mapped[str] = mapped_column(String(100), default="", server_default="")  # empty: the German name

    @property
    def label(self) -> str:
        """The name in the page's language (the German name where no English one is given)."""
        return self.name_en if self.name_en and str(get_locale()) == "en" else self.name


class Material(TimestampMixin, db.Model):
    """An entry in the catalogue; it is given out through its language editions."""

    __tablename__ = "materials"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(300), index=True)  # the catalogue's order
    subtitle: Mapped[str] = mapped_column(String(300), default="")
    kind: Mapped[MaterialKind] = mapped_column(str_enum(MaterialKind, "material_kind"))
    lending: Mapped[Lending] = mapped_column(str_enum(Lending, "lending"))
    description: Mapped[str] = mapped_column(Text, default="")
    target_groups: Mapped[str] = mapped_column(String(300), default="")  # comma-separated TargetGroup values
    publisher: Mapped[str] = mapped_column(String(300), default="")
    co_publishers: Mapped[str] = mapped_column(String(500), default="")
    year: Mapped[int | None]
    cover_path: Mapped[str] = mapped_column(String(300), default="")
    pdf_path: Mapped[str] = mapped_column(String(300), default="")
    # Giveaway material
    per_request_max: Mapped[int | None]
    low_stock_threshold: Mapped[int] = mapped_column(default=0)
    # Returnable material
    loan_days_max: Mapped[int | None]
    buffer_days: Mapped[int] = mapped_column(default=2)
    pickup_notes: Mapped[str] = mapped_column(Text, default="")
    archived_at: Mapped[datetime | None]
    search_text: Mapped[str] = mapped_column(Text, default="")

    editions: Mapped[list["Edition"]] = relationship(back_populates="material", order_by="Edition.language")
    topics: Mapped[list[Topic]] = relationship(secondary=material_topics, order_by=Topic.name)
    contents: Mapped[list["KitContent"]] = relationship(
        back_populates="material", order_by="KitContent.position", cascade="all, delete-orphan"
    )

    __table_args__ = (
        CheckConstraint("buffer_days >= 0", name="buffer_days_not_negative"),
        CheckConstraint("per_request_max IS NULL OR per_request_max > 0", name="per_request_max_positive"),
        CheckConstraint("loan_days_max IS NULL OR loan_days_max > 0", name="loan_days_max_positive"),
    )

    @property
    def target_group_list(self) -> list[TargetGroup]:
        return target_groups(self.target_groups)

    @property
    def is_returnable(self) -> bool:
        return self.lending == Lending.RETURNABLE

    def refresh_search_text(self) -> None:
        parts = [self.title, self.subtitle, self.description, self.publisher, self.co_publishers]
        parts += [name for topic in self.topics for name in (topic.name, topic.name_en)]
        self.search_text = fold(" ".join(p for p in parts if p))


class StoredFile(db.Model):
    """An uploaded file as served (a cover, its thumbnail, a PDF), kept in the database so that every app host
    serves it and one backup holds it. Written once under a name never used again (``materials.files``)."""

    __tablename__ = "stored_files"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int]
    digest: Mapped[str] = mapped_column(String(64))  # SHA-256 of the content, hex: the ETag
    content: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Edition(db.Model):
    """One language version of a material, with its own stock or units."""

    __tablename__ = "editions"
    __table_args__ = (
        UniqueConstraint("material_id", "language", name="uq_editions_material_language"),
        CheckConstraint("stock_on_hand >= 0", name="stock_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    material_id: Mapped[int] = mapped_column(ForeignKey("materials.id", ondelete="CASCADE"), index=True)
    language: Mapped[str] = mapped_column(String(8))  # ISO 639-1: de, en, ar, tr …
    stock_on_hand: Mapped[int] = mapped_column(default=0)

    material: Mapped[Material] = relationship(back_populates="editions")
    units: Mapped[list["Unit"]] = relationship(back_populates="edition", order_by="Unit.inventory_code")


class StockEntry(db.Model):
    """The stock ledger: every change of a giveaway edition's stock, with who, when, why."""

    __tablename__ = "stock_entries"
    # Only a handover leaves the stock as it is (its copies were reserved at submission).
    __table_args__ = (CheckConstraint("delta <> 0 OR reason = 'handout'", name="delta_not_zero"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    edition_id: Mapped[int] = mapped_column(ForeignKey("editions.id", ondelete="RESTRICT"), index=True)
    delta: Mapped[int]
    balance_after: Mapped[int]
    reason: Mapped[StockReason] = mapped_column(str_enum(StockReason, "stock_reason"))
    note: Mapped[str] = mapped_column(Text, default="")
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    request_id: Mapped[int | None] = mapped_column(ForeignKey("requests.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    edition: Mapped[Edition] = relationship()
    user: Mapped[User | None] = relationship()

    @property
    def what(self) -> str:
        """What happened, in words: "Reserved for request #12", "Handed out with request #12"."""
        if self.request_id is None:
            return self.reason.label
        return str(STOCK_EVENTS.get(self.reason, _l("%(reason)s (request #%(number)s)")) % {
            "reason": self.reason.label, "number": self.request_id})


STOCK_EVENTS = {
    StockReason.RESERVED: _l("Reserved for request #%(number)s"),
    StockReason.HANDOUT: _l("Handed out with request #%(number)s"),
    StockReason.CANCELLED: _l("Released from request #%(number)s"),
}


class KitContent(db.Model):
    """One line of a kit's contents list, checked at handover and return."""

    __tablename__ = "kit_contents"

    id: Mapped[int] = mapped_column(primary_key=True)
    material_id: Mapped[int] = mapped_column(ForeignKey("materials.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(default=0)
    name: Mapped[str] = mapped_column(String(200))
    quantity: Mapped[int] = mapped_column(default=1)

    material: Mapped[Material] = relationship(back_populates="contents")


BLOCKED = (UnitCondition.DAMAGED, UnitCondition.INCOMPLETE, UnitCondition.LOST)


class Unit(Stateful, TimestampMixin, db.Model):
    """One physical returnable item with an inventory code.

    Its condition is noted at every return; a damaged, incomplete or lost unit is blocked (DOMAIN
    rule 9) until staff clear it. A return never clears a blocked unit by itself.
    """

    __tablename__ = "units"
    states = StateMachine("condition", {
        "return": {UnitCondition.GOOD: frozenset(UnitCondition),
                   **moves(BLOCKED, BLOCKED)},
        "clear": moves(BLOCKED, [UnitCondition.GOOD]),
    }, refused=_l("The unit's condition has changed meanwhile; please look at it again."))

    id: Mapped[int] = mapped_column(primary_key=True)
    edition_id: Mapped[int] = mapped_column(ForeignKey("editions.id", ondelete="RESTRICT"), index=True)
    inventory_code: Mapped[str] = mapped_column(String(50), unique=True)
    condition: Mapped[UnitCondition] = mapped_column(
        str_enum(UnitCondition, "unit_condition"), default=UnitCondition.GOOD
    )
    condition_note: Mapped[str] = mapped_column(Text, default="")
    retired_at: Mapped[datetime | None]

    edition: Mapped[Edition] = relationship(back_populates="units")

    @property
    def blocked(self) -> bool:
        """Damaged, incomplete or lost: it stays in the house until staff clear it."""
        return self.condition in BLOCKED

    @property
    def bookable(self) -> bool:
        """A damaged, incomplete, lost or retired unit takes no new bookings until staff clear it."""
        return self.condition == UnitCondition.GOOD and self.retired_at is None


class Request(Stateful, TimestampMixin, db.Model):
    """What a partner organisation asks for: quantities of brochures and/or bookings of units."""

    __tablename__ = "requests"
    # Staff lists filter by status, newest first: a status's requests, not the whole history.
    # The figures count a period's requests by the day they came in and by the day of the decision.
    __table_args__ = (Index("ix_requests_status_id", "status", "id"),
                      Index("ix_requests_created_at_status", "created_at", "status"),
                      Index("ix_requests_decided_at_created_at", "decided_at", "created_at"))
    states = StateMachine("status", {
        "approve": moves([RequestStatus.SUBMITTED], [RequestStatus.APPROVED]),
        "reject": moves([RequestStatus.SUBMITTED, RequestStatus.APPROVED], [RequestStatus.REJECTED]),
        "cancel": moves([RequestStatus.SUBMITTED, RequestStatus.APPROVED], [RequestStatus.CANCELLED]),
        # Units go out one by one; a request of brochures only is done when handed over.
        "hand_over": moves([RequestStatus.APPROVED, RequestStatus.HANDED_OVER],
                           [RequestStatus.HANDED_OVER, RequestStatus.CLOSED]),
        "return": moves([RequestStatus.HANDED_OVER], [RequestStatus.RETURNED]),  # the last unit is back
        "close": moves([RequestStatus.RETURNED], [RequestStatus.CLOSED]),  # staff checked everything
    }, refused=_l("This request has changed meanwhile; please look at it again."))

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="RESTRICT"), index=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    status: Mapped[RequestStatus] = mapped_column(
        str_enum(RequestStatus, "request_status"), default=RequestStatus.SUBMITTED
    )
    purpose: Mapped[str] = mapped_column(Text, default="")
    audience: Mapped[str] = mapped_column(String(300), default="")
    delivery: Mapped[Delivery] = mapped_column(str_enum(Delivery, "delivery"), default=Delivery.PICKUP)
    shipping_address: Mapped[str] = mapped_column(Text, default="")
    decided_at: Mapped[datetime | None]
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reject_reason: Mapped[str] = mapped_column(Text, default="")
    approval_note: Mapped[str] = mapped_column(Text, default="")  # why fewer copies than asked for
    # A random key per request form: a double-clicked submit finds the first request.
    submit_key: Mapped[str | None] = mapped_column(String(64), unique=True)

    organisation: Mapped[Organisation] = relationship()
    created_by: Mapped[User | None] = relationship(foreign_keys=[created_by_id])
    decided_by: Mapped[User | None] = relationship(foreign_keys=[decided_by_id])
    lines: Mapped[list["RequestLine"]] = relationship(back_populates="request", cascade="all, delete-orphan")
    bookings: Mapped[list["Booking"]] = relationship(back_populates="request", order_by="Booking.starts_on")

    @property
    def status_label(self) -> str:
        return self.status.label

    @property
    def ships(self) -> bool:
        """Sent to an address rather than picked up."""
        return self.delivery == Delivery.SHIPPING

    @property
    def awaiting_handover(self) -> list["Booking"]:
        """The bookings whose units are still to be handed over."""
        return [b for b in self.bookings if b.can("hand_over")]

    @property
    def materials_with_notes(self) -> list[Material]:
        """The materials of the request that have pickup or delivery notes, each once."""
        found = {line.edition.material for line in self.lines}
        found |= {b.unit.edition.material for b in self.bookings_in_effect}
        return sorted((m for m in found if m.pickup_notes), key=lambda m: m.title)

    @property
    def bookings_in_effect(self) -> list["Booking"]:
        """The bookings that were not called off (reserved, out or back)."""
        return [b for b in self.bookings if b.status != BookingStatus.CANCELLED]


class RequestLine(db.Model):
    """A quantity of a giveaway edition in a request (taken from stock when submitted)."""

    __tablename__ = "request_lines"
    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id", ondelete="CASCADE"), index=True)
    edition_id: Mapped[int] = mapped_column(ForeignKey("editions.id", ondelete="RESTRICT"), index=True)
    quantity: Mapped[int]
    requested: Mapped[int | None]  # what the partner asked for, where staff approved fewer

    request: Mapped[Request] = relationship(back_populates="lines")
    edition: Mapped[Edition] = relationship()


class Booking(Stateful, TimestampMixin, db.Model):
    """A unit promised to a request for a period; once handed over it is an open loan."""

    __tablename__ = "bookings"
    states = StateMachine("status", {
        "hand_over": moves([BookingStatus.RESERVED], [BookingStatus.HANDED_OVER]),
        "take_back": moves([BookingStatus.HANDED_OVER], [BookingStatus.RETURNED]),
        "release": moves([BookingStatus.RESERVED], [BookingStatus.CANCELLED]),  # its request ended
        "extend": {state: frozenset([state]) for state in (BookingStatus.RESERVED, BookingStatus.HANDED_OVER)},
        "reassign": moves([BookingStatus.RESERVED], [BookingStatus.RESERVED]),
    }, refused=_l("This booking cannot be changed any more."))
    __table_args__ = (
        CheckConstraint("ends_on >= starts_on", name="period_not_reversed"),
        CheckConstraint("blocked_until >= ends_on", name="buffer_after_period"),
        # Never two open loans for one unit.
        Index(
            "uq_bookings_open_loan",
            "unit_id",
            unique=True,
            sqlite_where=text("status = 'handed_over'"),
            postgresql_where=text("status = 'handed_over'"),
        ),
        # The staff's loan lists (overdue, returns, pickups) read the open bookings by date, then id:
        # with the id in the index a page is the next rows of the index, not a sort of every match.
        Index("ix_bookings_status_ends_on", "status", "ends_on", "id"),
        Index("ix_bookings_status_starts_on", "status", "starts_on", "id"),
        # The figures read a period's loans by their first day, last day and return from the index alone.
        Index("ix_bookings_starts_on_figures", "starts_on", "status", "unit_id", "returned_at"),
        Index("ix_bookings_ends_on_figures", "ends_on", "status", "reminded_at"),
        Index("ix_bookings_returned_at_condition", "returned_at", "return_condition"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id", ondelete="RESTRICT"), index=True)
    request_id: Mapped[int | None] = mapped_column(ForeignKey("requests.id", ondelete="CASCADE"), index=True)
    starts_on: Mapped[date]
    ends_on: Mapped[date]
    # Last day the unit is taken: the end plus the material's buffer days for packing and transport.
    blocked_until: Mapped[date]
    status: Mapped[BookingStatus] = mapped_column(
        str_enum(BookingStatus, "booking_status"), default=BookingStatus.RESERVED
    )
    reminded_at: Mapped[datetime | None]  # last overdue reminder
    # What staff noted when the unit came back from this booking: every return keeps its own record,
    # so a unit's bookings show each damage even after staff cleared it (the unit has only its latest).
    returned_at: Mapped[datetime | None]
    return_condition: Mapped[UnitCondition | None] = mapped_column(
        str_enum(UnitCondition, "return_condition", constraint=False))
    return_note: Mapped[str] = mapped_column(Text, default="", server_default="")

    unit: Mapped[Unit] = relationship()
    request: Mapped[Request | None] = relationship(back_populates="bookings")


class Cart(db.Model):
    """The request a partner is putting together, kept per person until they submit it: it survives
    signing out and in, and another browser of the same person sees it. ``items`` is the cart as
    ``materials.cart`` reads it (JSON), nothing personal besides whose it is."""

    __tablename__ = "carts"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    items: Mapped[str] = mapped_column(Text, default="[]")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


audit.names("material", Material.title)
audit.names("topic", Topic.name)
audit.names("unit", Unit.inventory_code)
audit.names("edition", Material.title, Edition, Edition.material)
audit.names("booking", Unit.inventory_code, Booking, Booking.unit)
