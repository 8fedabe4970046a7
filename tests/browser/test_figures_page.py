"""The figures page (issue 17) as staff see it: both languages, desktop and phone, axe-clean, the
charts as images with names, and the printed annual report on A4 with the centre's name."""

import re

from demo.content import DEMO_PASSWORD, seed_demo
from tests.browser.conftest import PHONE, SCREENSHOT_DIR, check, release, sign_in
from tests.browser.test_every_page import pdf_pages

try:
    from playwright.sync_api import expect
except ImportError:  # the chromium fixture says what to install (and fails under CI)
    expect = None


def test_figures_in_both_languages_at_both_widths_and_printed(context, live):
    seed_demo()
    release()
    page = context.new_page()
    sign_in(page, "team@fundus.example", DEMO_PASSWORD)
    page.get_by_role("navigation", name="Hauptnavigation").get_by_role("link", name="Zahlen").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"^Zahlen \d{4}$"))
    expect(page.get_by_role("img", name=re.compile("^Teilnehmende nach Zielgruppe"))).to_be_visible()
    expect(page.get_by_role("table", name=re.compile("^Teilnehmende nach Zielgruppe"))).to_be_visible()
    check(page)
    chart = page.get_by_role("region", name="Teilnehmende nach Zielgruppe", exact=True)
    chart.scroll_into_view_if_needed()
    chart.screenshot(path=SCREENSHOT_DIR / "figures.png")  # for the README
    # Another period: a quarter, chosen with the form.
    page.get_by_label("Zeitraum", exact=True).select_option(label="Quartal")
    page.get_by_label("Quartal (bei „Quartal“)").select_option("1")
    page.get_by_role("button", name="Anzeigen").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"^Zahlen Quartal 1/\d{4}$"))
    page.set_viewport_size(PHONE)
    check(page)
    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"^Figures Quarter 1/\d{4}$"))
    check(page)
    page.set_viewport_size({"width": 1280, "height": 900})
    check(page)
    # The printed report: no navigation or form, the centre's name on top, A4 wide, a few pages.
    page.emulate_media(media="print")
    expect(page.get_by_role("navigation", name="Main navigation")).to_be_hidden()
    expect(page.get_by_role("button", name="Show")).to_be_hidden()
    expect(page.get_by_role("link", name="All tables as an Excel workbook")).to_be_hidden()
    expect(page.get_by_text("Planerladen e.V. · Integrationsagentur")).to_be_visible()
    page.set_viewport_size({"width": 794, "height": 1123})
    assert page.evaluate("document.documentElement.scrollWidth <= 794")
    assert 2 <= pdf_pages(page.pdf(format="A4")) <= 12
