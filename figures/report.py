"""The figures of a period as tables, each number beside the one of the period before: what the page
shows and the exports write."""

from dataclasses import dataclass, field
from datetime import datetime

from flask_babel import lazy_gettext as _l

from accounts.models import ORGANISATION_KIND_LABELS
from core.i18n import format_decimal, format_month, language_name
from core.pagecache import Codec, kept_value
from core.vocabulary import TARGET_GROUP_LABELS
from events.models import FORMAT_LABELS
from figures import queries
from figures.period import Period
from figures.queries import Figures, compute, figures_as_json, figures_from_json, moments
from materials.models import MATERIAL_KIND_LABELS, REQUEST_STATUS_LABELS


@dataclass
class Table:
    key: str  # its name in URLs and file names
    title: str
    label: str  # the heading of the first column
    rows: list[tuple[str, float, float | None]]  # label, this period, the period before (None: none to compare)
    points: set[str] = field(default_factory=set)  # the rows that are percentages themselves

    @property
    def named_by_people(self) -> bool:
        """Whether its rows are things people named (materials, organisations, cities), not words of Fundus."""
        return self.key in PEOPLES_NAMES

    def change(self, now: float, before: float | None, label: str = "") -> str:
        """The change against the period before: in per cent, or in percentage points for a row that is
        a percentage itself; a dash where there was nothing before."""
        if label in self.points and before is not None:
            difference = now - before
            return ("+" if difference > 0 else "") + format_decimal(difference, 1) + " " + str(_l("pp"))
        if not before:
            return "–"
        percent = 100.0 * (now - before) / before
        return ("+" if percent > 0 else "") + format_decimal(percent, 0) + " %"


PERCENTAGES = {"fill_rate"}
PEOPLES_NAMES = {"copies_by_material", "loans_by_kit", "days_by_kit", "served_by_city", "reached_by_city",
                 "top_organisations"}

NUMBERS = {  # table key → the single numbers it lists, in order
    "trainings": [
        ("trainings", _l("Trainings held")), ("trainings_cancelled", _l("Trainings cancelled")),
        ("sessions", _l("Sessions")), ("hours", _l("Teaching hours")),
        ("registrations", _l("Registrations")), ("confirmed", _l("Confirmed registrations")),
        ("participants", _l("Participations (registrations present at least once)")),
        ("attendances", _l("Attendances (people × sessions)")), ("no_shows", _l("No-shows")),
        ("cancelled_by_participants", _l("Cancelled by participants")),
        ("cancelled_by_staff", _l("Cancelled by staff")),
        ("unmet", _l("Unmet demand (registered, never got a seat)")), ("fill_rate", _l("Fill rate (%)")),
        ("training_organisations", _l("Organisations someone came from (where known)")),
        ("training_organisations_first", _l("… for the first time")),
        ("training_organisations_returning", _l("… again")),
    ],
    "materials": [
        ("copies", _l("Copies handed out")), ("loans", _l("Kit loans")), ("loan_days", _l("Days on loan")),
        ("requests", _l("Requests received")), ("decision_days", _l("Average days to a decision")),
        ("organisations_served", _l("Organisations served")), ("overdue", _l("Overdue loans")),
        ("damaged", _l("Returns damaged, incomplete or lost")),
    ],
    "reach": [
        ("organisations", _l("Organisations reached (training or material)")),
        ("organisations_new", _l("Reached for the first time")),
    ],
}

TITLES = {
    "trainings": _l("Trainings"), "materials": _l("Materials"), "reach": _l("Reach"),
    "trainings_by_month": _l("Trainings per month"), "participants_by_month": _l("Participants per month"),
    "participants_by_group": _l("Participants by target group"),
    "participants_by_format": _l("Participants by format"),
    "copies_by_material": _l("Copies handed out by material"), "copies_by_language": _l("Copies by language"),
    "copies_by_kind": _l("Copies by kind"), "loans_by_kit": _l("Kit loans by kit"),
    "days_by_kit": _l("Days on loan by kit"), "requests_by_status": _l("Requests by status"),
    "served_by_kind": _l("Organisations served by kind"), "served_by_city": _l("Organisations served by city"),
    "participants_by_org_kind": _l("Participants by kind of organisation"),
    "top_organisations": _l("Organisations reached most"), "reached_by_kind": _l("Organisations reached by kind"),
    "reached_by_city": _l("Organisations reached by city"),
}

FIRST_COLUMN = {
    "trainings": _l("Figure"), "materials": _l("Figure"), "reach": _l("Figure"),
    "trainings_by_month": _l("Month"), "participants_by_month": _l("Month"),
    "participants_by_group": _l("Target group"), "participants_by_format": _l("Format"),
    "copies_by_material": _l("Material"), "copies_by_language": _l("Language"), "copies_by_kind": _l("Kind"),
    "loans_by_kit": _l("Kit"), "days_by_kit": _l("Kit"), "requests_by_status": _l("Status"),
    "served_by_kind": _l("Kind of organisation"), "served_by_city": _l("City"),
    "participants_by_org_kind": _l("Kind of organisation"), "top_organisations": _l("Organisation"),
    "reached_by_kind": _l("Kind of organisation"),
    "reached_by_city": _l("City"),
}

# The tables people would rather look at than read: drawn as bar charts above their numbers.
CHARTED = {"trainings_by_month", "participants_by_month", "participants_by_group", "copies_by_language",
           "reached_by_kind"}

# The order of the sections on the page and of the sheets in the workbook.
ORDER = ["trainings", "trainings_by_month", "participants_by_month", "participants_by_group",
         "participants_by_format", "participants_by_org_kind", "materials", "copies_by_material",
         "copies_by_language", "copies_by_kind", "loans_by_kit", "days_by_kit", "requests_by_status",
         "served_by_kind", "served_by_city", "reach", "reached_by_kind", "reached_by_city", "top_organisations"]


def _name(key: str, value) -> str:
    """A breakdown's key as people read it, in the page's language."""
    if key.endswith("_by_group"):
        return str(TARGET_GROUP_LABELS[value])
    if key.endswith("_by_format"):
        return str(FORMAT_LABELS[value])
    if key == "copies_by_language":
        return language_name(value)
    if key == "copies_by_kind":
        return str(MATERIAL_KIND_LABELS[value])
    if key == "requests_by_status":
        return str(REQUEST_STATUS_LABELS[value])
    if key.endswith("_by_kind") or key == "participants_by_org_kind":
        return str(ORGANISATION_KIND_LABELS[value]) if value is not None else str(_l("Not known"))
    return str(value)


FIGURES_JSON = Codec(figures_as_json, figures_from_json)


def kept_figures(period: Period, now: datetime) -> tuple[Figures, Figures]:
    """The figures of the period and of the period before, counted once after any change and kept for every
    process and host (the exports, the next person, the other workers ask for the same; ``jobs run`` counts the
    current year ahead), under the moments of ``now`` they depend on (``queries.moments``)."""
    marks = moments(now)
    return tuple(kept_value(("figures", queries.CODE_VERSION, p.start, p.end, *marks), lambda p=p: compute(p, now),
                            shared=FIGURES_JSON)
                 for p in (period, period.previous()))


def tables(period: Period, now: datetime) -> list[Table]:
    """Every table of the period, the period before beside it."""
    current, before = kept_figures(period, now)
    return [_table(key, current, before, period.kind != "range") for key in ORDER]


def _table(key: str, current: Figures, before: Figures, comparable_months: bool) -> Table:
    if key in NUMBERS:
        return Table(key, str(TITLES[key]), str(FIRST_COLUMN[key]),
                     [(str(label), current.numbers[name], before.numbers[name]) for name, label in NUMBERS[key]],
                     points={str(label) for name, label in NUMBERS[key] if name in PERCENTAGES})
    now, then = current.breakdowns[key], before.breakdowns[key]
    if key.endswith("_by_month"):
        # A year, quarter or month: the months of the period before side by side by their place. A range
        # of days: its months have no counterpart (the same length before may span other months).
        earlier = list(then.values()) if comparable_months else []
        rows = [(format_month(datetime.strptime(month, "%Y-%m").date()), count,
                 earlier[index] if index < len(earlier) else None) for index, (month, count) in enumerate(now.items())]
    elif key == "top_organisations":  # this period's ten, and what the same did before
        ten = sorted((name for name, count in now.items() if count), key=lambda name: (-now[name], name))[:10]
        rows = [(name, now[name], then.get(name, 0)) for name in ten]
    else:
        names = list(now) + [name for name in then if name not in now]
        rows = [(_name(key, name), now.get(name, 0), then.get(name, 0)) for name in names]
        if not key.startswith(("participants_by", "requests_by", "served_by_kind", "reached_by_kind")):
            rows.sort(key=lambda row: (-row[1], -row[2], row[0].casefold()))  # the most first
    return Table(key, str(TITLES[key]), str(FIRST_COLUMN[key]), rows)
