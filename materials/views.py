"""Catalogue pages for everyone, and the staff pages to keep materials, stock and units."""


import segno
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from wtforms.fields.choices import SelectChoice

from accounts.audit_log import history
from core.bounds import page_number, parse_month
from core.confirm import Confirmation, confirm_page
from core.errors import action, flash_form_errors, shown_at
from core.extensions import db
from core.i18n import language_name, local_today
from core.pagecache import kept_whole
from core.security import safe_next, staff_required
from core.urls import external_url
from core.vocabulary import TargetGroup
from materials import bookings, catalogue_import, files, stock, units
from materials.access import material_for
from materials.catalogue import CatalogueQuery, name_topic, save_material, search_catalogue, set_archived, topics_in_use
from materials.forms import (
    AddPeriodForm,
    AddQuantityForm,
    ImportForm,
    MaterialForm,
    StockForm,
    TopicForm,
    UnitForm,
    UploadForm,
    parse_contents,
    split_list,
)
from materials.models import BookingStatus, Edition, Lending, Material, MaterialKind, StockReason, Topic, Unit, fold

bp = Blueprint("materials", __name__, url_prefix="/materials")


# A global rather than a context variable, so that imported macros see it too.
bp.add_app_template_global(language_name)


@bp.get("/")
@kept_whole
def catalogue():
    """Search and filter the catalogue; every filter is a URL parameter, so searches can be bookmarked."""
    query = CatalogueQuery.from_args(request.args)
    staff = current_user.is_authenticated and current_user.is_staff
    page = db.paginate(
        search_catalogue(query, include_archived=staff and request.args.get("archived") == "1"),
        per_page=20,
        error_out=False,
        page=page_number(),
    )
    topics = sorted(db.session.scalars(select(Topic)), key=lambda t: fold(t.label))  # by name as shown
    languages = sorted(set(db.session.scalars(select(Edition.language).distinct())), key=language_name)
    return render_template(
        "materials/catalogue.html", page=page, query=query, topics=topics, languages=languages,
        kinds=list(MaterialKind), target_groups=list(TargetGroup),
        filters=query.active_filters({t.slug: t.label for t in topics}, language_name),
    )


@bp.get("/<int:material_id>")
@kept_whole
def detail(material_id: int):
    """A material with its editions, stock or free units, and a month calendar for returnable ones."""
    return detail_page(material_for(current_user, material_id))


def detail_page(material: Material, add_form=None):
    """The material's page; ``add_form`` is the partner's form as sent, when it is shown again with
    its errors (what was typed stays)."""
    # The free period chosen in the catalogue travels with its links: calendar month and request form.
    period = CatalogueQuery.from_args(request.args)
    chosen = add_form.starts_on.data if add_form is not None and material.is_returnable \
        and not add_form.starts_on.errors else None  # an out-of-range date shows its error, not its month
    weeks, month = None, None
    # The calendar counts the units of one language where editions of several languages have units.
    languages = [e.language for e in material.editions if e.units] if material.is_returnable else []
    language = period.language if len(languages) > 1 and period.language in languages else ""
    if material.is_returnable:
        month = (parse_month(request.args.get("month", "")) or (chosen and chosen.replace(day=1))
                 or (period.available_from and period.available_from.replace(day=1))
                 or local_today().replace(day=1))
        weeks = bookings.month_availability(material, month, language)
    if add_form is None and current_user.is_authenticated and current_user.organisation_id \
            and not material.archived_at:
        if material.is_returnable:
            add_form = AddPeriodForm(starts_on=period.available_from, ends_on=period.available_to)
        else:
            add_form = AddQuantityForm()
        add_form.edition_id.choices = edition_choices(material)
        edition = next((e for e in material.editions if e.language == language), None)
        if edition is not None:
            add_form.edition_id.data = edition.id
    if add_form is not None and not material.is_returnable and material.per_request_max:
        add_form.quantity.render_kw = {"max": material.per_request_max}
    return render_template("materials/detail.html", material=material, weeks=weeks, month=month, add_form=add_form,
                           period=period.period_args(), calendar_languages=languages if len(languages) > 1 else [],
                           calendar_language=language)


def _save(material_id: int | None, form: MaterialForm) -> Material:
    return save_material(
        material_id, split_list(form.topics.data), split_list(form.languages.data), current_user,
        contents=parse_contents(form.contents.data or ""), **_material_fields(form),
    )


def _material_fields(form: MaterialForm) -> dict:
    fields = {
        name: getattr(form, name).data
        for name in ("title", "subtitle", "description", "publisher", "co_publishers", "pickup_notes")
    }
    fields = {k: (v or "").strip() for k, v in fields.items()}
    fields.update(
        kind=MaterialKind(form.kind.data),
        lending=Lending(form.lending.data),
        target_groups=",".join(form.target_groups.data or []),
        year=form.year.data,
        per_request_max=form.per_request_max.data,
        low_stock_threshold=form.low_stock_threshold.data or 0,
        loan_days_max=form.loan_days_max.data,
        buffer_days=form.buffer_days.data,
    )
    return fields


@bp.route("/new", methods=["GET", "POST"])
@staff_required
def new():
    """Add a material to the catalogue."""
    form = MaterialForm()
    if form.validate_on_submit():
        with shown_at(form):
            material = _save(None, form)
            flash(_("“%(title)s” is in the catalogue.", title=material.title), "success")
            return redirect(url_for("materials.manage", material_id=material.id))
    return render_template("materials/form.html", form=form, material=None)


@bp.route("/<int:material_id>/edit", methods=["GET", "POST"])
@staff_required
def edit(material_id: int):
    """Edit a material; languages can be added, editions with history are never removed."""
    material = db.get_or_404(Material, material_id)
    form = MaterialForm(obj=material)
    if request.method == "GET":
        form.topics.data = ", ".join(t.name for t in material.topics)
        form.languages.data = ", ".join(e.language for e in material.editions)
        form.target_groups.data = [t.value for t in material.target_group_list]
        form.contents.data = "\n".join(f"{c.quantity} × {c.name}" for c in material.contents)
    if form.validate_on_submit():
        with shown_at(form):
            _save(material.id, form)
            flash(_("Saved."), "success")
            return redirect(url_for("materials.manage", material_id=material.id))
    return render_template("materials/form.html", form=form, material=material)


def _topic_forms(posted: int | None = None) -> list:
    """A form per topic (the posted one keeps what was typed), with how many materials it tags."""
    rows = []
    for topic, used in topics_in_use():
        form = TopicForm(prefix=f"t{topic.id}") if topic.id == posted else TopicForm(
            prefix=f"t{topic.id}", formdata=None, obj=topic)
        rows.append((topic, used, form))
    return rows


@bp.get("/topics")
@staff_required
def topics():
    """The topics with their German and English names: the catalogue shows and searches both."""
    return render_template("materials/topics.html", rows=_topic_forms())


@bp.post("/topics/<int:topic_id>")
@staff_required
def name_topic_view(topic_id: int):
    db.get_or_404(Topic, topic_id)
    rows = _topic_forms(posted=topic_id)
    form_topic, form = next((topic, form) for topic, _used, form in rows if topic.id == topic_id)
    if form.validate_on_submit():
        with shown_at(form):
            name_topic(topic_id, form.name.data, form.name_en.data or "", current_user)
            flash(_("Saved."), "success")
            return redirect(url_for("materials.topics") + f"#topic-{topic_id}")
    flash(_("The names of “%(name)s” were not saved; the form says why.", name=form_topic.name), "error")
    return render_template("materials/topics.html", rows=rows), 422


def edition_choices(material: Material) -> list[SelectChoice]:
    """Editions with the page's language first, then German, then by name."""
    preferred = (str(get_locale()), "de")

    def order(edition):
        rank = preferred.index(edition.language) if edition.language in preferred else len(preferred)
        return rank, language_name(edition.language)

    return [SelectChoice(e.id, language_name(e.language)) for e in sorted(material.editions, key=order)]


@bp.route("/<int:material_id>/manage", methods=["GET", "POST"])
@staff_required
def manage(material_id: int):
    """Staff view of a material: stock per edition with the ledger, or units; record changes."""
    material = db.get_or_404(Material, material_id)
    stock_form, unit_form = StockForm(prefix="stock"), UnitForm(prefix="unit")
    stock_form.edition_id.choices = unit_form.edition_id.choices = edition_choices(material)
    chosen = request.form.get("action")
    if chosen == "stock" and stock_form.validate_on_submit():
        with shown_at(stock_form):
            stock.correct_stock(stock_form.edition_id.data, stock_form.quantity.data,
                                StockReason(stock_form.reason.data), current_user, stock_form.note.data or "")
            flash(_("Stock recorded."), "success")
            return redirect(url_for("materials.manage", material_id=material.id))
    if chosen == "unit" and unit_form.validate_on_submit():
        with shown_at(unit_form):
            unit = units.add_unit(unit_form.edition_id.data, unit_form.inventory_code.data, current_user)
            flash(_("Unit %(code)s added.", code=unit.inventory_code), "success")
            return redirect(url_for("materials.manage", material_id=material.id))
    return render_template(
        "materials/manage.html", material=material, stock_form=stock_form, unit_form=unit_form,
        ledger=stock.ledger(material), upload_form=UploadForm(), history=history("material", material.id),
    )


def _back_to_material(material_id: int) -> str:
    return url_for("materials.manage", material_id=material_id)


def _unit_page(unit_id: int) -> str:
    return url_for("materials.unit", unit_id=unit_id)


@bp.post("/<int:material_id>/archive")
@staff_required
@action(_back_to_material)
def archive(material_id: int):
    """Archive or restore: archived material leaves the catalogue, its history stays."""
    db.get_or_404(Material, material_id)
    archived = request.form.get("archived") == "1"
    set_archived(material_id, archived, current_user)
    flash(_("Archived.") if archived else _("Back in the catalogue."), "success")


def _unit_material(unit_id: int) -> str:
    unit = db.session.get(Unit, unit_id)
    return _back_to_material(unit.edition.material_id) if unit else url_for("materials.catalogue")


@bp.post("/units/<int:unit_id>/clear")
@staff_required
@action(lambda unit_id: safe_next(_unit_material(unit_id)))
def clear_unit(unit_id: int):
    """Mark a repaired or completed unit as good again, so it can be booked."""
    db.get_or_404(Unit, unit_id)
    unit = units.clear_unit(unit_id, current_user)
    flash(_("Unit %(code)s can be booked again.", code=unit.inventory_code), "success")


@bp.get("/units/<int:unit_id>")
@staff_required
def unit(unit_id: int):
    """A unit's staff page (the QR label opens it): condition, what happens next, full history."""
    unit = db.get_or_404(Unit, unit_id)
    booked = units.unit_bookings(unit)
    current = next((b for b in booked if b.status == BookingStatus.HANDED_OVER), None)
    upcoming = sorted((b for b in booked if b.status == BookingStatus.RESERVED), key=lambda b: b.starts_on)
    return render_template("materials/unit.html", unit=unit, bookings=booked, current=current,
                           upcoming=upcoming[0] if upcoming else None, history=history("unit", unit.id))


@bp.get("/<int:material_id>/labels")
@staff_required
def labels(material_id: int):
    """A printable sheet of QR labels, one per unit; each code opens the unit's staff page."""
    material = db.get_or_404(Material, material_id)
    labels = [
        (unit, segno.make(external_url("materials.unit", unit_id=unit.id), error="m").svg_inline(scale=3))
        for edition in material.editions for unit in edition.units if unit.retired_at is None
    ]
    return render_template("materials/labels.html", material=material, labels=labels)


@bp.route("/import", methods=["GET", "POST"])
@staff_required
def import_csv():
    """Import materials from CSV; shows which rows were accepted and which refused, and why."""
    form = ImportForm()
    report = None
    if form.validate_on_submit():
        with shown_at(form):
            report = catalogue_import.import_catalogue(form.file.data.read(catalogue_import.IMPORT_MAX_BYTES + 1),
                                                       current_user)
    return render_template("materials/import.html", form=form, report=report, columns=catalogue_import.IMPORT_COLUMNS)


@bp.post("/<int:material_id>/files")
@staff_required
@action(_back_to_material)
def upload(material_id: int):
    """Upload a cover image (a thumbnail is made) and/or the PDF download."""
    form = UploadForm()
    if not form.validate_on_submit():
        flash_form_errors(form)
        return None
    files.save_files(material_id, current_user,
                     cover=form.cover.data.read(files.COVER_MAX_BYTES + 1) if form.cover.data else None,
                     pdf=form.pdf.data.read(files.PDF_MAX_BYTES + 1) if form.pdf.data else None)
    flash(_("Saved."), "success")


@bp.get("/<int:material_id>/cover.jpg")
def cover(material_id: int):
    """The cover image; ``?size=thumb`` for the thumbnail. Pages link it with ``?v=`` naming the
    stored file, so a new cover has a new address and no cache shows the old one."""
    material = material_for(current_user, material_id)
    if not material.cover_path:
        abort(404)
    return files.serve(files.cover_names(material.cover_path)[request.args.get("size") == "thumb"],
                       files.version(material.cover_path))


@bp.get("/<int:material_id>/download.pdf")
def pdf(material_id: int):
    """The material's PDF, for everyone."""
    material = material_for(current_user, material_id)
    if not material.pdf_path:
        abort(404)
    return files.serve(material.pdf_path, files.version(material.pdf_path),
                       download_name=f"{fold(material.title).replace(' ', '-')[:60]}.pdf")


@bp.get("/units/<int:unit_id>/retire")
@staff_required
@action(_unit_page)
def confirm_retire_unit(unit_id: int):
    """Ask before retiring a unit for good: what will happen (nobody gets a mail)."""
    unit = db.get_or_404(Unit, unit_id)
    return confirm_page(Confirmation(
        _("Retire this unit?"), f"{unit.inventory_code} · {unit.edition.material.title}",
        units.retire_consequences(unit), _("Retire the unit"), url_for("materials.retire_unit", unit_id=unit.id),
        _unit_page(unit.id)))


@bp.post("/units/<int:unit_id>/retire")
@staff_required
@action(_unit_page)
def retire_unit(unit_id: int):
    """Take a unit out of service for good (its history stays); reserved future bookings block this."""
    db.get_or_404(Unit, unit_id)
    unit = units.retire_unit(unit_id, current_user)
    flash(_("Unit %(code)s is retired.", code=unit.inventory_code), "success")
