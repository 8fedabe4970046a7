"""German first, English complete: catalogs, the language switch, dates."""

import re
from datetime import UTC, datetime

import pytest
from babel.support import Translations

from accounts.models import Role, User
from core.extensions import db
from core.i18n import format_date, format_datetime
from core.i18n_cli import LOCALES, TRANSLATIONS, catalog_path, extract, is_translated, load

PLACEHOLDER = re.compile(r"%\(\w+\)s")


def test_catalogs_hold_every_string_translated():
    """Run ``flask --app app i18n update`` and translate, or this fails."""
    wanted = {m.id for m in extract() if m.id}
    for locale in LOCALES:
        catalog = load(locale)
        present = {m.id: m for m in catalog if m.id}
        assert wanted - present.keys() == set(), f"{locale}: strings missing from the catalog"
        untranslated = [i for i, m in present.items() if not is_translated(m)]
        assert untranslated == [], f"{locale}: untranslated"
        for msgid, message in present.items():
            ids = msgid if isinstance(msgid, tuple) else (msgid,)
            strings = message.string if isinstance(message.string, tuple) else (message.string,)
            for text in strings:
                assert set(PLACEHOLDER.findall(ids[0])) == set(PLACEHOLDER.findall(text)), msgid


def test_compiled_catalogs_are_up_to_date():
    """Run ``flask --app app i18n compile`` after editing a catalog, or this fails."""
    for locale in LOCALES:
        with open(catalog_path(locale, "mo"), "rb") as fh:
            compiled = Translations(fh)
        for message in load(locale):
            if isinstance(message.id, tuple):
                singular, plural = message.id
                assert compiled.ngettext(singular, plural, 1) == message.string[0], (locale, message.id)
                assert compiled.ngettext(singular, plural, 5) == message.string[1], (locale, message.id)
            elif message.id:
                assert compiled.gettext(message.id) == message.string, (locale, message.id)
    assert (TRANSLATIONS / "messages.pot").exists()


def german_only_strings() -> list[str]:
    """German translations that differ from the English text and would stand out on an English page."""
    return sorted(
        {m.string for m in load("de") if isinstance(m.id, str) and m.id and m.string != m.id
         and len(m.string) > 12 and "%(" not in m.string}
    )


def english_only_strings() -> list[str]:
    return sorted({m.id for m in load("de") if isinstance(m.id, str) and m.id and m.string != m.id
                   and len(m.id) > 12 and "%(" not in m.id})


PUBLIC = ["/", "/login", "/apply", "/password/forgot", "/imprint", "/privacy", "/materials/", "/events/", "/events/archive", "/my/registrations", "/no/such/page"]
SIGNED_IN = ["/", "/account", "/account/password", "/staff/organisations", "/staff/organisations/new",
             "/staff/applications", "/admin/users", "/admin/users/new", "/admin/outbox", "/requests/", "/requests/overview",
             "/materials/new", "/events/staff/", "/events/staff/new", "/events/staff/people"]


def visible_text(html: str) -> str:
    return re.sub(r"<[^>]+>", " ", html)


def check_pages(client, urls, lang, foreign_strings):
    for url in urls:
        page = client.get(url).get_data(as_text=True)
        assert f'<html lang="{lang}">' in page, url
        leftovers = [s for s in foreign_strings if s in visible_text(page)]
        assert leftovers == [], f"other language on {lang} page {url}"


def test_german_by_default_and_english_completely(client, make_user, login):
    german, english = german_only_strings(), english_only_strings()
    check_pages(client, PUBLIC, "de", english)
    client.post("/language", data={"lang": "en", "next": "/"})
    check_pages(client, PUBLIC, "en", german)
    client.post("/language", data={"lang": "de", "next": "/"})
    login(make_user(Role.ADMIN))
    check_pages(client, SIGNED_IN, "de", english)
    client.post("/language", data={"lang": "en", "next": "/"})
    check_pages(client, SIGNED_IN, "en", german)


def test_language_switch_stays_on_the_page_and_is_remembered(client):
    assert "Anmelden" in client.get("/login").get_data(as_text=True)
    response = client.post("/language", data={"lang": "en", "next": "/login?next=/account"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/account"
    cookie = [h for h in response.headers.getlist("Set-Cookie") if h.startswith("lang=en")][0]
    assert "Max-Age=31536000" in cookie
    page = client.get("/login").get_data(as_text=True)
    assert "Sign in" in page and "Anmelden" not in page
    assert 'value="de"' in page and ">Deutsch<" in page  # the way back
    client.post("/language", data={"lang": "de", "next": "/login"})
    assert "Anmelden" in client.get("/login").get_data(as_text=True)


def test_language_switch_ignores_foreign_targets_and_unknown_languages(client):
    response = client.post("/language", data={"lang": "en", "next": "https://evil.example/"})
    assert response.headers["Location"] == "/"
    assert '<html lang="en">' in client.get("/").get_data(as_text=True)
    response = client.post("/language", data={"lang": "fr", "next": "/imprint"})
    assert response.headers["Location"] == "/imprint"
    assert "lang=" not in " ".join(response.headers.getlist("Set-Cookie"))
    assert '<html lang="en">' in client.get("/").get_data(as_text=True)


def test_signed_in_choice_is_kept_with_the_account(app, client, make_user, login):
    user = make_user()
    login(user)
    client.post("/language", data={"lang": "en", "next": "/"})
    assert db.session.get(User, user.id).locale == "en"
    # A new device without the cookie uses the account's language after signing in.
    other = app.test_client()
    login(user, the_client=other)
    assert '<html lang="en">' in other.get("/account").get_data(as_text=True)


@pytest.mark.parametrize(
    "moment, expected",
    [
        (datetime(2026, 11, 25, 13, 30, tzinfo=UTC), "25.11.2026, 14:30"),  # winter: UTC+1
        (datetime(2026, 7, 1, 12, 0, tzinfo=UTC), "01.07.2026, 14:00"),  # summer: UTC+2
        (datetime(2026, 12, 31, 23, 30, tzinfo=UTC), "01.01.2027, 00:30"),
    ],
)
def test_times_are_shown_in_berlin_in_german_format(app, moment, expected):
    assert format_datetime(moment) == expected
    assert format_date(moment) == expected.split(",")[0]


def test_a_session_is_shown_as_one_day_with_two_times_or_in_full(app):
    from types import SimpleNamespace

    from core.i18n import format_session

    day = SimpleNamespace(starts_at=datetime(2027, 6, 10, 7, tzinfo=UTC), ends_at=datetime(2027, 6, 10, 14, tzinfo=UTC))
    assert format_session(day) == "10.06.2027, 09:00–16:00"
    night = SimpleNamespace(starts_at=datetime(2027, 6, 10, 18, tzinfo=UTC), ends_at=datetime(2027, 6, 10, 23, tzinfo=UTC))
    assert format_session(night) == "10.06.2027, 20:00 – 11.06.2027, 01:00"


def test_labels_are_kept_apart_per_enum_and_language(app):
    """Labels are translated once per language and cached; members are strings, so "pending" of
    two enums compare equal and must not share a cache entry."""
    from flask_babel import force_locale

    from accounts.models import ApplicationStatus
    from events.models import RegistrationStatus

    with app.test_request_context("/"):
        assert (ApplicationStatus.PENDING.label, RegistrationStatus.PENDING.label) == (
            "Offen", "Warten auf Bestätigung der E-Mail-Adresse")
        with force_locale("en"):
            assert RegistrationStatus.PENDING.label == "Waiting for e-mail confirmation"
        assert RegistrationStatus.PENDING.label == "Warten auf Bestätigung der E-Mail-Adresse"


def test_the_language_switch_on_the_answer_to_a_form_leads_back_to_the_form(make_app):
    """An error page after a POST (413, say) cannot be opened again by GET: the switch and the back
    link lead to the page the form was on."""
    client = make_app(MAX_CONTENT_LENGTH=2000).test_client()
    page = client.post("/password/forgot", data={"email": "a@example.org", "x": "y" * 5000},
                       headers={"Referer": "http://localhost/password/forgot?x=1"})
    assert page.status_code == 413
    text = page.get_data(as_text=True)
    assert 'name="next" value="/password/forgot?x=1"' in text and "Zurück zur Seite, von der Sie kamen" in text
    foreign = client.post("/password/forgot", data={"x": "y" * 5000}, headers={"Referer": "http://evil.example/a"})
    assert 'name="next" value="/"' in foreign.get_data(as_text=True)


def test_dates_times_and_decimals_follow_the_language(app):
    """One home for formatting (``core.i18n``): German patterns in German, English ones in English."""
    from datetime import date
    from types import SimpleNamespace

    from flask_babel import force_locale

    from core.i18n import format_decimal, format_month, format_session

    moment = datetime(2026, 11, 25, 13, 30, tzinfo=UTC)
    day = SimpleNamespace(starts_at=datetime(2027, 6, 10, 7, tzinfo=UTC), ends_at=datetime(2027, 6, 10, 14, tzinfo=UTC))
    with app.test_request_context("/"):
        with force_locale("de"):
            german = (format_datetime(moment), format_date(moment), format_session(day), format_decimal(7),
                      format_month(date(2026, 11, 1)))
        with force_locale("en"):
            english = (format_datetime(moment), format_date(moment), format_session(day), format_decimal(7),
                       format_month(date(2026, 11, 1)))
    assert german == ("25.11.2026, 14:30", "25.11.2026", "10.06.2027, 09:00–16:00", "7,0", "November 2026")
    # British usage (core.i18n.FORMAT_LOCALES): a 24-hour clock, the day before the month.
    assert english == ("25 Nov 2026, 14:30", "25 Nov 2026", "10 Jun 2027, 09:00–16:00", "7.0", "November 2026")


def test_english_pages_and_mails_show_english_dates_and_numbers(client, make_training, make_user, login):
    """A registration's mail follows the registrant's language; the staff's certificate follows theirs."""
    from sqlalchemy import select

    from core.mail import OutboxMessage
    from events import links, participants, registrations
    from events.models import Registration
    from tests.conftest import mail_text

    start = datetime(2027, 6, 10, 7, tzinfo=UTC)
    training = make_training(sessions=[(start, start.replace(hour=14))])
    for lang, email in (("en", "english@example.org"), ("de", "deutsch@example.org")):
        client.set_cookie("lang", lang)
        page = client.get(f"/events/{training.id}").get_data(as_text=True)
        assert ("10 Jun 2027" in page) == (lang == "en") and ("10.06.2027" in page) == (lang == "de")
        client.post(f"/events/{training.id}", data={"name": "Ana", "email": email, "consent": "y"})
    english = mail_text(db.session.scalar(select(OutboxMessage).where(OutboxMessage.to_addr == "english@example.org")))
    german = mail_text(db.session.scalar(select(OutboxMessage).where(OutboxMessage.to_addr == "deutsch@example.org")))
    assert "10 Jun 2027, 09:00–16:00" in english and "10.06.2027" not in english
    assert "10.06.2027, 09:00–16:00" in german and "10 Jun" not in german

    staff = make_user(Role.STAFF)
    ana = db.session.scalar(select(Registration).where(Registration.email == "deutsch@example.org"))
    registrations.confirm_registration(links.confirm_token(ana))
    participants.set_attendance(training.id, {(ana.id, training.sessions[0].id)}, staff, "Liste vorab")
    participants.issue_certificate(ana.id, staff, "Liste vorab")
    login(staff)
    client.set_cookie("lang", "en")
    certificate = client.get(f"/events/staff/registrations/{ana.id}/certificate").get_data(as_text=True)
    assert "Duration: 7.0 hours" in certificate
    client.set_cookie("lang", "de")
    certificate = client.get(f"/events/staff/registrations/{ana.id}/certificate").get_data(as_text=True)
    assert "Dauer: 7,0 Stunden" in certificate


@pytest.mark.parametrize("header, expected", [
    ("en-US,en;q=0.9,de;q=0.8", "en"),
    ("en-GB", "en"),
    ("fr-FR,fr;q=0.9,en;q=0.5", "en"),  # of our languages, English is preferred
    ("de-DE,de;q=0.9,en;q=0.8", "de"),
    ("de-CH, en;q=0.9", "de"),  # a regional German first is German (Werkzeug's best_match said English)
    ("de-DE, en-GB;q=0.9, en;q=0.8", "de"),
    ("de_AT", "de"),
    ("fr-FR", "de"),
    ("*", "de"),
    (None, "de"),
])
def test_a_first_visit_follows_the_browser_when_it_prefers_english(client, header, expected):
    headers = {"Accept-Language": header} if header else {}
    response = client.get("/", headers=headers)
    assert f'<html lang="{expected}">' in response.get_data(as_text=True)
    assert "Accept-Language" in response.headers.get("Vary", "")  # no cache hands one language to the other


def test_the_chosen_language_and_the_account_win_over_the_browser(app, client, make_user, login):
    english_browser = {"Accept-Language": "en-US,en;q=0.9"}
    client.post("/language", data={"lang": "de", "next": "/"})
    assert '<html lang="de">' in client.get("/", headers=english_browser).get_data(as_text=True)
    user = make_user(locale="de")
    other = app.test_client()
    login(user, the_client=other)
    assert '<html lang="de">' in other.get("/account", headers=english_browser).get_data(as_text=True)
    assert '<html lang="en">' in app.test_client().get("/login", headers=english_browser).get_data(as_text=True)
