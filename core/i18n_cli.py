"""``flask --app app i18n update|compile``: keep the German and English catalogs in step.

``update`` extracts every marked string into ``translations/messages.pot`` and
merges it into both catalogs; English strings are their own translation, so the
English catalog is filled in automatically. German needs a person: after
``update``, translate the empty ``msgstr`` entries in
``translations/de/LC_MESSAGES/messages.po`` and run ``compile``.
"""

from pathlib import Path

import click
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po
from flask.cli import AppGroup

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "translations"
LOCALES = ("de", "en")
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "_l": None, "lazy_gettext": None,
            "lazy_ngettext": (1, 2)}
METHOD_MAP = [
    ("**/.venv/**", "ignore"),
    ("**.py", "python"),
    ("templates/**.html", "jinja2"),
    ("templates/**.txt", "jinja2"),
]


def extract() -> Catalog:
    """Collect the marked strings of the code and templates."""
    template = Catalog(project="Fundus", fuzzy=False)
    for filename, lineno, message, comments, context in extract_from_dir(
        str(ROOT), METHOD_MAP, keywords=KEYWORDS, strip_comment_tags=True
    ):
        if filename.startswith((".venv", "tests")):
            continue
        template.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return template


def catalog_path(locale: str, ext: str = "po") -> Path:
    return TRANSLATIONS / locale / "LC_MESSAGES" / f"messages.{ext}"


def load(locale: str) -> Catalog:
    path = catalog_path(locale)
    if not path.exists():
        return Catalog(locale=locale, project="Fundus")
    with path.open("rb") as fh:
        return read_po(fh, locale=locale)


def save(catalog: Catalog, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        write_po(fh, catalog, sort_output=True, omit_header=False, no_location=True, width=100)


def is_translated(message) -> bool:
    """True when a message (plural ones have tuples) has every form translated."""
    strings = message.string if isinstance(message.string, (tuple, list)) else (message.string,)
    return all(strings) and not message.fuzzy


def update() -> dict[str, int]:
    """Merge the extracted strings into both catalogs; return untranslated counts."""
    template = extract()
    save(template, TRANSLATIONS / "messages.pot")
    missing = {}
    for locale in LOCALES:
        catalog = load(locale)
        catalog.update(template, no_fuzzy_matching=True)
        catalog.obsolete.clear()
        for message in catalog:
            if not message.id:
                continue
            if locale == "en":
                message.string = message.id
            message.flags.discard("fuzzy")
        save(catalog, catalog_path(locale))
        missing[locale] = sum(1 for m in catalog if m.id and not is_translated(m))
    return missing


def compile_all() -> None:
    for locale in LOCALES:
        with catalog_path(locale, "mo").open("wb") as fh:
            write_mo(fh, load(locale))


i18n_cli = AppGroup("i18n", help="Translation catalogs (German and English).")


@i18n_cli.command("update")
def update_command():
    """Extract strings and merge them into both catalogs."""
    for locale, count in update().items():
        click.echo(f"{locale}: {count} untranslated")


@i18n_cli.command("compile")
def compile_command():
    """Write the .mo files the app reads."""
    compile_all()
    click.echo("compiled " + ", ".join(LOCALES))
