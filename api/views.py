"""The read-only API, ``/api/v1/``: the programme, the catalogue and their vocabularies, for the centre's
own website and partners' intranets. Everything here is public and the same for everyone: no session is
read (a staff member's cookie shows no draft), nothing personal is answered. The filters are those of the
pages (``events.feeds.filtered``, ``materials.catalogue.search_catalogue``), the visibility rules those of
the pages' loaders (``events.access``, ``materials.access``)."""

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from api import schemas
from api.http import PREFIX, Blueprint, conditional
from core.bounds import MAX_PAGE
from core.extensions import db, limiter
from core.i18n import language_name, local_today, local_tz
from core.limits import configured
from core.pagecache import kept_whole
from core.urls import external_url
from core.vocabulary import TargetGroup
from events import feeds, seats, trainings
from events.access import training_for
from events.models import Training, TrainingFormat
from events.registrations import programme_entries, registration_state
from materials import files
from materials.access import material_for
from materials.catalogue import CatalogueQuery, search_catalogue
from materials.models import Edition, Material, MaterialKind, Topic

bp = Blueprint("api", __name__, url_prefix=PREFIX, description="The programme and the catalogue, read-only.")
limiter.limit(configured("API_RATE_LIMIT"))(bp)  # per client address; once per process, not per app

PROBLEMS = {400: "Bad parameters", 404: "Not found", 429: "Too many requests"}


def _documented(*codes):
    """The problems an endpoint may answer, in the OpenAPI document."""
    def decorator(view):
        for code in codes:
            view = bp.alt_response(code, schema=schemas.Problem, description=PROBLEMS[code],
                                   content_type="application/problem+json")(view)
        return bp.alt_response(304, description="Not modified (If-None-Match)")(view)
    return decorator


def _label(member) -> dict:
    return {"id": member.value, "label": str(member.label)}


def _moment(value) -> str | None:
    return value.astimezone(local_tz()).isoformat() if value else None


def _page(pagination, items: list, endpoint: str, args: dict) -> dict:
    def link(number):
        return external_url(endpoint, **{**args, "page": number}) if number else None

    return {"items": items, "page": pagination.page,
            "per_page": pagination.per_page, "total": pagination.total, "pages": pagination.pages,
            "next": link(pagination.next_num if pagination.has_next and pagination.next_num <= MAX_PAGE else None),
            "prev": link(pagination.prev_num if pagination.has_prev and pagination.page <= pagination.pages else None)}


def _query_args(args: dict) -> dict:
    """The parameters as they go into links (dates as ISO text), without the page."""
    return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in args.items() if k != "page"}


# Trainings ------------------------------------------------------------------------------------------

def _training(training: Training, state: str, availability) -> dict:
    page = external_url("events.detail", training_id=training.id)
    return {
        "id": training.id, "title": training.title, "description": training.description,
        "status": training.status.value, "format": _label(training.format), "language": training.language,
        "target_groups": [_label(g) for g in training.target_group_list],
        "venue": training.venue if training.has_venue and training.venue else None,
        "sessions": [{"starts_at": _moment(s.starts_at), "ends_at": _moment(s.ends_at)} for s in training.sessions],
        # As the page: seats only while one can register (or soon can); none for a past or cancelled one.
        "availability": availability.value if state in ("open", "not_yet") else None,
        "registration": {"state": state, "opens_at": _moment(training.registration_opens_at),
                         "closes_at": _moment(training.registration_closes_at)},
        "links": {"page": page, "calendar": external_url("events.training_ics", training_id=training.id),
                  "register": page + "#register-heading"},
    }


def _training_state(training: Training, state: str, availability) -> tuple:
    """What a training's answer depends on beyond the trainings' change counter: the words that change
    with registrations and with time."""
    return training.id, state, availability.value


@bp.route("/trainings")
@bp.arguments(schemas.ProgrammeArgs, location="query", as_kwargs=True)
@bp.response(200, schemas.TrainingPage)
@_documented(400, 429)
@kept_whole
def programme(page=1, per_page=20, lang=None, target_group=None, format=None, month=None, language=None):
    """The coming trainings

    Published trainings with a session still to come, by first session; cancelled ones stay listed, marked.
    The filters are the programme page's."""
    group = TargetGroup(target_group) if target_group else None
    fmt = TrainingFormat(format) if format else None
    counter = feeds.trainings_version()[0]  # before the data: a change in between cannot pin an old body
    pagination = db.paginate(trainings.programme(group, fmt, month, language or ""), page=page,
                             per_page=per_page, error_out=False, max_per_page=schemas.MAX_PER_PAGE)
    listed = programme_entries(pagination.items)
    version = (counter, local_today().isoformat(), [_training_state(*row) for row in listed], pagination.total)
    args = _query_args(dict(lang=lang, target_group=target_group, format=format,
                            month=f"{month:%Y-%m}" if month else None, language=language, per_page=per_page))
    return conditional(version, lambda: _page(pagination, [_training(*row) for row in listed], "api.programme",
                                              {k: v for k, v in args.items() if v is not None}))


@bp.route("/trainings/<int:training_id>")
@bp.arguments(schemas.LanguageArgs, location="query", as_kwargs=True)
@bp.response(200, schemas.Training)
@_documented(400, 404, 429)
@kept_whole
def training(training_id: int, lang=None):
    """One training

    With its sessions (times with their offset, in the centre's time zone), place, target groups,
    availability and registration window. Drafts are not found."""
    counter = feeds.trainings_version()[0]  # before the data, as in the list
    training = training_for(None, training_id)
    entry = (training, registration_state(training), seats.availability(training))
    return conditional((counter, _training_state(*entry)), lambda: _training(*entry))


# Materials ------------------------------------------------------------------------------------------

def _material(material: Material) -> dict:
    editions = []
    for edition in material.editions:
        units = sum(1 for unit in edition.units if unit.bookable) if material.is_returnable else None
        editions.append({"language": edition.language, "language_name": language_name(edition.language),
                         "in_stock": None if material.is_returnable else edition.stock_on_hand, "units": units})
    available = any((e["units"] if material.is_returnable else e["in_stock"]) for e in editions)
    return {
        "id": material.id, "title": material.title, "subtitle": material.subtitle, "kind": _label(material.kind),
        "lending": material.lending.value, "description": material.description,
        "target_groups": [_label(g) for g in material.target_group_list],
        "topics": [{"id": t.slug, "label": t.label} for t in material.topics],
        "publisher": material.publisher, "year": material.year, "editions": editions, "available": available,
        "links": {"page": external_url("materials.detail", material_id=material.id),
                  "pdf": external_url("materials.pdf", material_id=material.id,
                                      v=files.version(material.pdf_path))
                  if material.pdf_path else None,
                  "cover": external_url("materials.cover", material_id=material.id,
                                        v=files.version(material.cover_path))
                  if material.cover_path else None},
    }


@bp.route("/materials")
@bp.arguments(schemas.CatalogueArgs, location="query", as_kwargs=True)
@bp.response(200, schemas.MaterialPage)
@_documented(400, 429)
@kept_whole
def catalogue(page=1, per_page=20, lang=None, q="", kind=None, topic="", language="", target_group=None,
              available_from=None, available_to=None):
    """The catalogue

    Materials by title, with the catalogue page's search and filters; archived ones are never listed."""
    query = CatalogueQuery(q=q.strip(), kind=MaterialKind(kind) if kind else None, topic=topic.strip(),
                           language=language, target_group=TargetGroup(target_group) if target_group else None,
                           available_from=available_from or available_to, available_to=available_to or available_from)
    statement = search_catalogue(query).options(selectinload(Material.editions).selectinload(Edition.units))
    pagination = db.paginate(statement, page=page, per_page=per_page, error_out=False,
                             max_per_page=schemas.MAX_PER_PAGE)
    args = _query_args(dict(lang=lang, q=q, kind=kind, topic=topic, language=language, target_group=target_group,
                            available_from=available_from, available_to=available_to, per_page=per_page))
    # Stock and bookings have no change counter yet: the ETag is the answer's digest.
    return conditional(None, lambda: _page(pagination, [_material(m) for m in pagination.items], "api.catalogue",
                                           {k: v for k, v in args.items() if v}))


@bp.route("/materials/<int:material_id>")
@bp.arguments(schemas.LanguageArgs, location="query", as_kwargs=True)
@bp.response(200, schemas.Material)
@_documented(400, 404, 429)
@kept_whole
def material(material_id: int, lang=None):
    """One material

    With its editions (languages), what is in stock or can be booked, and the links to its page, PDF and
    cover. Archived materials are not found."""
    return conditional(None, lambda: _material(material_for(None, material_id)))


# Vocabularies ---------------------------------------------------------------------------------------

@bp.route("/vocabularies")
@bp.arguments(schemas.LanguageArgs, location="query", as_kwargs=True)
@bp.response(200, schemas.Vocabularies)
@_documented(400, 429)
@kept_whole
def vocabularies(lang=None):
    """The words of the filters

    Target groups, formats, kinds, topics and languages, each with its id (the filter's value) and its label
    in the chosen language."""
    def build():
        codes = set(db.session.scalars(select(Edition.language).distinct()))
        codes |= set(db.session.scalars(select(Training.language).where(Training.is_public).distinct()))
        topics = sorted(db.session.scalars(select(Topic)), key=lambda t: t.label.casefold())
        return {"target_groups": [_label(g) for g in TargetGroup], "formats": [_label(f) for f in TrainingFormat],
                "kinds": [_label(k) for k in MaterialKind],
                "topics": [{"id": t.slug, "label": t.label} for t in topics],
                "languages": sorted(({"id": c, "label": language_name(c)} for c in codes),
                                    key=lambda item: item["label"].casefold())}
    return conditional(None, build)

