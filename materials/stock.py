"""Stock of giveaway editions and its ledger (DOMAIN rule 2): never below zero, every change a ledger row.

The CHECK on ``editions.stock_on_hand`` makes the first true under any concurrency; ``change_stock`` is
the only writer and adds the ledger row in the same transaction.

Lock order: a transaction that changes several editions (their stock, or bookings of their units)
locks their rows first with ``lock_editions``, by ascending id, after the request row it works on.
"""

from flask_babel import lazy_gettext as _l
from sqlalchemy import select, update

from accounts.models import User
from core import audit
from core.db import unit_of_work
from core.extensions import db
from materials.errors import MaterialsError, NotAvailable
from materials.models import Edition, Material, StockEntry, StockReason


def change_stock(
    edition_id: int,
    delta: int,
    reason: StockReason,
    user: User | None,
    note: str = "",
    request_id: int | None = None,
) -> StockEntry:
    """Add ``delta`` to an edition's stock and write the ledger row, in the caller's transaction.

    The conditional update never takes stock below zero, however many requests
    run at once; if it would, nothing changes and ``NotAvailable`` says how many are left.
    """
    if delta == 0:
        raise MaterialsError(_l("Enter a quantity other than zero."), field="quantity")
    row = db.session.execute(
        update(Edition)
        .where(Edition.id == edition_id, Edition.stock_on_hand + delta >= 0)
        .values(stock_on_hand=Edition.stock_on_hand + delta)
        .returning(Edition.stock_on_hand)
        .execution_options(synchronize_session=False)
    ).first()
    if row is None:
        left = db.session.scalar(select(Edition.stock_on_hand).where(Edition.id == edition_id))
        if left is None:
            raise MaterialsError(_l("Unknown edition."))
        raise NotAvailable(
            _l("Only %(left)s copies are left; %(wanted)s were asked for.", left=left, wanted=-delta),
            field="quantity",
        )
    entry = StockEntry(
        edition_id=edition_id,
        delta=delta,
        balance_after=row.stock_on_hand,
        reason=reason,
        note=note.strip(),
        user_id=user.id if user else None,
        request_id=request_id,
    )
    db.session.add(entry)
    db.session.flush()
    return entry


def note_handed_out(edition_id: int, user: User, request_id: int) -> StockEntry:
    """A request's copies leave the house: a ledger row that changes nothing (they were reserved,
    and taken from the stock, when the request was submitted), in the caller's transaction."""
    balance = db.session.scalar(select(Edition.stock_on_hand).where(Edition.id == edition_id))
    entry = StockEntry(edition_id=edition_id, delta=0, balance_after=balance, reason=StockReason.HANDOUT,
                       user_id=user.id if user else None, request_id=request_id)
    db.session.add(entry)
    return entry


def lock_editions(edition_ids) -> None:
    """Lock the editions' rows for the rest of the transaction, in the one canonical order (ascending
    id). Every writer that takes the stock or books the units of several editions locks them first,
    this way: two carts in opposite order then queue up instead of each holding what the other waits
    for (PostgreSQL aborted one of them as a deadlock). SQLite's write lock serialises writers anyway."""
    ids = sorted(set(edition_ids))
    if ids:
        db.session.execute(select(Edition.id).where(Edition.id.in_(ids)).order_by(Edition.id).with_for_update())


@unit_of_work
def correct_stock(edition_id: int, delta: int, reason: StockReason, actor: User, note: str = "") -> StockEntry:
    """Staff record an intake, a stocktaking correction or the like for one edition."""
    lock_editions([edition_id])
    entry = change_stock(edition_id, delta, reason, actor, note)
    edition = db.session.get(Edition, edition_id)
    audit.record(actor, "stock", edition, refs=[edition.material], reason=note,
                 details=f"{delta:+d} → {entry.balance_after}")
    return entry


def ledger(material: Material, limit: int = 50) -> list[StockEntry]:
    """The material's latest stock changes, newest first."""
    return db.session.scalars(
        select(StockEntry).join(StockEntry.edition).where(Edition.material_id == material.id)
        .order_by(StockEntry.id.desc()).limit(limit)
    ).all()
