"""The words of the materials feature: kinds, lending, conditions, stock reasons and the states of
requests and bookings, each with its label in both languages (``materials.models`` re-exports them)."""

import enum

from flask_babel import lazy_gettext as _l

from core.models import LabelledEnum, set_labels


class MaterialKind(LabelledEnum):
    BROCHURE = "brochure"
    CONCEPT = "concept"
    EXHIBITION = "exhibition"
    METHOD_KIT = "method-kit"
    POSTER = "poster"
    MEDIA = "media"
    OTHER = "other"


MATERIAL_KIND_LABELS = set_labels(MaterialKind, {
    MaterialKind.BROCHURE: _l("Brochure"),
    MaterialKind.CONCEPT: _l("Concept paper, handout"),
    MaterialKind.EXHIBITION: _l("Exhibition kit"),
    MaterialKind.METHOD_KIT: _l("Method kit"),
    MaterialKind.POSTER: _l("Poster"),
    MaterialKind.MEDIA: _l("Book, film"),
    MaterialKind.OTHER: _l("Other"),
})


class Lending(enum.StrEnum):
    """How a material is given out."""

    GIVEAWAY = "giveaway"  # by quantity from stock, not returned
    RETURNABLE = "returnable"  # units booked for a period and returned


class UnitCondition(LabelledEnum):
    GOOD = "good"
    DAMAGED = "damaged"
    INCOMPLETE = "incomplete"
    LOST = "lost"


UNIT_CONDITION_LABELS = set_labels(UnitCondition, {
    UnitCondition.GOOD: _l("Good"),
    UnitCondition.DAMAGED: _l("Damaged"),
    UnitCondition.INCOMPLETE: _l("Incomplete"),
    UnitCondition.LOST: _l("Lost"),
})


class StockReason(LabelledEnum):
    INTAKE = "intake"  # new print run, delivery
    CORRECTION = "correction"  # stocktaking
    RESERVED = "reserved"  # taken from stock for a submitted request
    HANDOUT = "handout"  # handed out: by staff (a negative change), or a request's copies at its handover (no change)
    CANCELLED = "cancelled"  # a request's reserved copies back in stock


STOCK_REASON_LABELS = set_labels(StockReason, {
    StockReason.INTAKE: _l("Intake"),
    StockReason.CORRECTION: _l("Correction"),
    StockReason.RESERVED: _l("Reserved"),
    StockReason.HANDOUT: _l("Handed out"),
    StockReason.CANCELLED: _l("Reservation released"),
})


class RequestStatus(LabelledEnum):
    SUBMITTED = "submitted"
    APPROVED = "approved"
    REJECTED = "rejected"
    HANDED_OVER = "handed_over"
    RETURNED = "returned"
    CLOSED = "closed"
    CANCELLED = "cancelled"


REQUEST_STATUS_LABELS = set_labels(RequestStatus, {
    RequestStatus.SUBMITTED: _l("Submitted"),
    RequestStatus.APPROVED: _l("Approved"),
    RequestStatus.REJECTED: _l("Rejected"),
    RequestStatus.HANDED_OVER: _l("Handed over"),
    RequestStatus.RETURNED: _l("Returned"),
    RequestStatus.CLOSED: _l("Closed"),
    RequestStatus.CANCELLED: _l("Cancelled"),
})


class Delivery(enum.StrEnum):
    PICKUP = "pickup"
    SHIPPING = "shipping"


class BookingStatus(LabelledEnum):
    RESERVED = "reserved"  # promised for the period
    HANDED_OVER = "handed_over"  # the unit is out (an open loan)
    RETURNED = "returned"
    CANCELLED = "cancelled"


BOOKING_STATUS_LABELS = set_labels(BookingStatus, {
    BookingStatus.RESERVED: _l("Reserved"),
    BookingStatus.HANDED_OVER: _l("Handed over"),
    BookingStatus.RETURNED: _l("Returned"),
    BookingStatus.CANCELLED: _l("Cancelled"),
})
ACTIVE_BOOKING = (BookingStatus.RESERVED, BookingStatus.HANDED_OVER)  # holding the unit for their period
