"""Request pages: partners collect items and submit; everyone of the organisation sees its requests; staff decide."""

import secrets

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy.orm import joinedload, selectinload

from accounts.audit_log import history
from accounts.models import Organisation
from core import health
from core.bounds import FIRST_DAY, LAST_DAY, arg_id, page_number, parse_date
from core.confirm import Confirmation, confirm_page
from core.csv_export import csv_bytes
from core.errors import action, shown_at
from core.extensions import db
from core.i18n import format_date, local_today
from core.security import staff_required
from core.states import seen_state
from materials import bookings, exports, lending, staff_lists
from materials.access import booking_for, material_for, request_for, require_partner, visible_requests
from materials.cart import add_to_cart, cart_items, cart_of, keep_cart, submit_request
from materials.errors import MaterialsError, Shortage
from materials.forms import AddPeriodForm, AddQuantityForm, DecisionForm, SubmitRequestForm
from materials.models import Booking, Delivery, Edition, Request, RequestLine, RequestStatus, Unit, UnitCondition
from materials.views import detail_page, edition_choices

bp = Blueprint("requests", __name__, url_prefix="/requests")


@bp.post("/add/<int:material_id>")
@login_required
def add(material_id: int):
    """Put a quantity or a period of a material into the partner's request; a refusal shows the
    material's page again with what was typed and the reason at its field."""
    require_partner(current_user)
    material = material_for(current_user, material_id)
    form = AddPeriodForm() if material.is_returnable else AddQuantityForm()
    form.edition_id.choices = edition_choices(material)
    if form.validate_on_submit():
        edition = db.get_or_404(Edition, form.edition_id.data)
        with shown_at(form):  # checks only: nothing was written
            if material.is_returnable:
                cart = add_to_cart(cart_of(current_user), edition,
                                   starts_on=form.starts_on.data, ends_on=form.ends_on.data)
            else:
                cart = add_to_cart(cart_of(current_user), edition, quantity=form.quantity.data)
            keep_cart(current_user, cart)
            flash(_("Added to your basket."), "success")
            return redirect(url_for("requests.cart"))
    return detail_page(material, form), 422
@bp.route("/cart", methods=["GET", "POST"])
@login_required
def cart():
    """The request being put together; submitting checks availability and reserves everything or nothing."""
    require_partner(current_user)
    items = cart_items(cart_of(current_user))
    form = SubmitRequestForm()
    if request.method == "GET":
        form.submit_key.data = secrets.token_urlsafe(16)
    problems = []
    if form.validate_on_submit():
        with shown_at(form):
            try:
                created = submit_request(
                    current_user, cart_of(current_user), form.submit_key.data or secrets.token_urlsafe(16),
                    form.purpose.data, form.audience.data or "", Delivery(form.delivery.data),
                    form.shipping_address.data or "",
                )
            except Shortage as error:  # besides the message, what is short is listed item by item
                problems = [str(p) for p in error.problems]
                raise
            flash(_("Your request has been sent."), "success")
            return redirect(url_for("requests.detail", request_id=created.id))
    return render_template("materials/cart.html", items=items, form=form, problems=problems)


@bp.post("/cart/remove/<int(min=0):index>")
@login_required
def remove(index: int):
    """Take one item out of the request being put together."""
    require_partner(current_user)
    items = cart_of(current_user)["items"]
    if 0 <= index < len(items):
        items.pop(index)
        keep_cart(current_user, {"items": items})
    return redirect(url_for("requests.cart"))


@bp.get("/")
@login_required
def index():
    """Partners: their organisation's requests. Staff: all, newest first, or one organisation's history."""
    if not current_user.is_staff:
        require_partner(current_user)
    query = visible_requests(current_user).options(selectinload(Request.organisation)).order_by(Request.id.desc())
    status = request.args.get("status", "")
    if status in RequestStatus._value2member_map_:
        query = query.where(Request.status == RequestStatus(status))
    organisation = None
    if current_user.is_staff and arg_id("organisation"):
        organisation = db.get_or_404(Organisation, arg_id("organisation"))
        query = query.where(Request.organisation_id == organisation.id)
    page = db.paginate(query, per_page=30, error_out=False, page=page_number())
    return render_template("materials/requests.html", page=page, status=status, statuses=list(RequestStatus),
                           organisation=organisation, contents=staff_lists.request_contents([r.id for r in page.items]))


@bp.get("/<int:request_id>")
@login_required
def detail(request_id: int):
    """A request with its copies and bookings; the actions its viewer may take."""
    return _detail_page(request_for(current_user, request_id, *REQUEST_PAGE))


def _typed_again(request_id: int, error: MaterialsError):
    """A staff form on the request page refused by the rules (too many copies, a unit that cannot go,
    the contents not checked): the page again, with the message and what was typed and ticked."""
    flash(str(error.message), "error")
    return _detail_page(request_for(current_user, request_id, *REQUEST_PAGE), posted=request.form), 422


# What the request page shows, loaded with the request: one statement for the request with its organisation and
# author, one for its lines, one for its bookings, each joined to its many-to-one rows (edition, unit, material).
REQUEST_PAGE = (joinedload(Request.organisation), joinedload(Request.created_by),
                selectinload(Request.lines).joinedload(RequestLine.edition).joinedload(Edition.material),
                selectinload(Request.bookings).joinedload(Booking.unit).joinedload(Unit.edition)
                .joinedload(Edition.material))


def _detail_page(req: Request, posted=None):
    lines, booked = req.lines, req.bookings  # ordered by their start (``Request.bookings``)
    alternatives, past = {}, []
    if current_user.is_staff:
        alternatives = {b.id: bookings.alternative_units(b) for b in booked if b.can("reassign")}
        past = history("request", req.id)
    return render_template("materials/request.html", req=req, lines=lines, bookings=booked,
                           conditions=list(UnitCondition), alternatives=alternatives,
                           early=lending.handed_over_early(req.awaiting_handover), history=past, posted=posted)


def _request_page(request_id: int) -> str:
    return url_for("requests.detail", request_id=request_id)


def _booking_request_page(booking_id: int) -> str:
    return _request_page(db.session.get(Booking, booking_id).request_id)


def _quantities(form) -> dict[int, int]:
    """The approve form's ``quantity-<line id>`` fields, bounded: line ids and numbers of sane length."""
    quantities = {}
    for key, value in form.items():
        if key.startswith("quantity-"):
            line_id, value = key.removeprefix("quantity-"), value.strip()
            if not (line_id.isdecimal() and len(line_id) <= 10 and value.isdecimal() and len(value) <= 7):
                raise MaterialsError(_("Enter the number of copies to give as a whole number."))
            quantities[int(line_id)] = int(value)
    return quantities


@bp.post("/<int:request_id>/approve")
@staff_required
@action(_request_page)
def approve(request_id: int):
    """Approve a submitted request; ``quantity-<line id>`` fields may give fewer copies, with a reason."""
    request_for(current_user, request_id)
    form = DecisionForm()
    try:
        if not form.validate_on_submit():  # the reason too long, or the form's token gone
            raise MaterialsError(" ".join(str(message) for errors in form.errors.values() for message in errors))
        approved = lending.approve_request(request_id, current_user, seen=seen_state(request.form),
                                           quantities=_quantities(request.form), reason=form.reason.data or "")
    except MaterialsError as error:
        return _typed_again(request_id, error)
    flash(_("Request approved with fewer copies; the partner is told why.") if approved.approval_note
          else _("Request approved."), "success")


def _reject_confirmation(req: Request, form: DecisionForm) -> Confirmation:
    return Confirmation(_("Reject this request?"), _("Request #%(id)s", id=req.id) + f" · {req.organisation.name}",
                        lending.reject_consequences(req), _("Reject the request and tell the partner"),
                        url_for("requests.reject", request_id=req.id), _request_page(req.id), form=form,
                        seen=req.state)


@bp.get("/<int:request_id>/reject")
@staff_required
@action(_request_page)
def confirm_reject(request_id: int):
    """Ask before rejecting: what will happen, who gets a mail, and the reason for the mail."""
    return confirm_page(_reject_confirmation(request_for(current_user, request_id), DecisionForm()))


@bp.post("/<int:request_id>/reject")
@staff_required
@action(_request_page)
def reject(request_id: int):
    """Reject a request with a reason, which the partner is mailed; its copies and units are released."""
    req = request_for(current_user, request_id)
    form = DecisionForm()
    if form.validate_on_submit():
        with shown_at(form):
            lending.reject_request(request_id, current_user, form.reason.data or "", seen=seen_state(request.form))
            flash(_("Request rejected."), "success")
            return None
    return confirm_page(_reject_confirmation(req, form), 422)


def _cancel_confirmation(req: Request, form: DecisionForm) -> Confirmation:
    consequences = lending.cancel_consequences(req, current_user)
    return Confirmation(_("Cancel this request?"), _("Request #%(id)s", id=req.id) + f" · {req.organisation.name}",
                        consequences, _("Cancel the request and tell the partner") if consequences.mails
                        else _("Cancel the request"), url_for("requests.cancel", request_id=req.id),
                        _request_page(req.id), form=form if consequences.mails else None, seen=req.state)


@bp.get("/<int:request_id>/cancel")
@login_required
@action(_request_page)
def confirm_cancel(request_id: int):
    """Ask before cancelling: what is released, and (staff) the reason for the partner's mail."""
    return confirm_page(_cancel_confirmation(request_for(current_user, request_id), DecisionForm()))


@bp.post("/<int:request_id>/cancel")
@login_required
@action(_request_page)
def cancel(request_id: int):
    """Cancel a request until handover (the partner's organisation, or staff with a reason for the partner)."""
    req = request_for(current_user, request_id)
    form = DecisionForm()
    if form.validate_on_submit():
        with shown_at(form):
            lending.cancel_request(request_id, current_user, seen=seen_state(request.form),
                                   reason=form.reason.data or "")
            flash(_("Request cancelled."), "success")
            return None
    return confirm_page(_cancel_confirmation(req, form), 422)


@bp.post("/<int:request_id>/hand-over")
@staff_required
@action(_request_page)
def hand_over(request_id: int):
    """Hand over the ticked units (kit contents checked) of an approved request."""
    request_for(current_user, request_id)
    booking_ids = [int(v) for v in request.form.getlist("booking_id") if v.isdecimal() and len(v) < 10]
    try:
        lending.hand_over(request_id, booking_ids, current_user, request.form.get("contents_checked") == "y",
                          seen=seen_state(request.form), early_confirmed=request.form.get("early_confirmed") == "y")
    except MaterialsError as error:
        return _typed_again(request_id, error)
    flash(_("Handed over."), "success")


@bp.post("/bookings/<int:booking_id>/return")
@staff_required
@action(_booking_request_page)
def take_back(booking_id: int):
    """Record the return of one unit with its condition."""
    booking_for(current_user, booking_id)
    condition = request.form.get("condition", "")
    if condition not in UnitCondition._value2member_map_:
        flash(_("Choose the condition."), "error")
        return None
    lending.take_back(booking_id, current_user, UnitCondition(condition), request.form.get("note", ""))
    flash(_("Return recorded."), "success")


@bp.get("/overview")
@staff_required
def overview():
    """Staff's day: requests to decide, pickups and returns this week, overdue loans, low stock."""
    return render_template("materials/overview.html", o=staff_lists.staff_overview(local_today()), today=local_today(),
                           mail_waited=health.stuck_mail())


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
    page = staff_lists.StaffPage(page=page_number(), per_page=50, error_out=False,
                                 staff_list=staff_lists.loans_list(kind, local_today()))
    title, empty = LOAN_PAGES[kind]
    return render_template("materials/loans.html", kind=kind, page=page, title=title(), empty=empty())


@bp.get("/stock/low")
@staff_required
def low_stock():
    """The overview's low-stock list in full, 50 to a page, the emptiest first."""
    page = staff_lists.StaffPage(page=page_number(), per_page=50, error_out=False,
                                 staff_list=staff_lists.low_stock_list())
    return render_template("materials/low_stock.html", page=page)


@bp.post("/bookings/<int:booking_id>/extend")
@staff_required
@action(_booking_request_page)
def extend(booking_id: int):
    """Give a borrower more time, if no later booking of the unit is in the way."""
    booking_for(current_user, booking_id)
    new_end = parse_date(request.form.get("ends_on", ""))
    if new_end is None:
        flash(_("“%(value)s” is not a date from %(first)s to %(last)s (YYYY-MM-DD).",
                value=request.form.get("ends_on", "")[:40], first=FIRST_DAY.year, last=LAST_DAY.year), "error")
        return None
    bookings.extend_booking(booking_id, new_end, current_user)
    flash(_("The return date is now %(date)s.", date=format_date(new_end)), "success")


EXPORTS = ("requests", "loans", "ledger")


@bp.get("/export/<kind>.csv")
@staff_required
def export(kind: str):
    """CSV for a period (``from``/``to``, ISO dates; default: this year) that opens in German Excel."""
    if kind not in EXPORTS:
        abort(404)
    today = local_today()
    start = parse_date(request.args.get("from") or today.replace(month=1, day=1).isoformat())
    end = parse_date(request.args.get("to") or today.isoformat())
    if start is None or end is None:
        flash(_("“%(value)s” is not a date from %(first)s to %(last)s (YYYY-MM-DD).",
                value=(request.args.get("from", "") if start is None else request.args.get("to", ""))[:40],
                first=FIRST_DAY.year, last=LAST_DAY.year), "error")
        return redirect(url_for("requests.overview"))
    header, rows = exports.export_rows(kind, start, end)
    filename = f"fundus-{kind}-{start.isoformat()}-{end.isoformat()}.csv"
    return Response(csv_bytes(header, rows), content_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@bp.get("/<int:request_id>/slip")
@staff_required
def slip(request_id: int):
    """Printable handover slip (Leihschein) with items, units, contents, dates and signature lines."""
    req = request_for(current_user, request_id)
    return render_template("materials/slip.html", req=req, today=local_today())


@bp.post("/<int:request_id>/close")
@staff_required
@action(_request_page)
def close(request_id: int):
    """Close a request once everything is back and checked."""
    request_for(current_user, request_id)
    lending.close_request(request_id, current_user, seen=seen_state(request.form))
    flash(_("Request closed."), "success")


@bp.post("/bookings/<int:booking_id>/reassign")
@staff_required
@action(_booking_request_page)
def reassign(booking_id: int):
    """Hand a reserved booking another unit of the same edition."""
    booking_for(current_user, booking_id)
    unit_id = request.form.get("unit_id", "")
    bookings.reassign_booking(booking_id, int(unit_id) if unit_id.isdecimal() and len(unit_id) < 10 else 0,
                              current_user)
    flash(_("Unit changed."), "success")
