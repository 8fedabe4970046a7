"""Request pages: partners collect items and submit; everyone of the organisation sees its requests; staff decide."""

import secrets
from datetime import date

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from accounts.models import Organisation
from core.csv_export import csv_bytes
from core.errors import flash_form_errors, form_error
from core.extensions import db
from core.i18n import local_today
from core.security import staff_required
from materials import bookings, errors, exports, lending, staff_lists
from materials.cart import add_to_cart, cart_items, submit_request
from materials.forms import AddPeriodForm, AddQuantityForm, DecisionForm, SubmitRequestForm
from materials.models import Booking, Delivery, Edition, Request, RequestLine, RequestStatus, Unit, UnitCondition
from materials.views import edition_choices, get_material

bp = Blueprint("requests", __name__, url_prefix="/requests")

CART = "cart"


def partner_only():
    if not current_user.is_authenticated:
        return False
    if current_user.organisation_id is None:
        abort(403)
    return True


@bp.post("/add/<int:material_id>")
@login_required
def add(material_id: int):
    """Put a quantity or a period of a material into the partner's request."""
    partner_only()
    material = get_material(material_id)
    form = AddPeriodForm() if material.is_returnable else AddQuantityForm()
    form.edition_id.choices = edition_choices(material)
    if form.validate_on_submit():
        edition = db.get_or_404(Edition, form.edition_id.data)
        try:
            if material.is_returnable:
                cart = add_to_cart(session.get(CART, {}), edition,
                                            starts_on=form.starts_on.data, ends_on=form.ends_on.data)
            else:
                cart = add_to_cart(session.get(CART, {}), edition, quantity=form.quantity.data)
        except errors.MaterialsError as error:
            flash(str(error.message), "error")
        else:
            session[CART] = cart
            flash(_("Added to your request."), "success")
            return redirect(url_for("requests.cart"))
    flash_form_errors(form)
    return redirect(url_for("materials.detail", material_id=material.id))


@bp.route("/cart", methods=["GET", "POST"])
@login_required
def cart():
    """The request being put together; submitting checks availability and reserves everything or nothing."""
    partner_only()
    items = cart_items(session.get(CART, {}))
    form = SubmitRequestForm()
    if request.method == "GET":
        form.submit_key.data = secrets.token_urlsafe(16)
    problems = []
    if form.validate_on_submit():
        try:
            created = submit_request(
                current_user, session.get(CART, {}), form.submit_key.data or secrets.token_urlsafe(16),
                form.purpose.data, form.audience.data or "", Delivery(form.delivery.data),
                form.shipping_address.data or "",
            )
        except errors.Shortage as error:
            problems = [str(p) for p in error.problems]
            flash(str(error.message), "error")
        except errors.MaterialsError as error:
            form_error(form, error)
        else:
            session.pop(CART, None)
            flash(_("Your request has been sent."), "success")
            return redirect(url_for("requests.detail", request_id=created.id))
    return render_template("materials/cart.html", items=items, form=form, problems=problems)


@bp.post("/cart/remove/<int:index>")
@login_required
def remove(index: int):
    """Take one item out of the request being put together."""
    partner_only()
    cart_items = list(session.get(CART, {}).get("items", []))
    if 0 <= index < len(cart_items):
        cart_items.pop(index)
        session[CART] = {"items": cart_items}
    return redirect(url_for("requests.cart"))


@bp.get("/")
@login_required
def index():
    """Partners: their organisation's requests. Staff: all, newest first, or one organisation's history."""
    query = select(Request).options(selectinload(Request.organisation)).order_by(Request.id.desc())
    if not current_user.is_staff:
        if current_user.organisation_id is None:
            abort(403)
        query = query.where(Request.organisation_id == current_user.organisation_id)
    status = request.args.get("status", "")
    if status in RequestStatus._value2member_map_:
        query = query.where(Request.status == RequestStatus(status))
    organisation = None
    if current_user.is_staff and request.args.get("organisation", "").isdigit():
        organisation = db.get_or_404(Organisation, int(request.args["organisation"]))
        query = query.where(Request.organisation_id == organisation.id)
    page = db.paginate(query, per_page=30, error_out=False)
    return render_template("materials/requests.html", page=page, status=status, statuses=list(RequestStatus),
                           organisation=organisation)


@bp.get("/<int:request_id>")
@login_required
def detail(request_id: int):
    """A request with its copies and bookings; the actions its viewer may take."""
    req = lending.get_request_for(current_user, request_id)
    lines = db.session.scalars(
        select(RequestLine).where(RequestLine.request_id == req.id)
        .options(selectinload(RequestLine.edition).selectinload(Edition.material))
    ).all()
    booked = db.session.scalars(
        select(Booking).where(Booking.request_id == req.id)
        .options(selectinload(Booking.unit).selectinload(Unit.edition).selectinload(Edition.material))
        .order_by(Booking.starts_on)
    ).all()
    alternatives = {}
    if current_user.is_staff:
        alternatives = {b.id: bookings.alternative_units(b) for b in booked if b.status.value == "reserved"}
    return render_template("materials/request.html", req=req, lines=lines, bookings=booked,
                           decision_form=DecisionForm(), conditions=list(UnitCondition), alternatives=alternatives)


@bp.post("/<int:request_id>/approve")
@staff_required
def approve(request_id: int):
    """Approve a submitted request."""
    db.get_or_404(Request, request_id)
    try:
        lending.approve_request(request_id, current_user)
    except errors.MaterialsError as error:
        flash(str(error.message), "error")
    else:
        flash(_("Request approved."), "success")
    return redirect(url_for("requests.detail", request_id=request_id))


@bp.post("/<int:request_id>/reject")
@staff_required
def reject(request_id: int):
    """Reject a request with a reason; its copies and units are released."""
    db.get_or_404(Request, request_id)
    form = DecisionForm()
    if form.validate_on_submit():
        try:
            lending.reject_request(request_id, current_user, form.reason.data or "")
        except errors.MaterialsError as error:
            flash(str(error.message), "error")
        else:
            flash(_("Request rejected."), "success")
    return redirect(url_for("requests.detail", request_id=request_id))


@bp.post("/<int:request_id>/cancel")
@login_required
def cancel(request_id: int):
    """Cancel a request until handover (the partner's organisation or staff)."""
    lending.get_request_for(current_user, request_id)
    try:
        lending.cancel_request(request_id, current_user)
    except errors.MaterialsError as error:
        flash(str(error.message), "error")
    else:
        flash(_("Request cancelled."), "success")
    return redirect(url_for("requests.detail", request_id=request_id))


@bp.post("/<int:request_id>/hand-over")
@staff_required
def hand_over(request_id: int):
    """Hand over the ticked units (kit contents checked) of an approved request."""
    db.get_or_404(Request, request_id)
    booking_ids = [int(v) for v in request.form.getlist("booking_id") if v.isdigit()]
    try:
        lending.hand_over(request_id, booking_ids, current_user, request.form.get("contents_checked") == "y")
    except errors.MaterialsError as error:
        db.session.rollback()
        flash(str(error.message), "error")
    else:
        flash(_("Handed over."), "success")
    return redirect(url_for("requests.detail", request_id=request_id))


@bp.post("/bookings/<int:booking_id>/return")
@staff_required
def take_back(booking_id: int):
    """Record the return of one unit with its condition."""
    booking = db.get_or_404(Booking, booking_id)
    condition = request.form.get("condition", "")
    if condition not in UnitCondition._value2member_map_:
        flash(_("Choose the condition."), "error")
    else:
        try:
            lending.take_back(booking_id, current_user, UnitCondition(condition), request.form.get("note", ""))
        except errors.MaterialsError as error:
            db.session.rollback()
            flash(str(error.message), "error")
        else:
            flash(_("Return recorded."), "success")
    return redirect(url_for("requests.detail", request_id=booking.request_id))


@bp.get("/overview")
@staff_required
def overview():
    """Staff's day: requests to decide, pickups and returns this week, overdue loans, low stock."""
    return render_template("materials/overview.html", o=staff_lists.staff_overview(local_today()), today=local_today())


LOAN_PAGES = {  # title, text when empty
    "overdue": (lambda: _("Overdue"), lambda: _("Nothing is overdue.")),
    "pickups": (lambda: _("Pickups in the next 7 days"), lambda: _("No pickups.")),
    "returns": (lambda: _("Returns in the next 7 days"), lambda: _("No returns.")),
}


@bp.get("/loans/<kind>")
@staff_required
def loans(kind: str):
    """One of the overview's loan lists in full, 50 to a page (overdue: the longest overdue first)."""
    if kind not in LOAN_PAGES:
        abort(404)
    page = staff_lists.StaffPage(per_page=50, error_out=False, staff_list=staff_lists.loans_list(kind, local_today()))
    title, empty = LOAN_PAGES[kind]
    return render_template("materials/loans.html", kind=kind, page=page, title=title(), empty=empty())


@bp.get("/stock/low")
@staff_required
def low_stock():
    """The overview's low-stock list in full, 50 to a page, the emptiest first."""
    page = staff_lists.StaffPage(per_page=50, error_out=False, staff_list=staff_lists.low_stock_list())
    return render_template("materials/low_stock.html", page=page)


@bp.post("/bookings/<int:booking_id>/extend")
@staff_required
def extend(booking_id: int):
    """Give a borrower more time, if no later booking of the unit is in the way."""
    booking = db.get_or_404(Booking, booking_id)
    try:
        new_end = date.fromisoformat(request.form.get("ends_on", ""))
    except ValueError:
        flash(_("“%(value)s” is not a date (YYYY-MM-DD).", value=request.form.get("ends_on", "")), "error")
    else:
        try:
            bookings.extend_booking(booking_id, new_end, current_user)
        except errors.MaterialsError as error:
            db.session.rollback()
            flash(str(error.message), "error")
        else:
            flash(_("The return date is now %(date)s.", date=new_end.strftime("%d.%m.%Y")), "success")
    return redirect(url_for("requests.detail", request_id=booking.request_id))


EXPORTS = ("requests", "loans", "ledger")


@bp.get("/export/<kind>.csv")
@staff_required
def export(kind: str):
    """CSV for a period (``from``/``to``, ISO dates; default: this year) that opens in German Excel."""
    if kind not in EXPORTS:
        abort(404)
    today = local_today()
    try:
        start = date.fromisoformat(request.args.get("from") or today.replace(month=1, day=1).isoformat())
        end = date.fromisoformat(request.args.get("to") or today.isoformat())
    except ValueError:
        flash(_("“%(value)s” is not a date (YYYY-MM-DD).", value=request.args.get("from", "") or request.args.get("to", "")), "error")
        return redirect(url_for("requests.overview"))
    header, rows = exports.export_rows(kind, start, end)
    filename = f"fundus-{kind}-{start.isoformat()}-{end.isoformat()}.csv"
    return Response(csv_bytes(header, rows), content_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@bp.get("/<int:request_id>/slip")
@staff_required
def slip(request_id: int):
    """Printable handover slip (Leihschein) with items, units, contents, dates and signature lines."""
    req = db.get_or_404(Request, request_id)
    return render_template("materials/slip.html", req=req, today=local_today())


@bp.post("/<int:request_id>/close")
@staff_required
def close(request_id: int):
    """Close a request once everything is back and checked."""
    db.get_or_404(Request, request_id)
    try:
        lending.close_request(request_id, current_user)
    except errors.MaterialsError as error:
        flash(str(error.message), "error")
    else:
        flash(_("Request closed."), "success")
    return redirect(url_for("requests.detail", request_id=request_id))


@bp.post("/bookings/<int:booking_id>/reassign")
@staff_required
def reassign(booking_id: int):
    """Hand a reserved booking another unit of the same edition."""
    booking = db.get_or_404(Booking, booking_id)
    unit_id = request.form.get("unit_id", "")
    try:
        bookings.reassign_booking(booking_id, int(unit_id) if unit_id.isdigit() else 0, current_user)
    except errors.MaterialsError as error:
        db.session.rollback()
        flash(str(error.message), "error")
    else:
        flash(_("Unit changed."), "success")
    return redirect(url_for("requests.detail", request_id=booking.request_id))
