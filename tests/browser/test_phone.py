"""On a phone (390×844) and at 320 px: the header menu, date fields in their card, whole words in the
booking calendar, the catalogue's filters folded away. Screenshots go to the docs folder."""

import pytest
from sqlalchemy import select

from core.extensions import db
from demo.content import DEMO_PASSWORD, seed_demo
from tests.browser.conftest import DESKTOP, PHONE, SCREENSHOT_DIR, check, release, sign_in

try:
    from playwright.sync_api import expect
except ImportError:  # the chromium fixture says what to install (and fails under CI)
    expect = None

# Every word of a calendar cell on one line: a word the browser split ("bele/gt") has two boxes.
SPLIT_WORDS = """(cells) => {
  const split = [];
  for (const cell of cells) {
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const match of node.data.matchAll(/\\S+/g)) {
        const range = document.createRange();
        range.setStart(node, match.index);
        range.setEnd(node, match.index + match[0].length);
        const lines = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
        if (lines.size > 1) split.push(match[0]);
      }
    }
  }
  return split;
}"""


def inside(inner: dict, outer: dict) -> bool:
    return (inner["x"] >= outer["x"] and inner["y"] >= outer["y"]
            and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + 0.5
            and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + 0.5)


def no_sideways_scroll(page, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 640 if width < 390 else 844})
    widest = page.evaluate("document.documentElement.scrollWidth")
    assert widest <= width, f"{page.url} is {widest} px wide at {width} px"


@pytest.fixture
def no_script(chromium, live):
    """A phone whose browser runs no JavaScript at all."""
    ctx = chromium.new_context(viewport=PHONE, locale="de-DE", base_url=live.url, java_script_enabled=False)
    ctx.set_default_timeout(10_000)
    yield ctx
    ctx.close()


def test_the_header_folds_into_a_menu_that_works_by_keyboard_and_without_javascript(no_script, live):
    seed_demo()
    release()
    page = no_script.new_page()
    page.goto("/")
    navigation = page.get_by_role("navigation", name="Hauptnavigation")
    # A <details> in the banner: its <summary> is the control a screen reader announces as collapsed.
    toggle = page.get_by_role("banner").get_by_text("Menü", exact=True)
    menu = page.get_by_role("banner").get_by_role("group").filter(has=page.get_by_text("Menü", exact=True))
    expect(navigation).to_be_hidden()
    expect(page.get_by_role("link", name="Materialien", exact=True)).to_have_count(0)
    # Keyboard only: the skip link, the brand, the language switch, then the menu.
    for _ in range(4):
        page.keyboard.press("Tab")
    expect(toggle).to_be_focused()
    page.keyboard.press("Enter")
    expect(navigation).to_be_visible()
    expect(menu).to_have_attribute("open", "")
    page.keyboard.press("Tab")
    expect(navigation.get_by_role("link", name="Startseite")).to_be_focused()
    page.keyboard.press("Tab")
    expect(navigation.get_by_role("link", name="Materialien")).to_be_focused()
    page.keyboard.press("Enter")
    page.wait_for_url("**/materials/")
    expect(page.get_by_role("heading", name="Materialien", level=1)).to_be_visible()
    expect(navigation).to_be_hidden()  # a new page starts with the menu folded
    # On a wide screen there is no menu button: the links are simply there.
    page.set_viewport_size(DESKTOP)
    expect(toggle).to_be_hidden()
    expect(navigation.get_by_role("link", name="Fortbildungen")).to_be_visible()


def test_the_menu_passes_axe_open_and_closed_on_a_phone(context, live):
    seed_demo()
    release()
    page = context.new_page()
    sign_in(page, "admin@fundus.example", DEMO_PASSWORD)
    page.set_viewport_size(PHONE)
    page.goto("/requests/overview")
    check(page, "phone-menu-closed")
    page.get_by_role("banner").get_by_text("Menü", exact=True).click()
    navigation = page.get_by_role("navigation", name="Hauptnavigation")
    expect(navigation.get_by_role("button", name="Abmelden")).to_be_visible()
    check(page, "phone-menu-open")
    no_sideways_scroll(page, 320)


def test_date_fields_stay_in_their_card_and_calendar_words_stay_whole(context, live):
    from materials.models import Material

    seed_demo()
    # Its only unit came back damaged in the demo: every day of the calendar says "belegt".
    kit = db.session.scalar(select(Material).where(Material.title == "Wanderausstellung „Gleich behandeln!“"))
    url = f"/materials/{kit.id}"
    release()
    page = context.new_page()
    sign_in(page, "wohnen@partner.example", DEMO_PASSWORD)
    page.set_viewport_size(PHONE)
    page.goto(url)
    check(page, "phone-material-calendar")
    card = page.get_by_role("region", name="Dieses Material anfragen")
    for label in ("Abholdatum", "Rückgabedatum"):
        assert inside(card.get_by_label(label).bounding_box(), card.bounding_box()), f"{label} sticks out of its card"
    calendar = page.get_by_role("table", name="Freie Exemplare pro Tag")
    cells = calendar.get_by_role("cell")
    expect(cells.filter(has_text="belegt").first).to_be_visible()
    assert cells.evaluate_all(SPLIT_WORDS) == []
    no_sideways_scroll(page, 320)
    page.screenshot(path=SCREENSHOT_DIR / "narrow-material-calendar.png", full_page=True)


def test_the_catalogue_folds_its_filters_away_on_a_phone(context, live):
    seed_demo()
    release()
    page = context.new_page()
    page.set_viewport_size(PHONE)
    page.goto("/materials/")
    search = page.get_by_role("search", name="Katalog durchsuchen")
    expect(search.get_by_label("Suche")).to_be_visible()
    expect(search.get_by_label("Art")).to_be_hidden()
    check(page, "phone-catalogue")
    search.get_by_text("Filter", exact=True).click()
    search.get_by_label("Art").select_option(label="Broschüre")
    search.get_by_role("button", name="Suche").click()
    # The result keeps the filters folded, and says how many are set.
    expect(search.get_by_text("Filter (1 aktiv)", exact=True)).to_be_visible()
    expect(search.get_by_label("Art")).to_be_hidden()
    expect(page.get_by_role("status")).to_contain_text("7 Materialien gefunden")
    no_sideways_scroll(page, 320)
    # A wide screen shows every filter at once, with no button in between.
    page.set_viewport_size(DESKTOP)
    expect(search.get_by_label("Art")).to_be_visible()
    expect(search.get_by_text("Filter (1 aktiv)")).to_be_hidden()
    check(page)



def test_a_partners_requests_read_as_blocks_on_a_phone_not_in_a_sideways_box(context, live):
    """Issue 16.19: "Unsere Bestellungen" and a request's loans sat in boxes that scrolled sideways at
    390 and 320 px, hiding contents and periods. On a phone each row is a block, every value after its
    column's name; nothing scrolls sideways, not even inside its box."""
    from materials.models import Request

    seed_demo()
    hafen = db.session.scalar(select(Request).where(Request.purpose == "Mieterfest im Quartier Hafen"))
    release()
    page = context.new_page()
    sign_in(page, "wohnen@partner.example", DEMO_PASSWORD)
    for url in ("/requests/", f"/requests/{hafen.id}"):
        page.goto(url)
        for width in (390, 320):
            no_sideways_scroll(page, width)
            boxes = page.locator(".table-wrap").evaluate_all("ws => ws.map(w => w.scrollWidth - w.clientWidth)")
            assert boxes and max(boxes) <= 0, f"a table scrolls sideways in its box on {url} at {width} px"
    expect(page.get_by_role("cell", name="Zeitraum:")).to_be_visible()
    check(page, "phone-request-loans")
    page.goto("/requests/")
    expect(page.get_by_role("cell", name="Inhalt: 50 × Ihre Rechte")).to_be_visible()
