"""Forms of the trainings feature."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    DateTimeLocalField,
    EmailField,
    FieldList,
    Form,
    FormField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
    TextAreaField,
    TimeField,
    URLField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import URL, DataRequired, Email, InputRequired, Length, NumberRange, Optional, ValidationError

from core.bounds import DateInRange
from core.confirm import REASON_LENGTH
from core.vocabulary import target_group_choices
from events.models import FORMAT_LABELS, HEALTH_ANSWERS, TrainingFormat

EMAIL = [
    DataRequired(message=_l("Please enter your e-mail address.")),
    Email(message=_l("This is not a valid e-mail address."), check_deliverability=False),
    Length(max=254),
]


class RegistrationForm(FlaskForm):
    """Registration for a training. What the training needs (name, address, organisation, position)
    is processed to run it (Art. 6 (1) (b) GDPR): the form informs, it does not ask for consent.
    Accessibility and dietary needs can say something about a person's health: they are optional and
    need their own, explicit consent (Art. 9 (2) (a) GDPR), unticked by default."""

    name = StringField(_l("Your name"),
                       validators=[DataRequired(message=_l("Please enter your name.")), Length(max=200)])
    email = EmailField(_l("E-mail address"), validators=EMAIL)
    organisation = StringField(_l("Organisation"), validators=[Length(max=200)])
    position = StringField(_l("Position"), validators=[Length(max=200)])
    accessibility = TextAreaField(_l("Accessibility needs (optional)"), validators=[Length(max=1000)])
    dietary = TextAreaField(_l("Dietary needs (optional)"), validators=[Length(max=1000)])
    health_consent = BooleanField(
        _l("I agree that my answers about accessibility and dietary needs, which can say something about my "
           "health, are used only to prepare this training. They are deleted when it has ended; I can withdraw "
           "my consent at any time by writing to us (the address is in the privacy notice; Art. 9 (2) (a) GDPR)."),
    )
    free_answer = TextAreaField(validators=[Length(max=2000)])
    submit = SubmitField(_l("Register"))

    def gives_health_data(self) -> bool:
        return any((self[name].data or "").strip() for name in HEALTH_ANSWERS if name in self)

    def validate_health_consent(self, field) -> None:
        if self.gives_health_data() and not field.data:
            raise ValidationError(_l("To tell us about accessibility or dietary needs, please give your consent "
                                     "here, or leave those fields empty."))


class SessionForm(Form):
    """One row of the sessions table; empty rows are ignored."""

    day = DateField(_l("Date"), validators=[Optional(), DateInRange()])
    starts = TimeField(_l("Start"), validators=[Optional()])
    ends = TimeField(_l("End"), validators=[Optional()])

    def validate(self, extra_validators=None) -> bool:
        if not super().validate(extra_validators):
            return False
        fields = (self.day, self.starts, self.ends)
        if any(f.data is not None for f in fields) and not all(f.data is not None for f in fields):
            for f in fields:
                if f.data is None:
                    f.errors.append(_l("Give the date, the start and the end."))
            return False
        return True


def format_choices() -> list[SelectChoice]:
    return [SelectChoice(f.value, FORMAT_LABELS[f]) for f in TrainingFormat]


def language_choices() -> list[SelectChoice]:
    return [SelectChoice("de", _l("German")), SelectChoice("en", _l("English")),
            SelectChoice("de,en", _l("German and English"))]


class TrainingForm(FlaskForm):
    title = StringField(_l("Title"), validators=[DataRequired(message=_l("Please enter a title.")), Length(max=300)])
    description = TextAreaField(_l("Description"), validators=[Length(max=10000)])
    target_groups = SelectMultipleField(_l("Target groups"), choices=target_group_choices, validators=[Optional()])
    format = SelectField(_l("Format"), choices=format_choices)
    venue = StringField(_l("Venue"), validators=[Length(max=300)])
    address = TextAreaField(_l("Address"), validators=[Length(max=1000)])
    online_link = URLField(_l("Online link (only confirmed participants see it)"),
                           validators=[Optional(), URL(message=_l("Please enter a full web address.")),
                                       Length(max=500)])
    trainers = StringField(_l("Trainers"), validators=[Length(max=500)])
    language = SelectField(_l("Language of the training"), choices=language_choices)
    seats = IntegerField(_l("Seats"), validators=[InputRequired(message=_l("Please enter the number of seats.")),
                                                  NumberRange(min=1, max=10000)])
    registration_opens_at = DateTimeLocalField(_l("Registration opens"), format="%Y-%m-%dT%H:%M",
                                               validators=[Optional(), DateInRange()])
    registration_closes_at = DateTimeLocalField(_l("Registration closes"), format="%Y-%m-%dT%H:%M",
                                                validators=[Optional(), DateInRange()])
    sessions = FieldList(FormField(SessionForm), min_entries=3)
    handouts = SelectMultipleField(_l("Handouts from the catalogue"), coerce=int, validators=[Optional()])
    ask_accessibility = BooleanField(_l("Ask about accessibility needs"))
    ask_dietary = BooleanField(_l("Ask about dietary needs"))
    free_question = StringField(_l("Own question (optional)"), validators=[Length(max=300)])
    submit = SubmitField(_l("Save"))

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        if self.format.data in ("online", "hybrid") and not self.online_link.data:
            self.online_link.errors = [*self.online_link.errors,
                                       _l("An online or hybrid training needs its online link.")]
            valid = False
        return valid


class OverrideForm(FlaskForm):
    """Staff record attendance before a session starts, or issue a certificate before it ends: why."""

    override_reason = TextAreaField(_l("Reason for recording before the start or certifying before the end"),
                                    validators=[Length(max=REASON_LENGTH)])


class MessageForm(FlaskForm):
    subject = StringField(_l("Subject"), validators=[DataRequired(message=_l("Please enter a subject.")),
                                                     Length(max=200)])
    body = TextAreaField(_l("Message"), validators=[DataRequired(message=_l("Please enter a message.")),
                                                    Length(max=10000)])
    include_waiting = BooleanField(_l("Also to the waiting list"))
    submit = SubmitField(_l("Send"))


class EmailForm(FlaskForm):
    email = EmailField(_l("E-mail address"), validators=EMAIL)
    submit = SubmitField(_l("Send me the link"))
