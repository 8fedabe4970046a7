"""Partner organisations."""


from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from accounts.errors import AccountError
from accounts.models import Organisation
from core.extensions import db


def save_organisation(org: Organisation | None, **fields) -> Organisation:
    """Create (``org`` None) or update an organisation; names are unique, ignoring case."""
    name = fields["name"].strip()
    clash = db.session.scalar(
        select(Organisation).where(func.lower(Organisation.name) == name.lower())
    )
    if clash is not None and (org is None or clash.id != org.id):
        raise AccountError(_l("An organisation with this name exists already."), field="name")
    if org is None:
        org = Organisation(name=name, kind=fields["kind"])
        db.session.add(org)
    for key, value in fields.items():
        setattr(org, key, value.strip() if isinstance(value, str) else value)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise AccountError(_l("An organisation with this name exists already."), field="name") from None
    return org
