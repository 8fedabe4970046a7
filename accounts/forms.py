"""Forms of the accounts feature; labels are lazy so they follow the visitor's language."""

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, SelectField, StringField, SubmitField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Email, EqualTo, InputRequired, Length, Optional

from accounts.models import ORGANISATION_KIND_LABELS, ROLE_LABELS, OrganisationKind, Role

EMAIL_VALIDATORS = [
    DataRequired(message=_l("Please enter your e-mail address.")),
    Email(message=_l("This is not a valid e-mail address."), check_deliverability=False),
    Length(max=254),
]
NEW_PASSWORD_VALIDATORS = [
    DataRequired(message=_l("Please enter a password.")),
    Length(min=10, max=200, message=_l("Use at least 10 characters.")),
]


def optional_int(value):
    """Coerce a select value to int; empty or 0 means 'none'."""
    if value in (None, "", "0", 0, "None"):
        return None
    return int(value)


def kind_choices() -> list[SelectChoice]:
    return [SelectChoice(kind.value, ORGANISATION_KIND_LABELS[kind]) for kind in OrganisationKind]


def role_choices() -> list[SelectChoice]:
    return [SelectChoice(role.value, ROLE_LABELS[role]) for role in Role]


LANGUAGE_CHOICES = [SelectChoice("de", "Deutsch"), SelectChoice("en", "English")]


class LoginForm(FlaskForm):
    email = EmailField(_l("E-mail address"), validators=EMAIL_VALIDATORS)
    password = PasswordField(
        _l("Password"), validators=[DataRequired(message=_l("Please enter your password."))]
    )
    remember = BooleanField(_l("Stay signed in on this device"))
    submit = SubmitField(_l("Sign in"))


class ForgotPasswordForm(FlaskForm):
    email = EmailField(_l("E-mail address"), validators=EMAIL_VALIDATORS)
    submit = SubmitField(_l("Send link"))


class SetPasswordForm(FlaskForm):
    password = PasswordField(_l("New password"), validators=NEW_PASSWORD_VALIDATORS)
    confirm = PasswordField(
        _l("Repeat new password"),
        validators=[
            DataRequired(message=_l("Please repeat the password.")),
            EqualTo("password", message=_l("The two passwords differ.")),
        ],
    )
    submit = SubmitField(_l("Save password"))


class ChangePasswordForm(SetPasswordForm):
    current_password = PasswordField(
        _l("Current password"),
        validators=[DataRequired(message=_l("Please enter your current password."))],
    )


class ProfileForm(FlaskForm):
    name = StringField(
        _l("Name"), validators=[DataRequired(message=_l("Please enter your name.")), Length(max=200)]
    )
    locale = SelectField(
        _l("Language for e-mails and pages"), choices=LANGUAGE_CHOICES
    )
    submit = SubmitField(_l("Save"))


class LanguageForm(FlaskForm):
    """The language switch in the page header."""

    lang = SelectField(choices=LANGUAGE_CHOICES)
    next = StringField()


class ApplicationForm(FlaskForm):
    name = StringField(
        _l("Your name"),
        validators=[DataRequired(message=_l("Please enter your name.")), Length(max=200)],
    )
    email = EmailField(_l("E-mail address"), validators=EMAIL_VALIDATORS)
    organisation_name = StringField(
        _l("Your organisation"),
        validators=[DataRequired(message=_l("Please enter the name of your organisation.")), Length(max=200)],
    )
    position = StringField(_l("Position"), validators=[Length(max=200)])
    phone = StringField(_l("Phone"), validators=[Length(max=50)])
    message = TextAreaField(_l("Message to us"), validators=[Length(max=2000)])
    submit = SubmitField(_l("Apply for an account"))


class OrganisationForm(FlaskForm):
    name = StringField(
        _l("Name"),
        validators=[DataRequired(message=_l("Please enter the name.")), Length(max=200)],
    )
    # A required select begins with an empty choice (HTML requires it, and a new organisation's kind
    # is chosen, not left at the first of the list).
    kind = SelectField(_l("Kind"), choices=lambda: [SelectChoice("", _l("— please choose —")), *kind_choices()],
                       validators=[InputRequired(message=_l("Please choose the kind."))])
    street = StringField(_l("Street and number"), validators=[Length(max=200)])
    postcode = StringField(_l("Postcode"), validators=[Length(max=20)])
    city = StringField(_l("City"), validators=[Length(max=100)])
    phone = StringField(_l("Phone"), validators=[Length(max=50)])
    email = EmailField(
        _l("E-mail address"),
        validators=[
            Optional(),
            Email(message=_l("This is not a valid e-mail address."), check_deliverability=False),
            Length(max=254),
        ],
    )
    notes = TextAreaField(_l("Notes (visible to staff only)"), validators=[Length(max=5000)])
    submit = SubmitField(_l("Save"))


class ContactForm(FlaskForm):
    """A new partner contact for an organisation; they get a link to set a password."""

    name = StringField(
        _l("Name"), validators=[DataRequired(message=_l("Please enter the name.")), Length(max=200)]
    )
    email = EmailField(_l("E-mail address"), validators=EMAIL_VALIDATORS)
    locale = SelectField(
        _l("Language for e-mails"), choices=LANGUAGE_CHOICES
    )
    submit = SubmitField(_l("Add contact and send invitation"))


class UserForm(FlaskForm):
    email = EmailField(_l("E-mail address"), validators=EMAIL_VALIDATORS)
    name = StringField(
        _l("Name"), validators=[DataRequired(message=_l("Please enter the name.")), Length(max=200)]
    )
    role = SelectField(
        _l("Role"), choices=role_choices
    )
    organisation_id = SelectField(
        _l("Organisation (partner contacts only)"), coerce=optional_int, validators=[Optional()]
    )
    locale = SelectField(
        _l("Language for e-mails"), choices=LANGUAGE_CHOICES
    )
    active = BooleanField(_l("Account is active"), default=True)
    submit = SubmitField(_l("Save"))


class ApproveForm(FlaskForm):
    organisation_id = SelectField(
        _l("Organisation"), coerce=optional_int, validators=[Optional()]
    )
    # Needed only for a new organisation, so not required; the empty first choice means nobody's
    # organisation gets a kind by default (the service asks for it when a new one is created).
    new_kind = SelectField(_l("Kind of the new organisation"),
                           choices=lambda: [SelectChoice("", _l("— please choose —")), *kind_choices()], default="")
    submit = SubmitField(_l("Approve and send invitation"))


class RejectForm(FlaskForm):
    reason = TextAreaField(
        _l("Reason (sent to the applicant)"), validators=[Length(max=2000)]
    )
    submit = SubmitField(_l("Reject application"))


class ActionForm(FlaskForm):
    """A button that only needs the CSRF token (sign out, resend, retry)."""

    submit = SubmitField()
