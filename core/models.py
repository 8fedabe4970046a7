"""Declarative base with a constraint naming convention, time helpers and mixins."""

import enum
from datetime import UTC, datetime

from flask_babel import get_locale
from sqlalchemy import DateTime, Enum, MetaData, TypeDecorator
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, registry

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Store aware datetimes as UTC and always hand back aware UTC datetimes.

    SQLite keeps no time zone, PostgreSQL does; this type makes both behave alike.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use aware UTC datetimes")
        return value.astimezone(UTC)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Base class of every model."""

    registry = registry(
        metadata=MetaData(naming_convention=NAMING_CONVENTION),
        type_annotation_map={datetime: UTCDateTime},
    )


class TimestampMixin:
    """Creation and update times, set by callables at insert and update."""

    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


def str_enum(enum_cls: type[enum.Enum], name: str, constraint: bool = True) -> Enum:
    """A portable enum column: VARCHAR plus a CHECK constraint, storing the values. (Without the
    constraint for a column added to a table SQLite cannot copy: a copy would drop its triggers.)"""
    return Enum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=constraint,
        length=32,
        values_callable=lambda cls: [member.value for member in cls],
        validate_strings=True,
    )


_ENUM_LABELS: dict[type, dict] = {}
_LABEL_TEXTS: dict[tuple[str, type, str], str] = {}


class LabelledEnum(enum.StrEnum):
    """A string enum whose members have a translated label, given once with ``set_labels``."""

    @property
    def label(self) -> str:
        """The label in the current language, translated once per language and process (a list of
        200 registrations asked for the same few labels 200 times)."""
        key = (str(get_locale()), type(self), self.value)  # members are str: "pending" of two enums are equal
        text = _LABEL_TEXTS.get(key)
        if text is None:
            text = _LABEL_TEXTS[key] = str(_ENUM_LABELS[type(self)][self])
        return text


def set_labels(enum_cls: type[LabelledEnum], labels: dict) -> dict:
    """Give every member of ``enum_cls`` its (lazy) label; a member without one is an error."""
    missing = set(enum_cls) - labels.keys()
    if missing:
        raise ValueError(f"{enum_cls.__name__} has no label for {sorted(missing)}")
    _ENUM_LABELS[enum_cls] = labels
    return labels
