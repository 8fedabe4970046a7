"""Journeys 1 and 2: a partner requests a kit and brochures; staff approve, hand over and take it back."""

import re
from datetime import timedelta

from babel import dates as babel_dates
from sqlalchemy import select

from accounts.models import Role, User
from core.i18n import local_today
from materials.cart import add_to_cart, submit_request
from materials.lending import approve_request
from materials.models import Delivery, KitContent
from materials.units import add_unit
from tests.browser.conftest import check, release, sign_in
from tests.conftest import PASSWORD

try:
    from playwright.sync_api import expect
except ImportError:  # the chromium fixture says what to install (and fails under CI)
    expect = None


def test_partner_requests_and_staff_lend_and_take_back(context, live, make_org, make_user, make_material):
    from core.extensions import db

    org = make_org(name="Wohnen am See eG")
    partner_email = make_user(Role.PARTNER, organisation=org, name="Petra Partner").email
    staff_email = make_user(Role.STAFF, name="Jonas Weber").email
    kit = make_material(title="Ausstellung Gleich behandeln", returnable=True, units={"de": ["GB-1"]})
    kit.contents = [KitContent(name="Roll-up-Display", quantity=4), KitContent(name="Infotafel", quantity=6)]
    make_material(title="Ihre Rechte bei der Wohnungssuche", editions={"de": 50, "tr": 30})
    db.session.commit()
    start = local_today() + timedelta(days=10)
    end = start + timedelta(days=5)
    # Another partner booked GB-1 for later; a second unit arrives after that.
    later_start = start + timedelta(days=20)
    later = submit_request(make_user(Role.PARTNER, name="Karl Kunde"), add_to_cart(
        {}, kit.editions[0], starts_on=later_start, ends_on=later_start + timedelta(days=2)),
        "later", "Stadtteilfest", "", Delivery.PICKUP, "")
    staff_user = db.session.scalar(select(User).where(User.email == staff_email))
    approve_request(later.id, staff_user)
    add_unit(kit.editions[0].id, "GB-2", staff_user)
    later_id, gb1_id = later.id, kit.editions[0].units[0].id
    release()

    # Journey 1: the partner.
    page = context.new_page()
    sign_in(page, partner_email, PASSWORD)
    page.get_by_role("navigation", name="Hauptnavigation").get_by_role("link", name="Materialien").click()
    page.get_by_role("searchbox", name="Suche").fill("gleich behandeln")
    page.get_by_label("Verfügbar von").fill(start.isoformat())
    page.get_by_label("bis", exact=True).fill(end.isoformat())
    page.get_by_role("button", name="Suche").click()
    expect(page.get_by_role("status")).to_contain_text("1 Material gefunden")
    check(page, "catalogue")
    page.get_by_role("link", name="Ausstellung Gleich behandeln").click()
    check(page, "material-detail")
    # The dates chosen in the catalogue came along: the calendar shows their month, the form has them.
    month = babel_dates.format_skeleton("yMMMM", start, locale="de")
    expect(page.get_by_role("heading", name=f"Verfügbarkeit im {month}")).to_be_visible()
    expect(page.get_by_label("Abholdatum")).to_have_value(start.isoformat())
    expect(page.get_by_label("Rückgabedatum")).to_have_value(end.isoformat())
    page.get_by_role("button", name="In den Warenkorb legen").click()
    page.goto("/materials/?q=wohnungssuche")
    page.get_by_role("link", name="Ihre Rechte bei der Wohnungssuche").click()
    page.get_by_label("Sprache").select_option(label="Türkisch")
    page.get_by_label("Exemplare").fill("20")
    page.get_by_role("button", name="In den Warenkorb legen").click()
    page.get_by_role("navigation", name="Hauptnavigation").get_by_role("link", name="Warenkorb").click()
    check(page, "cart")
    page.get_by_label("Wofür brauchen Sie es?").fill("Aktionswoche im Quartier")
    page.get_by_role("button", name="Bestellung absenden").click()
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_have_text(re.compile(r"Bestellung Nr\. \d+"))
    number = heading.inner_text().split()[-1]
    page.get_by_role("navigation", name="Hauptnavigation").get_by_role("link", name="Unsere Bestellungen").click()
    expect(page.get_by_role("main")).to_contain_text(f"#{number}")
    check(page, "our-requests")

    # Journey 2: staff.
    staff = context.browser.new_context(base_url=live.url, viewport={"width": 1280, "height": 800}, locale="de-DE")
    page = staff.new_page()
    sign_in(page, staff_email, PASSWORD)
    page.get_by_role("navigation", name="Hauptnavigation").get_by_role("link", name="Übersicht").click()
    check(page, "staff-overview")
    page.get_by_role("link", name=f"#{number}").first.click()
    check(page, "request")
    page.get_by_role("button", name="Annehmen").click()
    expect(page.locator(".facts")).to_contain_text("Angenommen")
    page.get_by_role("link", name="Leihschein").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Leihschein")
    page.emulate_media(media="print")
    expect(page.get_by_role("navigation", name="Hauptnavigation")).to_be_hidden()
    page.emulate_media(media="screen")
    page.go_back()
    page.get_by_label("Inhalt geprüft und vollständig").check()
    page.get_by_role("button", name="Ausgeben").click()
    expect(page.get_by_role("main")).to_contain_text("Bestätigen Sie die frühe Ausgabe")  # booked from in 10 days
    page.get_by_label("Vor dem gebuchten Beginn ausgeben").check()
    page.get_by_label("Inhalt geprüft und vollständig").check()
    page.get_by_role("button", name="Ausgeben").click()
    expect(page.locator(".facts")).to_contain_text("Ausgegeben")
    page.get_by_label("Zustand").select_option(label="Beschädigt")
    page.get_by_label("Was ist beschädigt oder fehlt?").fill("Ein Roll-up-Display geknickt")
    page.get_by_role("button", name="Rückgabe buchen").click()
    page.get_by_role("link", name="GB-1").click()
    expect(page.locator(".facts")).to_contain_text("Beschädigt: Ein Roll-up-Display geknickt")
    check(page, "unit")
    expect(page.get_by_role("table").first).to_contain_text("Beschädigt: Ein Roll-up-Display geknickt")
    # DOMAIN rule 9: the overview names the blocked unit and the later booking on it; staff give
    # that booking the second unit instead.
    page.get_by_role("navigation", name="Hauptnavigation").get_by_role("link", name="Übersicht").click()
    blocked = page.get_by_role("table").filter(has_text="Buchungen darauf")
    expect(blocked).to_contain_text("GB-1")
    blocked.get_by_role("link", name=f"#{later_id}").click()
    expect(page.get_by_role("main")).to_contain_text("erst nach der Freigabe ausgegeben")
    page.get_by_label("Anderes Exemplar").select_option(label="GB-2")
    page.get_by_role("button", name="Exemplar wechseln").click()
    expect(page.get_by_role("main")).not_to_contain_text("erst nach der Freigabe ausgegeben")
    expect(page.get_by_role("table").first).to_contain_text("GB-2")
    page.goto(f"/materials/units/{gb1_id}")
    page.get_by_role("button", name="Erledigt: wieder buchbar").click()
    expect(page.get_by_text("Exemplar GB-1 ist wieder buchbar.")).to_be_visible()
    expect(page.locator(".facts")).to_contain_text("Gut")
    staff.close()



def test_a_partner_learns_at_once_when_a_kit_is_taken_and_when_it_is_free(context, live, make_user, make_material):
    """Issue 16.9 and 16.10 in the browser: adding a kit for a period in which it is booked is refused
    at the date field, naming the next free period, with the dates typed kept; the basket then holds
    the free period and is still there after signing out and in."""
    from core.extensions import db

    partner_email = make_user(Role.PARTNER, name="Petra Partner").email
    kit = make_material(title="Koffer Vielfalt", returnable=True, units={"de": ["KV-1"]}, buffer_days=1)
    start = local_today() + timedelta(days=5)
    submit_request(make_user(Role.PARTNER, name="Karl Kunde"), add_to_cart(
        {}, kit.editions[0], starts_on=start, ends_on=start + timedelta(days=3)), "taken", "Fest", "",
        Delivery.PICKUP, "")  # KV-1 is taken from start to start + 4 (the buffer day)
    kit_id = kit.id
    db.session.commit()
    release()
    page = context.new_page()
    sign_in(page, partner_email, PASSWORD)
    page.goto(f"/materials/{kit_id}")
    wanted = start + timedelta(days=1)
    page.get_by_label("Abholdatum").fill(wanted.isoformat())
    page.get_by_label("Rückgabedatum").fill((wanted + timedelta(days=1)).isoformat())
    page.get_by_role("button", name="In den Warenkorb legen").click()
    free = start + timedelta(days=5)
    day = lambda d: d.strftime("%d.%m.%Y")  # noqa: E731
    expect(page.get_by_role("main")).to_contain_text(
        f"Der nächste freie Zeitraum gleicher Länge ist vom {day(free)} bis {day(free + timedelta(days=1))}.")
    expect(page.get_by_label("Abholdatum")).to_have_value(wanted.isoformat())  # what was typed stays
    check(page)
    page.get_by_label("Abholdatum").fill(free.isoformat())
    page.get_by_label("Rückgabedatum").fill((free + timedelta(days=1)).isoformat())
    page.get_by_role("button", name="In den Warenkorb legen").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Warenkorb")
    page.get_by_role("button", name="Abmelden").click()
    sign_in(page, partner_email, PASSWORD)
    page.get_by_role("navigation", name="Hauptnavigation").get_by_role("link", name="Warenkorb").click()
    expect(page.get_by_role("main")).to_contain_text(f"{day(free)} – {day(free + timedelta(days=1))}")
