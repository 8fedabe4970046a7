"""The staff's lists: the morning overview and the full loan and low-stock lists."""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

from flask_sqlalchemy.pagination import Pagination
from sqlalchemy import Row, Select, Subquery, func, select

from accounts.models import Organisation
from core.extensions import db
from materials.models import (
    BLOCKED,
    Booking,
    BookingStatus,
    Edition,
    Lending,
    Material,
    Request,
    RequestLine,
    RequestStatus,
    Unit,
)


@dataclass
class Bounded:
    """The first rows of a list and how many it has in all."""

    rows: list
    total: int

    @property
    def more(self) -> bool:
        return self.total > len(self.rows)


@dataclass
class Overview:
    pending: Bounded
    pickups: Bounded
    returns: Bounded
    overdue: Bounded
    low_stock: Bounded
    blocked: Bounded


OVERVIEW_ROWS = 20


@dataclass(frozen=True)
class StaffList:
    """A staff list: which rows (``query``, a select of one table's ids with its filters, read through
    an index), their ``order``, and what a shown row displays (``show`` turns a subquery of the shown
    ids, column ``id``, into the select of their columns). Only the rows shown are joined for display,
    and they come back as plain rows: building ORM objects for them cost more than the query (50
    overdue loans with their unit, material and organisation: 3.4 ms as objects, 0.5 ms as rows)."""

    query: Select
    order: tuple
    show: Callable[[Subquery], Select]

    def ids(self, limit: int, offset: int = 0, *columns) -> Subquery:
        return self.query.add_columns(*columns).order_by(*self.order).limit(limit).offset(offset).subquery()

    def rows(self, ids: Subquery, *columns) -> list[Row]:
        return db.session.execute(self.show(ids).add_columns(*columns).order_by(*self.order)).all()

    def count(self) -> int:
        return db.session.scalar(select(func.count()).select_from(self.query.order_by(None).subquery()))


class StaffPage(Pagination):
    """A page of a staff list for the pager; Flask-SQLAlchemy's pagination is extended by
    implementing its two queries (``staff_list`` is passed as a keyword)."""

    def _query_items(self) -> list[Row]:
        staff_list = self._query_args["staff_list"]
        return staff_list.rows(staff_list.ids(self.per_page, self._query_offset))

    def _query_count(self) -> int:
        return self._query_args["staff_list"].count()


def bounded(staff_list: StaffList, limit: int = OVERVIEW_ROWS) -> Bounded:
    """The first ``limit`` rows and the total in one query, so that the overview costs the same however
    long a list grows (the full lists are paginated pages of their own). The window count and the
    limit run over the list's own rows, through its index."""
    first = staff_list.ids(limit, 0, func.count().over().label("total"))
    rows = staff_list.rows(first, first.c.total)
    return Bounded(rows, rows[0].total if rows else 0)


def _loan_rows(ids: Subquery) -> Select:
    return (select(Booking.id, Booking.starts_on, Booking.ends_on, Booking.request_id, Unit.inventory_code,
                   Material.title, Organisation.name.label("organisation"))
            .select_from(Booking).join(ids, ids.c.id == Booking.id)
            .join(Booking.unit).join(Unit.edition).join(Edition.material)
            .outerjoin(Booking.request).outerjoin(Request.organisation))


def loans_list(kind: str, today: date) -> StaffList:
    """One of the staff's loan lists, in the order they are worked through (indexed by status, date, id)."""
    week_end = today + timedelta(days=7)
    if kind == "overdue":
        query = select(Booking.id).where(Booking.status == BookingStatus.HANDED_OVER, Booking.ends_on < today)
        order = Booking.ends_on
    elif kind == "returns":
        query = select(Booking.id).where(Booking.status == BookingStatus.HANDED_OVER,
                                         Booking.ends_on >= today, Booking.ends_on <= week_end)
        order = Booking.ends_on
    elif kind == "pickups":
        query = (select(Booking.id).join(Booking.request)
                 .where(Booking.status == BookingStatus.RESERVED,
                        Request.status.in_((RequestStatus.APPROVED, RequestStatus.HANDED_OVER)),
                        Booking.starts_on >= today, Booking.starts_on <= week_end))
        order = Booking.starts_on
    else:
        raise ValueError(kind)
    return StaffList(query, (order, Booking.id), _loan_rows)


def _stock_rows(ids: Subquery) -> Select:
    return (select(Edition.id, Edition.material_id, Edition.language, Edition.stock_on_hand, Material.title,
                   Material.low_stock_threshold)
            .select_from(Edition).join(ids, ids.c.id == Edition.id).join(Edition.material))


def low_stock_list() -> StaffList:
    """Giveaway editions of the current catalogue below their material's threshold, the emptiest first."""
    query = (select(Edition.id).join(Edition.material)
             .where(Material.lending == Lending.GIVEAWAY, Material.archived_at.is_(None),
                    Edition.stock_on_hand < Material.low_stock_threshold))
    return StaffList(query, (Edition.stock_on_hand, Edition.id), _stock_rows)


def _request_rows(ids: Subquery) -> Select:
    return (select(Request.id, Request.created_at, Organisation.name.label("organisation"))
            .select_from(Request).join(ids, ids.c.id == Request.id).join(Request.organisation))


def _blocked_rows(ids: Subquery) -> Select:
    def waiting(*columns):  # the unit's reservations, through the bookings' unit index
        return select(*columns).where(Booking.unit_id == Unit.id, Booking.status == BookingStatus.RESERVED)
    return (select(Unit.id, Unit.inventory_code, Unit.condition, Unit.condition_note, Material.title,
                   waiting(func.count()).scalar_subquery().label("bookings"),
                   waiting(func.min(Booking.starts_on)).scalar_subquery().label("next_on"),
                   waiting(Booking.request_id).order_by(Booking.starts_on, Booking.id).limit(1)
                   .scalar_subquery().label("next_request_id"))
            .select_from(Unit).join(ids, ids.c.id == Unit.id).join(Unit.edition).join(Edition.material))


def blocked_units_list() -> StaffList:
    """Damaged, incomplete and lost units still in the inventory, with the bookings that sit on them:
    each needs a repair, or its bookings another unit (DOMAIN rule 9)."""
    query = select(Unit.id).where(Unit.condition.in_(BLOCKED), Unit.retired_at.is_(None))
    return StaffList(query, (Unit.inventory_code, Unit.id), _blocked_rows)


def staff_overview(today: date) -> Overview:
    """What staff need to see each morning: decisions, this week's pickups and returns, overdue, low
    stock, blocked units; each list its first rows and its total."""
    pending = StaffList(select(Request.id).where(Request.status == RequestStatus.SUBMITTED), (Request.id,),
                        _request_rows)
    loans = {kind: bounded(loans_list(kind, today)) for kind in ("pickups", "returns", "overdue")}
    return Overview(bounded(pending), low_stock=bounded(low_stock_list()), blocked=bounded(blocked_units_list()),
                    **loans)


@dataclass
class Contents:
    """What a request holds, for a list of requests: copies per edition, and kits with their periods."""

    copies: list = field(default_factory=list)  # (quantity, title, language)
    loans: list = field(default_factory=list)  # (title, starts_on, ends_on)


def request_contents(request_ids: list[int]) -> dict[int, Contents]:
    """The contents of the listed requests in two queries, whatever their number."""
    contents = {request_id: Contents() for request_id in request_ids}
    if not request_ids:
        return contents
    for row in db.session.execute(
        select(RequestLine.request_id, RequestLine.quantity, Material.title, Edition.language)
        .join(RequestLine.edition).join(Edition.material)
        .where(RequestLine.request_id.in_(request_ids)).order_by(RequestLine.id)
    ):
        contents[row.request_id].copies.append((row.quantity, row.title, row.language))
    for row in db.session.execute(
        select(Booking.request_id, Material.title, Booking.starts_on, Booking.ends_on)
        .join(Booking.unit).join(Unit.edition).join(Edition.material)
        .where(Booking.request_id.in_(request_ids), Booking.status != BookingStatus.CANCELLED)
        .order_by(Booking.starts_on, Booking.id)
    ):
        contents[row.request_id].loans.append((row.title, row.starts_on, row.ends_on))
    return contents
