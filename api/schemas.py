"""What the API accepts and answers, as marshmallow schemas: webargs checks the parameters with them and
flask-smorest writes them into the OpenAPI document. Nothing personal is in any of them: no registration,
request, name or address of a person, no seat count (``events.seats.Availability`` says why)."""

import re

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from core.bounds import FIRST_DAY, LAST_DAY, MAX_PAGE, parse_month
from core.vocabulary import TargetGroup
from events.models import TrainingFormat
from events.seats import Availability
from materials.models import Lending, MaterialKind

MAX_PER_PAGE = 100
class Pattern(validate.Regexp):
    """A regular expression the whole value must match, ASCII digits and letters only (``re.match`` lets
    ``$`` match before a final newline and ``\\d`` match any script's digits); the OpenAPI document shows
    the pattern."""

    def __init__(self, pattern: str, error: str):
        super().__init__(re.compile(pattern, re.ASCII), error=error)

    def __call__(self, value: str) -> str:
        if self.regex.fullmatch(value) is None:
            raise ValidationError(self._format_error(value))
        return value


class Month(fields.String):
    """``YYYY-MM`` from 2000 to 2099, loaded as the month's first day (``core.bounds.parse_month``)."""

    def _deserialize(self, value, attr, data, **kwargs):
        month = parse_month(super()._deserialize(value, attr, data, **kwargs))
        if month is None:
            raise ValidationError("A month from 2000 to 2099 as YYYY-MM.")
        return month


LANGUAGE_CODE = Pattern(r"^[a-z]{2,3}$", error="A language code of two or three small letters, e.g. de.")
IN_RANGE = r"^20\d\d-"  # dates from FIRST_DAY to LAST_DAY (core.bounds): this century
# Text without control characters (``core.bounds`` refuses them in every request).
PLAIN_TEXT = Pattern(r"^[^\x00-\x1f\x7f]*$", error="Text without control characters.")


class LanguageArgs(Schema):
    lang = fields.String(validate=validate.OneOf(["de", "en"]), metadata={
        "description": "The language of labels and names; without it, the browser's Accept-Language, else German."})


class PageArgs(LanguageArgs):
    page = fields.Integer(load_default=1, validate=validate.Range(1, MAX_PAGE))
    per_page = fields.Integer(load_default=20, validate=validate.Range(1, MAX_PER_PAGE))


class ProgrammeArgs(PageArgs):
    target_group = fields.String(validate=validate.OneOf([g.value for g in TargetGroup]))
    format = fields.String(validate=validate.OneOf([f.value for f in TrainingFormat]))
    month = Month(metadata={"description": "The month the first session begins in (Berlin time).",
                            "pattern": r"^20\d\d-(0[1-9]|1[0-2])$", "example": "2026-03"})
    language = fields.String(validate=LANGUAGE_CODE, metadata={"description": "The language the training is "
                                                                              "held in (ISO 639-1)."})


class CatalogueArgs(PageArgs):
    q = fields.String(validate=[validate.Length(max=200), PLAIN_TEXT], metadata={
        "description": "Words in the title, text, topics, kind or target groups."})
    kind = fields.String(validate=validate.OneOf([k.value for k in MaterialKind]))
    topic = fields.String(validate=[validate.Length(max=100), PLAIN_TEXT], metadata={"description": "A topic's id."})
    language = fields.String(validate=LANGUAGE_CODE, metadata={"description": "An edition's language."})
    target_group = fields.String(validate=validate.OneOf([g.value for g in TargetGroup]))
    available_from = fields.Date(validate=validate.Range(FIRST_DAY, LAST_DAY), metadata={"pattern": IN_RANGE,
        "description": "With available_to: only materials to be had for the whole period (a free unit, or "
                       "copies in stock)."})
    available_to = fields.Date(validate=validate.Range(FIRST_DAY, LAST_DAY), metadata={"pattern": IN_RANGE})

    @validates_schema
    def period_in_order(self, data, **_kwargs):
        if data.get("available_from") and data.get("available_to") and data["available_to"] < data["available_from"]:
            raise ValidationError("The end of the period is before its start.", "available_to")


class Label(Schema):
    id = fields.String(required=True)
    label = fields.String(required=True)


class Links(Schema):
    page = fields.Url(required=True, metadata={"description": "The page on the site."})


class Pagination(Schema):
    page = fields.Integer(required=True)
    per_page = fields.Integer(required=True)
    total = fields.Integer(required=True)
    pages = fields.Integer(required=True)
    next = fields.Url(allow_none=True, required=True)
    prev = fields.Url(allow_none=True, required=True)


class Session(Schema):
    starts_at = fields.String(required=True, metadata={"format": "date-time", "example": "2026-03-12T09:30:00+01:00"})
    ends_at = fields.String(required=True, metadata={"format": "date-time"})


class Registration(Schema):
    state = fields.String(required=True, validate=validate.OneOf(["open", "not_yet", "closed", "none"]),
                          metadata={"description": "open; not_yet (opens_at); closed (past closes_at or begun); "
                                                   "none (cancelled)."})
    opens_at = fields.String(allow_none=True, required=True, metadata={"format": "date-time"})
    closes_at = fields.String(allow_none=True, required=True, metadata={"format": "date-time"})


class TrainingLinks(Links):
    calendar = fields.Url(required=True, metadata={"description": "The training as an iCalendar file."})
    register = fields.Url(required=True, metadata={"description": "The registration form (on the page)."})


class Training(Schema):
    id = fields.Integer(required=True)
    title = fields.String(required=True)
    description = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(["published", "cancelled"]))
    format = fields.Nested(Label, required=True)
    language = fields.String(required=True)
    target_groups = fields.List(fields.Nested(Label), required=True)
    venue = fields.String(allow_none=True, required=True, metadata={
        "description": "Where it takes place (in person and hybrid); the street address goes to participants."})
    sessions = fields.List(fields.Nested(Session), required=True)
    availability = fields.String(allow_none=True, required=True,
                                 validate=validate.OneOf([a.value for a in Availability]), metadata={
        "description": "free, few (a few seats left) or full (a registration joins the waiting list); no "
                       "numbers, as on the page. Null where registration is closed (begun, past its closing "
                       "time, or cancelled)."})
    registration = fields.Nested(Registration, required=True)
    links = fields.Nested(TrainingLinks, required=True)


class TrainingPage(Pagination):
    items = fields.List(fields.Nested(Training), required=True)


class Edition(Schema):
    language = fields.String(required=True)
    language_name = fields.String(required=True)
    in_stock = fields.Integer(allow_none=True, required=True, metadata={"description": "Copies (give-away)."})
    units = fields.Integer(allow_none=True, required=True, metadata={
        "description": "Units in a state to be lent (returnable), booked or not; whether one is free for a "
                       "period: the list's available_from and available_to."})


class MaterialLinks(Links):
    pdf = fields.Url(allow_none=True, required=True)
    cover = fields.Url(allow_none=True, required=True)


class Material(Schema):
    id = fields.Integer(required=True)
    title = fields.String(required=True)
    subtitle = fields.String(required=True)
    kind = fields.Nested(Label, required=True)
    lending = fields.String(required=True, validate=validate.OneOf([v.value for v in Lending]), metadata={
        "description": "giveaway: copies to keep, by quantity; returnable: units booked for a period."})
    description = fields.String(required=True)
    target_groups = fields.List(fields.Nested(Label), required=True)
    topics = fields.List(fields.Nested(Label), required=True)
    publisher = fields.String(required=True)
    year = fields.Integer(allow_none=True, required=True)
    editions = fields.List(fields.Nested(Edition), required=True)
    available = fields.Boolean(required=True, metadata={
        "description": "Copies in stock (give-away) or a unit in a state to be lent (returnable; its bookings "
                       "are not looked at: for a period, filter the list with available_from and available_to)."})
    links = fields.Nested(MaterialLinks, required=True)


class MaterialPage(Pagination):
    items = fields.List(fields.Nested(Material), required=True)


class Vocabularies(Schema):
    target_groups = fields.List(fields.Nested(Label), required=True)
    formats = fields.List(fields.Nested(Label), required=True)
    kinds = fields.List(fields.Nested(Label), required=True)
    topics = fields.List(fields.Nested(Label), required=True)
    languages = fields.List(fields.Nested(Label), required=True, metadata={
        "description": "The languages of editions and trainings."})


class Problem(Schema):
    """RFC 9457."""

    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String()
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()),
                         metadata={"description": "Each bad parameter with its messages."})
