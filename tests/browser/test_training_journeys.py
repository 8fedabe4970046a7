"""Trainee and staff journeys through the trainings in a real browser (journeys 3, 4, 5 and 7)."""

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import icalendar

try:
    from playwright.sync_api import expect
except ImportError:  # the chromium fixture says what to install (and fails under CI)
    expect = None

from accounts.models import Role
from tests.browser.conftest import check, release, sign_in
from tests.conftest import PASSWORD


def register(page, name: str, address: str) -> None:
    page.get_by_label("Ihr Name").fill(name)
    page.get_by_label("E-Mail-Adresse").fill(address)
    page.get_by_label("Organisation").fill("Wohnen am See eG")
    page.get_by_role("button", name="Zur Fortbildung anmelden").click()


def test_trainee_finds_registers_confirms_downloads_and_cancels(page, live, make_training):
    """Journey 3."""
    make_training(title="AGG kompakt für Vermietung", target_groups="housing", seats=5, ask_dietary=True)
    page.goto("/events/")
    check(page, "programme")
    page.get_by_label("Zielgruppe").select_option(label="Wohnungswirtschaft")
    page.get_by_role("button", name="Filtern").click()
    page.get_by_role("link", name="AGG kompakt für Vermietung").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("AGG kompakt für Vermietung")
    check(page, "training-detail")
    register(page, "Ayşe Kaya", "ayse@example.org")
    expect(page.get_by_role("status")).to_contain_text("Wir halten einen Platz für Sie frei")
    check(page)

    page.goto(live.link_in_last_mail("ayse@example.org", r"/events/registrations/confirm/[\w-]+"))
    check(page)
    page.get_by_role("button", name="Meine Anmeldung bestätigen").click()
    expect(page.get_by_role("status")).to_contain_text("Ihre E-Mail-Adresse ist bestätigt")
    check(page, "registration-confirmed")
    with page.expect_download() as download:
        page.get_by_role("link", name="In meinen Kalender (.ics)").click()
    calendar = icalendar.Calendar.from_ical(Path(download.value.path()).read_bytes())
    assert [str(e["summary"]) for e in calendar.walk("VEVENT")] == ["AGG kompakt für Vermietung"]

    page.goto(live.link_in_last_mail("ayse@example.org", r"/events/registrations/(?!confirm)[\w-]+", count=2))
    page.get_by_role("button", name="Meine Anmeldung stornieren").click()
    expect(page.get_by_text("Ihre Anmeldung ist storniert.")).to_be_visible()
    expect(page.locator(".facts")).to_contain_text("Storniert")
    check(page)


def test_waiting_list_moves_up_when_someone_cancels(page, live, make_training):
    """Journey 4: fill a training, the next person waits, a cancellation promotes them, the mail arrives."""
    training_id = make_training(title="Kleine Runde", seats=1).id
    release()
    page.goto(f"/events/{training_id}")
    register(page, "Erste Person", "erste@example.org")
    page.goto(f"/events/{training_id}")
    expect(page.locator(".facts")).to_contain_text("Ausgebucht; Anmeldungen kommen auf die Warteliste")
    register(page, "Zweite Person", "zweite@example.org")
    expect(page.get_by_role("status")).to_contain_text("Sie stehen auf der Warteliste")
    check(page)

    page.goto(live.link_in_last_mail("erste@example.org", r"/events/registrations/(?!confirm)[\w-]+"))
    page.get_by_role("button", name="Meine Anmeldung stornieren").click()
    expect(page.get_by_text("Ihre Anmeldung ist storniert.")).to_be_visible()
    assert len(live.smtp.wait_for(4, timeout=30)) == 4  # returns as soon as the fourth arrives
    subjects = [m["Subject"] for m in live.mails_to("zweite@example.org")]
    assert subjects[-1] == "Ein Platz ist für Sie frei geworden", subjects
    page.goto(live.link_in_last_mail("zweite@example.org", r"/events/registrations/(?!confirm)[\w-]+", count=2))
    expect(page.locator(".facts")).to_contain_text("Warten auf Bestätigung der E-Mail-Adresse")


def test_staff_create_two_day_training_publish_mark_attendance_and_open_a_certificate(
        page, live, make_user, make_training):
    """Journey 5."""
    from events import links, registrations

    staff_email = make_user(Role.STAFF, name="Jonas Weber").email
    release()
    sign_in(page, staff_email, PASSWORD)
    page.get_by_role("navigation", name="Hauptnavigation").get_by_role("link", name="Fortbildungen verwalten").click()
    check(page, "staff-trainings")
    page.get_by_role("link", name="Neue Fortbildung").click()
    check(page, "training-form")
    page.get_by_role("textbox", name="Titel", exact=True).fill("Fachtag Faire Vermietung")
    page.get_by_label("Zielgruppen").select_option(label="Wohnungswirtschaft")
    page.get_by_label("Ort", exact=True).fill("Planerladen, Schützenstraße 42")
    page.get_by_role("spinbutton", name="Plätze", exact=True).fill("20")
    first = (datetime.now(UTC) + timedelta(days=20)).date()
    for index, day in enumerate((first, first + timedelta(days=1))):
        row = page.locator(".session-row").nth(index)
        row.get_by_label("Datum", exact=True).fill(day.isoformat())
        row.get_by_label("Beginn", exact=True).fill("09:00")
        row.get_by_label("Ende", exact=True).fill("16:00")
    page.get_by_role("button", name="Speichern").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Fachtag Faire Vermietung")
    expect(page.locator(".facts")).to_contain_text("Entwurf")
    page.get_by_role("button", name="Veröffentlichen").click()
    expect(page.locator(".facts")).to_contain_text("Veröffentlicht")

    from core.extensions import db
    from events.models import Training

    training = db.session.scalar(db.select(Training).where(Training.title == "Fachtag Faire Vermietung"))
    assert len(training.sessions) == 2
    registration = registrations.register(training.id, "Ayşe Kaya", "ayse@example.org", "Wohnen am See eG").registration
    registrations.confirm_registration(links.confirm_token(registration))
    db.session.remove()

    page.reload()
    check(page, "participant-list")
    # The training is still to come: attendance and a certificate now need a reason (issue 16, item 17).
    expect(page.get_by_label(re.compile(r"Ayşe Kaya anwesend am"))).to_have_count(0)
    early = "Früher erfassen oder bescheinigen, mit Begründung"
    reason = "Grund für die Erfassung vor Beginn oder die Bescheinigung vor dem Ende"
    page.get_by_role("link", name=early).click()
    check(page)
    page.get_by_label(reason).fill("Teilnahmeliste vorab ausgefüllt")
    page.get_by_label(re.compile(r"Ayşe Kaya anwesend am")).first.check()
    page.get_by_role("button", name="Anwesenheit speichern").click()
    expect(page.get_by_role("status").or_(page.locator(".alert--success"))).to_contain_text("Anwesenheit gespeichert")
    page.get_by_role("link", name=early).click()
    page.get_by_label(reason).fill("Reist vor dem Ende ab")
    page.get_by_role("button", name="Bescheinigung für Ayşe Kaya").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Teilnahmebescheinigung")
    expect(page.locator("main")).to_contain_text("Ayşe Kaya")
    check(page, "certificate")


def test_staff_cancel_a_training_after_seeing_who_is_told_and_the_reason_reaches_the_mail(
        page, live, make_user, make_training):
    """Issue 16, item 3: the button asks first, says how many addresses get a mail, and the reason typed
    there is in every cancellation mail."""
    from events import links, registrations

    staff_email = make_user(Role.STAFF, name="Jonas Weber").email
    training_id = make_training(title="Fachtag fällt aus", seats=1).id
    first = registrations.register(training_id, "Erste Person", "erste@example.org").registration
    registrations.confirm_registration(links.confirm_token(first))
    registrations.register(training_id, "Zweite Person", "zweite@example.org")  # on the waiting list
    release()
    sign_in(page, staff_email, PASSWORD)
    page.goto(f"/events/staff/{training_id}")
    page.get_by_role("link", name="Fortbildung absagen", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Fortbildung absagen?")
    expect(page.locator("main")).to_contain_text("2 Adressen erhalten eine E-Mail.")
    check(page, "training-cancel-confirm")
    page.get_by_role("link", name="Zurück, nichts ändern").click()  # asking changed nothing
    expect(page.locator(".facts")).to_contain_text("Veröffentlicht")
    page.get_by_role("link", name="Fortbildung absagen", exact=True).click()
    page.get_by_label("Grund (steht in der E-Mail)").fill("Die Referentin ist erkrankt.\nEin neuer Termin folgt.")
    page.get_by_role("button", name="Fortbildung absagen und alle benachrichtigen").click()
    expect(page.get_by_role("status")).to_contain_text("Die Fortbildung ist abgesagt")
    expect(page.locator(".facts")).to_contain_text("Abgesagt")
    for address in ("erste@example.org", "zweite@example.org"):
        deadline = time.monotonic() + 30
        while not (cancelled := [m for m in live.mails_to(address) if m["Subject"] == "Abgesagt: Fachtag fällt aus"]) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(cancelled) == 1, address
        text = cancelled[0].get_body(("plain",)).get_content().replace("\r\n", "\n")
        assert "Unsere Begründung:\nDie Referentin ist erkrankt.\nEin neuer Termin folgt." in text


def focused(page) -> dict:
    """What has the keyboard focus, and whether that focus can be seen."""
    return page.evaluate("""() => {
        const e = document.activeElement;
        const s = getComputedStyle(e);
        const visible = (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0) || s.boxShadow !== 'none';
        const label = e.labels && e.labels.length ? e.labels[0].innerText : '';
        return {tag: e.tagName, text: (e.innerText || e.value || '').trim(), label: label.trim(), visible: visible};
    }""")


def tab_to(page, matches, backwards: bool = False, most: int = 80) -> dict:
    """Press Tab (or Shift+Tab) until ``matches(focus)``; every stop on the way must show its focus."""
    for _ in range(most):
        page.keyboard.press("Shift+Tab" if backwards else "Tab")
        focus = focused(page)
        if focus["tag"] != "BODY":
            assert focus["visible"], f"no visible focus on {focus}"
        if matches(focus):
            return focus
    raise AssertionError("never reached the element with the keyboard")


def test_keyboard_only_registration_download_and_cancel(page, live, make_training):
    """Journey 7: journey 3 with Tab, Shift+Tab, Enter and Space (and typing into fields) alone."""
    make_training(title="Tastatur-Workshop", seats=5)
    release()
    page.goto("/events/")
    tab_to(page, lambda f: f["text"] == "Tastatur-Workshop")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Tastatur-Workshop")
    tab_to(page, lambda f: f["label"].startswith("Ihr Name"))
    page.keyboard.type("Kim Keyboard")
    tab_to(page, lambda f: f["label"].startswith("E-Mail-Adresse"))
    page.keyboard.type("kim@example.org")
    tab_to(page, lambda f: f["label"].startswith("Organisation"))
    # One step back and forth with Shift+Tab, as people correct themselves.
    tab_to(page, lambda f: f["label"].startswith("E-Mail-Adresse"), backwards=True)
    tab_to(page, lambda f: f["text"] == "Zur Fortbildung anmelden")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Wir halten einen Platz für Sie frei")

    page.goto(live.link_in_last_mail("kim@example.org", r"/events/registrations/confirm/[\w-]+"))
    tab_to(page, lambda f: f["text"] == "Meine Anmeldung bestätigen")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Ihre E-Mail-Adresse ist bestätigt")
    tab_to(page, lambda f: f["text"] == "In meinen Kalender (.ics)")
    with page.expect_download() as download:
        page.keyboard.press("Enter")
    assert b"Tastatur-Workshop" in Path(download.value.path()).read_bytes()

    page.goto(live.link_in_last_mail("kim@example.org", r"/events/registrations/(?!confirm)[\w-]+", count=2))
    tab_to(page, lambda f: f["text"] == "Meine Anmeldung stornieren")
    page.keyboard.press("Space")
    expect(page.get_by_text("Ihre Anmeldung ist storniert.")).to_be_visible()
