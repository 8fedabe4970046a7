"""Forms of the materials feature."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField, FileRequired
from wtforms import (
    DateField,
    HiddenField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional, Regexp, ValidationError

from core.bounds import MAX_NUMBER, DateInRange
from core.vocabulary import target_group_choices
from materials.models import MATERIAL_KIND_LABELS, MaterialKind


def kind_choices():
    return [SelectChoice(k.value, MATERIAL_KIND_LABELS[k]) for k in MaterialKind]


def lending_choices():
    return [
        SelectChoice("giveaway", _l("Handed out by quantity from stock")),
        SelectChoice("returnable", _l("Lent as units for a period and returned")),
    ]


def parse_contents(text: str) -> list[tuple[str, int]]:
    """``"4 × Roll-up"`` / ``"4 x Roll-up"`` / ``"Roll-up"`` lines → ``[("Roll-up", 4), …]``."""
    parts = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        number, sep, name = line.replace("×", "x").partition(" x ")
        if sep:
            if not number.strip().isdecimal() or not name.strip() or int(number) < 1:
                raise ValueError(line)
            parts.append((name.strip()[:200], int(number)))
        else:
            parts.append((line[:200], 1))
    return parts


def split_list(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


class MaterialForm(FlaskForm):
    title = StringField(_l("Title"), validators=[DataRequired(message=_l("Please enter the title.")), Length(max=300)])
    subtitle = StringField(_l("Subtitle"), validators=[Length(max=300)])
    kind = SelectField(_l("Kind"), choices=kind_choices)
    lending = SelectField(_l("Given out"), choices=lending_choices)
    description = TextAreaField(_l("Description"), validators=[Length(max=10000)])
    topics = StringField(_l("Topics, separated by commas"), validators=[Length(max=500)])
    target_groups = SelectMultipleField(_l("Target groups"), choices=target_group_choices, validators=[Optional()])
    languages = StringField(
        _l("Language editions (ISO codes, separated by commas)"),
        default="de",
        validators=[DataRequired(message=_l("Name at least one language, e.g. de.")), Length(max=100)],
    )
    publisher = StringField(_l("Publisher"), validators=[Length(max=300)])
    co_publishers = StringField(_l("Co-publishers"), validators=[Length(max=500)])
    year = IntegerField(_l("Year"), validators=[
        Optional(), NumberRange(min=1950, max=2100, message=_l("Enter a year between 1950 and 2100."))])
    per_request_max = IntegerField(
        _l("Most copies per request"),
        validators=[Optional(), NumberRange(min=1, max=MAX_NUMBER, message=_l("Enter 1 or more."))]
    )
    low_stock_threshold = IntegerField(
        _l("Warn when stock falls below"), default=0,
        validators=[Optional(), NumberRange(min=0, max=MAX_NUMBER, message=_l("Enter 0 or more."))]
    )
    loan_days_max = IntegerField(
        _l("Longest loan in days"), validators=[Optional(), NumberRange(min=1, max=365, message=_l("Enter 1 to 365."))]
    )
    buffer_days = IntegerField(
        _l("Buffer days after each loan (packing, transport)"),
        default=2,
        validators=[InputRequired(message=_l("Enter 0 or more.")),
                    NumberRange(min=0, max=30, message=_l("Enter 0 to 30."))],
    )
    pickup_notes = TextAreaField(_l("Pickup or delivery notes"), validators=[Length(max=2000)])
    contents = TextAreaField(
        _l("Contents of a kit, one part per line (e.g. “4 × Roll-up display”)"), validators=[Length(max=5000)]
    )
    submit = SubmitField(_l("Save"))

    def validate_contents(self, field):
        try:
            parse_contents(field.data or "")
        except ValueError as error:
            raise ValidationError(_l("Line “%(line)s”: write the number, ×, then the part.", line=str(error))) from None

    def validate_languages(self, field):
        for code in split_list(field.data):
            if not (code.isalpha() and 2 <= len(code) <= 3 and code.islower()):
                raise ValidationError(_l("“%(code)s” is not a language code such as de, en, ar or tr.", code=code))


class StockForm(FlaskForm):
    edition_id = SelectField(_l("Edition"), coerce=int)
    quantity = IntegerField(
        _l("Change (positive adds, negative removes)"),
        validators=[InputRequired(message=_l("Enter a quantity.")), NumberRange(min=-100000, max=100000)],
    )
    reason = SelectField(
        _l("Reason"),
        choices=lambda: [SelectChoice("intake", _l("Intake (delivery, print run)")),
                         SelectChoice("correction", _l("Correction (stocktaking)"))],
    )
    note = StringField(_l("Note"), validators=[Length(max=500)])
    submit = SubmitField(_l("Record"))


class UnitForm(FlaskForm):
    edition_id = SelectField(_l("Edition"), coerce=int)
    inventory_code = StringField(
        _l("Inventory code"),
        validators=[
            DataRequired(message=_l("Please enter the inventory code.")),
            Length(max=50),
            Regexp(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$", message=_l("Use letters, digits and - . _ / only.")),
        ],
    )
    submit = SubmitField(_l("Add unit"))


class AddQuantityForm(FlaskForm):
    edition_id = SelectField(_l("Language"), coerce=int)
    quantity = IntegerField(_l("Copies"), validators=[InputRequired(message=_l("Enter a quantity.")),
                                                      NumberRange(min=1, max=100000, message=_l("Enter 1 or more."))])
    submit = SubmitField(_l("Add to basket"))


class AddPeriodForm(FlaskForm):
    edition_id = SelectField(_l("Language"), coerce=int)
    starts_on = DateField(_l("Pickup date"),
                          validators=[InputRequired(message=_l("Choose the pickup and the return date.")),
                                      DateInRange()])
    ends_on = DateField(_l("Return date"),
                        validators=[InputRequired(message=_l("Choose the pickup and the return date.")),
                                    DateInRange()])
    submit = SubmitField(_l("Add to basket"))


class SubmitRequestForm(FlaskForm):
    submit_key = HiddenField()
    purpose = TextAreaField(_l("What is it for?"), validators=[
        DataRequired(message=_l("Please tell us what it is for.")), Length(max=2000)])
    audience = StringField(_l("Expected audience"), validators=[Length(max=300)])
    delivery = SelectField(_l("Delivery"), choices=lambda: [SelectChoice("pickup", _l("Pickup at the office")),
                                                            SelectChoice("shipping", _l("Shipping to an address"))])
    shipping_address = TextAreaField(_l("Shipping address"), validators=[Length(max=1000)])
    submit = SubmitField(_l("Submit request"))


class TopicForm(FlaskForm):
    """One topic's names on the staff's topic page (each row its own form, with a prefix)."""

    name = StringField(_l("German name"), validators=[DataRequired(message=_l("Give the topic a name.")),
                                                     Length(max=100)])
    name_en = StringField(_l("English name"), validators=[Length(max=100)])
    submit = SubmitField(_l("Save"))


class DecisionForm(FlaskForm):
    reason = TextAreaField(_l("Reason (sent to the partner)"), validators=[Length(max=2000)])


class ImportForm(FlaskForm):
    file = FileField(_l("CSV file"), validators=[
        FileRequired(message=_l("Choose a file.")),
        FileAllowed(["csv", "txt"], message=_l("Upload a .csv file.")),
    ])
    submit = SubmitField(_l("Import"))


class UploadForm(FlaskForm):
    cover = FileField(_l("Cover image (JPEG, PNG or WebP, at most 5 MB)"),
                      validators=[FileAllowed(["jpg", "jpeg", "png", "webp"],
                                              message=_l("Upload a JPEG, PNG or WebP image."))])
    pdf = FileField(_l("PDF download (at most 15 MB)"),
                    validators=[FileAllowed(["pdf"], message=_l("Upload a PDF file."))])
    submit = SubmitField(_l("Upload"))
