"""Partner organisations, and who may see one (DOMAIN rule 6: a partner contact only their own)."""

import unicodedata

from flask import abort
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from accounts.errors import AccountError
from accounts.models import Organisation, User
from core import audit
from core.db import unit_of_work
from core.extensions import db
from core.states import lock


def organisation_for(user: User, organisation_id: int) -> Organisation:
    """The organisation if ``user`` may see it: staff any, a partner contact only their own (else 403)."""
    org = db.get_or_404(Organisation, organisation_id)
    if not user.is_staff and user.organisation_id != org.id:
        abort(403)
    return org


@unit_of_work
def save_organisation(organisation_id: int | None, actor: User, **fields) -> Organisation:
    """Create (``organisation_id`` None) or update an organisation; names are unique, ignoring case."""
    name = fields["name"].strip()
    taken = AccountError(_l("An organisation with this name exists already."), field="name")
    clash = db.session.scalar(select(Organisation.id).where(func.lower(Organisation.name) == name.lower()))
    if clash is not None and clash != organisation_id:
        raise taken
    org = lock(Organisation, organisation_id) if organisation_id is not None else None
    changed = [key for key, value in fields.items() if org is None or getattr(org, key) != value]
    try:
        with db.session.begin_nested():
            if org is None:
                org = Organisation(name=name, kind=fields["kind"])
                db.session.add(org)
            for key, value in fields.items():
                setattr(org, key, value.strip() if isinstance(value, str) else value)
    except IntegrityError:  # the same name at the same moment
        raise taken from None
    audit.record(actor, "edit" if organisation_id is not None else "create", org, details=", ".join(changed))
    return org


def organisation_key(name: str) -> str:
    """A name as it is compared: case (every letter, Ä as ä) and runs of spaces aside."""
    return " ".join(unicodedata.normalize("NFC", name).split()).casefold()


def known_organisation_id(name: str) -> int | None:
    """The organisation whose name someone typed (case and spaces aside), if Fundus knows it: a trainee's
    registration keeps it, for the figures of who was reached, after its personal data goes. Compared
    in Python (SQLite's lower() folds only ASCII: "ÄRZTEKAMMER" would never meet "Ärztekammer"), among
    the few organisations whose names are as long."""
    typed, key = " ".join(unicodedata.normalize("NFC", name).split()), organisation_key(name)
    if not key:
        return None
    candidates = db.session.execute(select(Organisation.id, Organisation.name)
                                    .where(func.length(Organisation.name) == len(typed))
                                    .order_by(Organisation.id)).all()
    return next((id_ for id_, known in candidates if organisation_key(known) == key), None)
