"""Every page of the journeys, on the demo content: axe in German and English at 1280×800 and
390×844, the language switch there and back (journey 6), no sideways scrolling at 320 px,
printable pages printed to PDF, and the screenshots for the docs."""

import re

import pytest
from sqlalchemy import select

from core.extensions import db
from demo.content import DEMO_PASSWORD, seed_demo
from tests.browser.conftest import DESKTOP, PHONE, check, release, sign_in
from tests.test_i18n import english_only_strings, german_only_strings

try:
    from playwright.sync_api import expect
except ImportError:  # the chromium fixture says what to install (and fails under CI)
    expect = None


def demo_pages() -> dict[str, list[tuple[str, str | None]]]:
    """(url, screenshot name) per kind of visitor, from the demo content."""
    from accounts.models import User
    from events import links, participants
    from events.models import Registration, RegistrationStatus, Training, TrainingStatus
    from materials.models import Material, Request, RequestStatus, Unit

    seed_demo()
    kit = db.session.scalar(select(Material).where(Material.title.like("Ausstellung%")).order_by(Material.id))
    returned = db.session.scalar(select(Request).where(Request.status == RequestStatus.HANDED_OVER))
    submitted = db.session.scalar(select(Request).where(Request.status == RequestStatus.SUBMITTED))
    unit = db.session.scalar(select(Unit).order_by(Unit.id))
    full = db.session.scalar(select(Training).where(Training.title == "Testing-Verfahren verstehen"))
    past = db.session.scalar(select(Training).where(Training.title.like("Fachtag Faire Vermietung%")))
    attended = db.session.scalar(select(Registration).where(Registration.training_id == past.id))
    confirmed = db.session.scalar(select(Registration).where(Registration.status == RegistrationStatus.CONFIRMED,
                                                             Registration.training_id == full.id))
    pending = db.session.scalar(select(Registration).where(Registration.status == RegistrationStatus.PENDING)
                                .order_by(Registration.id))
    team = db.session.scalar(select(User).where(User.email == "team@fundus.example"))
    partner_org = db.session.scalar(select(User).where(User.email == "wohnen@partner.example")).organisation_id
    # /materials/10 in the demo: a long German title above the request form.
    handout = db.session.scalar(select(Material).where(Material.title.like("Arbeitshilfe: Diskriminierungsfälle%")))
    participants.issue_certificate(attended.id, team)
    second = db.session.scalar(select(Registration).where(Registration.training_id == past.id, Registration.id != attended.id)
                               .order_by(Registration.id))
    participants.issue_certificate(second.id, team)  # the page of all certificates prints two sheets
    assert full.status == TrainingStatus.PUBLISHED
    pages = {
        "anonymous": [
            ("/", "home"), ("/materials/", None), (f"/materials/{kit.id}", None), ("/events/", None),
            ("/materials/?q=Nichts+dergleichen&kind=poster&language=de&available_from=2027-05-10", None),
            (f"/events/{full.id}", "registration-form"), ("/events/archive", None), ("/my/registrations", None),
            (f"/events/registrations/{links.manage_token(confirmed)}", "manage-registration"),
            (f"/events/registrations/confirm/{links.confirm_token(pending)}", "confirm-registration"),
            ("/login", None), ("/apply", None), ("/imprint", None), ("/privacy", None), ("/api/", None),
        ],
        "partner": [
            ("/requests/", None), (f"/requests/{submitted.id}", None), ("/requests/cart", None), ("/account", None),
            # The request forms: date fields and a long button label inside their card (383 and 324 px wide once).
            (f"/materials/{kit.id}", None), (f"/materials/{handout.id}", None),
        ],
        "staff": [
            ("/requests/overview", "staff-dashboard"), ("/requests/loans/overdue", None),
            ("/requests/stock/low", None), ("/materials/topics", None), ("/figures/", None),
            ("/staff/embed/?target_group=housing", "embed-snippet"),
            (f"/requests/{returned.id}", "request-on-loan"),
            (f"/requests/{returned.id}/slip", "handover-slip"), (f"/materials/units/{unit.id}", None),
            (f"/materials/{kit.id}/manage", None), ("/events/staff/", None), (f"/events/staff/{full.id}", None),
            (f"/events/staff/{past.id}", "participant-list-attendance"),
            (f"/events/staff/{full.id}/edit", None), (f"/events/staff/{full.id}/message", None),
            (f"/events/staff/sessions/{past.sessions[0].id}/sign-in-sheet", "sign-in-sheet"),
            (f"/events/staff/registrations/{attended.id}/certificate", None),
            (f"/events/staff/{full.id}?override=1", None), (f"/events/staff/{full.id}/cancel", None),
            (f"/events/staff/registrations/{confirmed.id}/cancel", None), (f"/requests/{submitted.id}/reject", None),
            (f"/requests/{submitted.id}/cancel", None),
            (f"/events/staff/{past.id}/certificates", "certificates-all"),
        ],
        "admin": [
            ("/admin/audit", "audit-trail"), (f"/admin/users/{team.id}/edit", None), ("/admin/users", None),
            (f"/organisations/{partner_org}", None),  # the contact form's button was 389 px wide
        ],
    }
    release()
    return pages


def switch_language(page, to: str) -> None:
    """Use the header button, as a person would; the page stays the same."""
    url = page.url
    page.get_by_role("button", name="English" if to == "en" else "Deutsch").click()
    expect(page.locator("html")).to_have_attribute("lang", to)
    assert page.url == url


def no_other_language(page, strings: list[str]) -> None:
    """The interface (header, footer, labels, buttons, table heads, field names, hints) is in one language;
    what people wrote (titles, descriptions, names) may be in any."""
    text = "\n".join(page.locator("header, footer, label, button, th, legend, dt, .hint").all_inner_texts())
    assert [s for s in strings if s in text] == [], f"other language left on {page.url}"


@pytest.mark.parametrize("visitor", ["anonymous", "partner", "staff", "admin"])
def test_every_page_in_both_languages_at_both_sizes(context, live, visitor):
    pages = demo_pages()
    page = context.new_page()
    if visitor != "anonymous":
        accounts = {"partner": "wohnen@partner.example", "staff": "team@fundus.example", "admin": "admin@fundus.example"}
        sign_in(page, accounts[visitor], DEMO_PASSWORD)
    german, english = german_only_strings(), english_only_strings()
    for url, name in pages[visitor]:
        page.set_viewport_size(DESKTOP)
        page.goto(url)
        expect(page.locator("html")).to_have_attribute("lang", "de")
        check(page, name)
        page.set_viewport_size(PHONE)
        check(page)
        switch_language(page, "en")
        no_other_language(page, german)
        check(page)
        page.set_viewport_size(DESKTOP)
        check(page)
        switch_language(page, "de")
        no_other_language(page, english)
        # Reflow: at 320 CSS px (1280 px at 400 % zoom, or 640 px at 200 %) nothing scrolls sideways.
        page.set_viewport_size({"width": 320, "height": 640})
        assert page.evaluate("document.documentElement.scrollWidth <= 320"), f"sideways scroll at 320 px on {url}"


def pdf_pages(pdf: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page(?!s)", pdf))


def test_printable_pages_print_on_a_sane_number_of_a4_pages(context, live):
    pages = dict((name, url) for url, name in demo_pages()["staff"] if name)
    page = context.new_page()
    sign_in(page, "team@fundus.example", DEMO_PASSWORD)
    # Every printable page has a button that opens the browser's print dialog (here: counted).
    page.add_init_script("window.print = () => { window.printed = (window.printed || 0) + 1; };")
    for name, most in (("handover-slip", 2), ("sign-in-sheet", 2)):
        page.goto(pages[name])
        page.get_by_role("button", name="Drucken").click()
        assert page.evaluate("window.printed") == 1
        page.emulate_media(media="print")
        expect(page.get_by_role("navigation", name="Hauptnavigation")).to_be_hidden()
        page.set_viewport_size({"width": 794, "height": 1123})  # A4 at 96 dpi
        assert page.evaluate("document.documentElement.scrollWidth <= 794"), f"{name} is wider than A4"
        count = pdf_pages(page.pdf(format="A4"))
        assert 1 <= count <= most, f"{name}: {count} pages"
        page.emulate_media(media="screen")
    page.goto("/events/staff/")
    page.get_by_role("link", name="Vergangene Fortbildungen").click()
    page.get_by_role("link", name=re.compile("Fachtag Faire Vermietung")).click()
    page.get_by_role("button", name="Bescheinigung").first.click()
    check(page, "certificate")
    page.get_by_role("button", name="Drucken").click()
    assert page.evaluate("window.printed") == 1
    page.emulate_media(media="print")
    expect(page.get_by_role("button", name="Drucken")).to_be_hidden()
    assert pdf_pages(page.pdf(format="A4")) == 1
    # All certificates of the training at once: one sheet each.
    page.emulate_media(media="screen")
    page.get_by_role("link", name="Zurück zur Teilnahmeliste").click()
    page.get_by_role("link", name="Alle Bescheinigungen drucken").click()
    expect(page.get_by_role("heading", name="Teilnahmebescheinigung", exact=True)).to_have_count(2)
    page.get_by_role("button", name="Drucken").click()
    assert page.evaluate("window.printed") == 1
    page.emulate_media(media="print")
    assert pdf_pages(page.pdf(format="A4")) == 2
