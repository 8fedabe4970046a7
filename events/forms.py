"""Forms of the trainings feature."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, StringField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Email, Length

EMAIL = [
    DataRequired(message=_l("Please enter your e-mail address.")),
    Email(message=_l("This is not a valid e-mail address."), check_deliverability=False),
    Length(max=254),
]


class RegistrationForm(FlaskForm):
    name = StringField(_l("Your name"), validators=[DataRequired(message=_l("Please enter your name.")), Length(max=200)])
    email = EmailField(_l("E-mail address"), validators=EMAIL)
    organisation = StringField(_l("Organisation"), validators=[Length(max=200)])
    position = StringField(_l("Position"), validators=[Length(max=200)])
    accessibility = TextAreaField(_l("Accessibility needs"), validators=[Length(max=1000)])
    dietary = TextAreaField(_l("Dietary needs"), validators=[Length(max=1000)])
    free_answer = TextAreaField(validators=[Length(max=2000)])
    consent = BooleanField(
        _l("I agree that my details are stored to run this training, as described in the privacy notice."),
        validators=[DataRequired(message=_l("Without your consent we cannot register you."))],
    )
    submit = SubmitField(_l("Register"))
