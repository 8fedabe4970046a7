"""Adding materials from a CSV file, row by row: good rows go in, bad rows are reported."""

import re
from dataclasses import dataclass, field

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from accounts.models import User
from core import audit
from core.bounds import CONTROL, MAX_NUMBER
from core.db import unit_of_work
from core.extensions import db
from core.vocabulary import TargetGroup
from materials.catalogue import build_material
from materials.errors import MaterialsError
from materials.models import Lending, Material, MaterialKind, StockReason, Unit
from materials.stock import change_stock

IMPORT_COLUMNS = ("title", "subtitle", "kind", "description", "topics", "target_groups", "languages",
                  "publisher", "year", "stock", "units", "per_request_max", "loan_days_max")


RETURNABLE_KINDS = {MaterialKind.EXHIBITION, MaterialKind.METHOD_KIT, MaterialKind.MEDIA}


IMPORT_MAX_BYTES = 2 * 1024 * 1024


@dataclass
class ImportReport:
    accepted: list = field(default_factory=list)  # (line, title)
    refused: list = field(default_factory=list)  # (line, reason)


def _pairs(text: str) -> dict[str, str]:
    """``"de=500, en=100"`` → ``{"de": "500", "en": "100"}``."""
    result = {}
    for part in text.split(","):
        if part.strip():
            language, sep, value = part.partition("=")
            if not sep:
                raise ValueError(part)
            result[language.strip().lower()] = value.strip()
    return result


@unit_of_work
def import_catalogue(data: bytes, user: User) -> ImportReport:
    """Add materials from a CSV file (comma or semicolon, UTF-8 with or without BOM).

    Each row is checked on its own: good rows are added, bad rows are reported
    with the reason, and a broken file changes nothing.
    """
    import csv
    import io

    if len(data) > IMPORT_MAX_BYTES:
        raise MaterialsError(_l("The file is larger than 2 MB."), field="file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise MaterialsError(_l("The file is not UTF-8 text. Save it as “CSV UTF-8”."), field="file") from None
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=";,")
    except csv.Error:
        raise MaterialsError(_l("This does not look like a CSV file with ; or , between columns."),
                             field="file") from None
    reader = csv.DictReader(io.StringIO(text), dialect=dialect)
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    if "title" not in header or "kind" not in header:
        raise MaterialsError(_l("The first row must name the columns; title and kind are required."), field="file")
    reader.fieldnames = header
    report = ImportReport()
    added = []
    for line, row in enumerate(reader, start=2):
        row = {k: (v or "").strip() for k, v in row.items() if k}
        try:
            with db.session.begin_nested():
                material = _import_row(row, user)
        except (MaterialsError, ValueError, IntegrityError) as error:
            message = (error.message if isinstance(error, MaterialsError)
                       else _l("Invalid value: %(value)s", value=str(error)[:80]))
            report.refused.append((line, str(message)))
        else:
            report.accepted.append((line, material.title))
            added.append(material)
    if added:
        audit.record(user, "import", added[0], refs=added[1:],
                     details=f"{len(added)} / {len(added) + len(report.refused)}")
    return report


# Longest text per column, as in the material form and the database.
TEXT_LIMITS = {"title": 300, "subtitle": 300, "description": 10000, "publisher": 300, "topics": 500,
               "target_groups": 300, "languages": 100, "units": 5000, "stock": 1000, "kind": 32}
UNIT_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,49}$")


def _number(row: dict, name: str, low: int, high: int) -> int | None:
    """An optional whole number of a column, within ``low`` … ``high``."""
    raw = row.get(name, "")
    if not raw:
        return None
    if not re.fullmatch(r"-?\d{1,10}", raw) or not low <= int(raw) <= high:
        raise MaterialsError(_l("%(column)s: enter a whole number from %(low)s to %(high)s.", column=name, low=low,
                                high=high))
    return int(raw)


def _import_row(row: dict, user: User) -> Material:
    for name, value in row.items():
        if CONTROL.search(value):
            raise MaterialsError(_l("%(column)s contains control characters.", column=name))
        if len(value) > TEXT_LIMITS.get(name, 1000):
            raise MaterialsError(_l("%(column)s is longer than %(n)s characters.", column=name,
                                    n=TEXT_LIMITS.get(name, 1000)))
    title = row.get("title", "")
    if not title:
        raise MaterialsError(_l("The title is missing."))
    if db.session.scalar(select(Material.id).where(func.lower(Material.title) == title.lower())) is not None:
        raise MaterialsError(_l("“%(title)s” is in the catalogue already.", title=title))
    kind = MaterialKind._value2member_map_.get(row.get("kind", "").lower())
    if kind is None:
        raise MaterialsError(_l("Unknown kind “%(kind)s”; use %(kinds)s.", kind=row.get("kind", ""),
                                kinds=", ".join(k.value for k in MaterialKind)))
    returnable = kind in RETURNABLE_KINDS
    languages = [code.strip().lower() for code in row.get("languages", "de").split(",") if code.strip()] or ["de"]
    for code in languages:
        if not (code.isalpha() and 2 <= len(code) <= 3):
            raise MaterialsError(_l("“%(code)s” is not a language code such as de, en, ar or tr.", code=code))
    groups = [g.strip().lower() for g in row.get("target_groups", "").split(",") if g.strip()]
    unknown = [g for g in groups if g not in TargetGroup._value2member_map_]
    if unknown:
        raise MaterialsError(_l("Unknown target group “%(group)s”.", group=unknown[0]))
    material = build_material(
        None, [t.strip() for t in row.get("topics", "").split(",")], languages,
        title=title, subtitle=row.get("subtitle", ""), kind=kind,
        lending=Lending.RETURNABLE if returnable else Lending.GIVEAWAY,
        description=row.get("description", ""), target_groups=",".join(groups), publisher=row.get("publisher", ""),
        year=_number(row, "year", 1950, 2100),
        per_request_max=_number(row, "per_request_max", 1, MAX_NUMBER),
        loan_days_max=_number(row, "loan_days_max", 1, 365),
    )
    editions = {e.language: e for e in material.editions}
    db.session.flush()
    if returnable:
        for language, codes in _pairs(row.get("units", "")).items():
            if language not in editions:
                raise MaterialsError(_l("Units for %(code)s, but that language is not listed.", code=language))
            for code in codes.split():
                if not UNIT_CODE.match(code):
                    raise MaterialsError(_l("“%(code)s” is not an inventory code (letters, digits and - . _ /, at "
                                            "most 50).", code=code[:60]))
                db.session.add(Unit(edition=editions[language], inventory_code=code.upper()))
    else:
        for language, amount in _pairs(row.get("stock", "")).items():
            if language not in editions:
                raise MaterialsError(_l("Stock for %(code)s, but that language is not listed.", code=language))
            quantity = _number({"stock": amount}, "stock", 0, MAX_NUMBER) or 0
            if quantity:
                change_stock(editions[language].id, quantity, StockReason.INTAKE, user, note="CSV-Import")
    db.session.flush()
    return material
