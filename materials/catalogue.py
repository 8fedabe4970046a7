"""The catalogue: search and filters, materials with their topics, editions and kit contents."""

from dataclasses import dataclass, field
from datetime import date

from flask import current_app
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, or_, select
from sqlalchemy.orm import selectinload

from accounts.models import User
from core import audit
from core.bounds import FIRST_DAY, LAST_DAY, parse_date
from core.db import unit_of_work
from core.extensions import db
from core.i18n import format_date
from core.models import LabelledEnum, utcnow
from core.states import lock
from core.vocabulary import TargetGroup
from materials.bookings import unit_is_free
from materials.errors import MaterialsError
from materials.models import Edition, KitContent, Lending, Material, MaterialKind, Topic, Unit, fold, material_topics


@dataclass
class CatalogueQuery:
    """The catalogue's URL parameters, validated; unknown values are dropped, not errors."""

    q: str = ""
    kind: MaterialKind | None = None
    topic: str = ""
    language: str = ""
    target_group: TargetGroup | None = None
    available_from: date | None = None
    available_to: date | None = None
    errors: list = field(default_factory=list)

    @classmethod
    def from_args(cls, args) -> "CatalogueQuery":
        query = cls(q=args.get("q", "").strip()[:200], topic=args.get("topic", "").strip()[:100])
        query.kind = MaterialKind._value2member_map_.get(args.get("kind", ""))
        query.target_group = TargetGroup._value2member_map_.get(args.get("target_group", ""))
        language = args.get("language", "").strip().lower()
        query.language = language if language.isalpha() and len(language) <= 3 else ""
        for name in ("available_from", "available_to"):
            raw = args.get(name, "").strip()[:40]
            if raw:
                day = parse_date(raw)
                if day is None:
                    query.errors.append(_l("“%(value)s” is not a date from %(first)s to %(last)s (YYYY-MM-DD).",
                                           value=raw, first=FIRST_DAY.year, last=LAST_DAY.year))
                setattr(query, name, day)
        if query.available_from and not query.available_to:
            query.available_to = query.available_from
        if query.available_to and not query.available_from:
            query.available_from = query.available_to
        if query.available_from and query.available_to < query.available_from:
            query.errors.append(_l("The end of the period is before its start."))
            query.available_from = query.available_to = None
        return query

    def active_filters(self, topic_names: dict[str, str], language_name) -> list[tuple[str, str]]:
        """``(filter, chosen value)`` for each filter in use, to say what an empty result searched."""
        filters = []
        if self.kind:
            filters.append((_l("Kind"), self.kind.label))
        if self.topic:
            filters.append((_l("Topic"), topic_names.get(self.topic, self.topic)))
        if self.language:
            filters.append((_l("Language"), language_name(self.language)))
        if self.target_group:
            filters.append((_l("Target group"), self.target_group.label))
        if self.available_from:
            filters.append((_l("Available"), f"{format_date(self.available_from)} – {format_date(self.available_to)}"))
        return filters

    def period_args(self) -> dict:
        """The chosen free period (and language) as URL parameters, for the links to the materials found."""
        return {k: v for k, v in self.args().items() if k in ("available_from", "available_to", "language")}

    def args(self, **changes) -> dict:
        """URL parameters for links (pagination), without empty values."""
        values = {
            "q": self.q,
            "kind": self.kind.value if self.kind else "",
            "topic": self.topic,
            "language": self.language,
            "target_group": self.target_group.value if self.target_group else "",
            "available_from": self.available_from.isoformat() if self.available_from else "",
            "available_to": self.available_to.isoformat() if self.available_to else "",
        } | changes
        return {k: v for k, v in values.items() if v}


_FOLDED_LABELS: dict[type[LabelledEnum], dict[LabelledEnum, str]] = {}


def folded_labels(enum_cls: type[LabelledEnum]) -> dict[LabelledEnum, str]:
    """Each member's labels in every language of the site, folded like the search text (once per
    process: the labels are fixed, so a search costs no query and no translation per row)."""
    labels = _FOLDED_LABELS.get(enum_cls)
    if labels is None:
        texts = {member: [] for member in enum_cls}
        for language in current_app.config["LANGUAGES"]:
            with force_locale(language):
                for member in enum_cls:
                    texts[member].append(fold(member.label))
        labels = _FOLDED_LABELS[enum_cls] = {member: " ".join(t) for member, t in texts.items()}
    return labels


def matching_labels(enum_cls: type[LabelledEnum], word: str) -> list[LabelledEnum]:
    """The members whose German or English label contains the folded search word ("brosch" → brochure)."""
    return [member for member, text in folded_labels(enum_cls).items() if word in text]


def word_matches(word: str):
    """Where one folded search word may be found: the material's own text and topic names (the stored
    ``search_text``), its kind and its target groups by their labels in both languages."""
    where = [Material.search_text.contains(word, autoescape=True)]
    kinds = matching_labels(MaterialKind, word)
    if kinds:
        where.append(Material.kind.in_(kinds))
    where += [("," + Material.target_groups + ",").contains(f",{group.value},")
              for group in matching_labels(TargetGroup, word)]
    return or_(*where)


def search_catalogue(query: CatalogueQuery, include_archived: bool = False):
    """The ``select`` for the catalogue page: search words, filters, availability. Every word must
    match (see ``word_matches``), as people type it: case, accents, umlaut spellings and prefixes."""
    stmt = select(Material).options(selectinload(Material.editions), selectinload(Material.topics))
    if not include_archived:
        stmt = stmt.where(Material.archived_at.is_(None))
    for word in fold(query.q).split():
        stmt = stmt.where(word_matches(word))
    if query.kind:
        stmt = stmt.where(Material.kind == query.kind)
    if query.topic:
        stmt = stmt.where(Material.topics.any(Topic.slug == query.topic))
    if query.language:
        stmt = stmt.where(Material.editions.any(Edition.language == query.language))
    if query.target_group:
        stmt = stmt.where(("," + Material.target_groups + ",").contains(f",{query.target_group.value},"))
    if query.available_from:
        # Correlated to each material: its own few units and their bookings (indexed), not every
        # free unit of the catalogue for every material (that grew with the square of the history).
        free_unit = (
            select(Unit.id).join(Unit.edition)
            .where(Edition.material_id == Material.id, unit_is_free(query.available_from, query.available_to))
            .correlate(Material)
            .exists()
        )
        stmt = stmt.where(
            or_(
                (Material.lending == Lending.GIVEAWAY)
                & Material.editions.any(Edition.stock_on_hand > 0),
                (Material.lending == Lending.RETURNABLE) & free_unit,
            )
        )
    return stmt.order_by(Material.title, Material.id)


def topic_slug(name: str, field: str) -> str:
    """A topic's name as it goes into URLs (folded: "Wohnungssuche" → "wohnungssuche"); folding can make a
    name longer (ß → ss), so one whose slug outgrows the column is refused."""
    slug = fold(name).replace(" ", "-")
    if len(slug) > 100:
        raise MaterialsError(_l("“%(name)s” is too long for a topic; give it a shorter name.", name=name[:40] + "…"),
                             field=field)
    return slug


def topic_for(name: str) -> Topic:
    """The topic with this name, created if new."""
    name = " ".join(name.split())[:100]
    slug = topic_slug(name, "topics")
    topic = db.session.scalar(select(Topic).where(Topic.slug == slug))
    if topic is None:
        topic = Topic(name=name, slug=slug)
        db.session.add(topic)
    return topic


def topics_in_use():
    """Every topic with the number of materials it tags, by German name, for the staff's topic page."""
    count = (select(func.count()).select_from(material_topics).where(material_topics.c.topic_id == Topic.id)
             .correlate(Topic).scalar_subquery())
    return db.session.execute(select(Topic, count).order_by(Topic.name)).all()


@unit_of_work
def name_topic(topic_id: int, name: str, name_en: str, actor: User) -> Topic:
    """Staff rename a topic or give its English name; the catalogue finds its materials by both names."""
    topic = lock(Topic, topic_id)
    name, name_en = " ".join(name.split()), " ".join(name_en.split())
    slug = topic_slug(name, "name")
    if not slug:
        raise MaterialsError(_l("Give the topic a name."), field="name")
    if db.session.scalar(select(Topic.id).where(Topic.slug == slug, Topic.id != topic.id)) is not None:
        raise MaterialsError(_l("Another topic is called “%(name)s” already.", name=name), field="name")
    if (topic.name, topic.name_en) == (name, name_en):
        return topic  # nothing changed: no entry, no work
    before = f"{topic.name} / {topic.name_en}"
    topic.name, topic.slug, topic.name_en = name, slug, name_en
    for material in db.session.scalars(select(Material).where(Material.topics.any(Topic.id == topic.id))):
        material.refresh_search_text()
    audit.record(actor, "edit", topic, details=f"{before} → {name} / {name_en}")
    return topic


def build_material(material: Material | None, topics: list[str], languages: list[str],
                   contents: list[tuple[str, int]] | None = None, **fields) -> Material:
    """Create or update a material with its topics and kit contents, in the caller's transaction; add
    editions for new languages (never removes one)."""
    if material is None:
        material = Material(**fields)
        db.session.add(material)
    else:
        for key, value in fields.items():
            setattr(material, key, value)
    material.topics = [topic_for(name) for name in dict.fromkeys(t for t in topics if t.strip())]
    if contents is not None:
        material.contents = [KitContent(name=name, quantity=qty, position=i) for i, (name, qty) in enumerate(contents)]
    present = {e.language for e in material.editions}
    for language in languages:
        if language not in present:
            material.editions.append(Edition(language=language))
    material.refresh_search_text()
    return material


@unit_of_work
def save_material(material_id: int | None, topics: list[str], languages: list[str], actor: User,
                  contents: list[tuple[str, int]] | None = None, **fields) -> Material:
    """Staff add a material to the catalogue or change one."""
    material = lock(Material, material_id) if material_id is not None else None
    material = build_material(material, topics, languages, contents, **fields)
    audit.record(actor, "edit" if material_id is not None else "create", material, details=material.title)
    return material


@unit_of_work
def set_archived(material_id: int, archived: bool, actor: User) -> Material:
    """Archive (hide from the catalogue, keep all history) or restore a material."""
    material = lock(Material, material_id)
    material.archived_at = utcnow() if archived else None
    audit.record(actor, "archive" if archived else "restore", material, details=material.title)
    return material
