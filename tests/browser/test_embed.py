"""The programme embedded on another site (issue 18): a page served from a second local origin shows it in an
iframe; it renders, takes the height of its content (postMessage), passes axe, and nothing is requested from
any host but the two; a third origin, not in EMBED_ORIGINS, is refused the frame."""

import re
import threading

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Response

from tests.browser.conftest import DESKTOP, PHONE, check, release
from tests.conftest import PASSWORD, free_port

try:
    from playwright.sync_api import expect
except ImportError:  # the chromium fixture says what to install (and fails under CI)
    expect = None


class HostSite:
    """Another website on its own origin (``http://localhost:<port>``: another host name than Fundus's
    127.0.0.1, so another origin), serving one page with the snippet."""

    def __init__(self, page_html: str):
        self.port = free_port()
        self.origin = f"http://localhost:{self.port}"
        self.server = make_server("127.0.0.1", self.port, lambda environ, start: Response(
            page_html, content_type="text/html; charset=utf-8")(environ, start), threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *_exc):
        self.server.shutdown()
        self.thread.join()


def host_page(fundus: str, lang: str) -> str:
    return f"""<!doctype html><html lang="de"><head><meta charset="utf-8"><title>Website des Vereins</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><main><h1>Unsere Fortbildungen</h1>
<iframe src="{fundus}/embed/programme?lang={lang}&amp;target_group=housing" title="Fortbildungen" data-fundus-embed
        style="width: 100%; height: 150px; border: 0"></iframe>
<script src="{fundus}/static/js/embed-host.js" defer></script></main></body></html>"""


@pytest.fixture
def trainings(app, make_training):
    from datetime import UTC, datetime, timedelta

    start = datetime.now(UTC).replace(microsecond=0, second=0, minute=0) + timedelta(days=20)
    for i in range(6):
        day = start + timedelta(days=7 * i)
        make_training(title=f"Fair vermieten, Teil {i + 1}", target_groups="housing",
                      sessions=[(day, day + timedelta(hours=6))])
    make_training(title="Nur für Ämter", target_groups="municipal")
    release()


def test_the_programme_embedded_on_another_origin(chromium, live, app, trainings):
    with HostSite(host_page(live.url, "de")) as allowed, HostSite(host_page(live.url, "en")) as other:
        app.config["EMBED_ORIGINS"] = allowed.origin
        ctx = chromium.new_context(viewport=DESKTOP, locale="de-DE", timezone_id="Europe/Berlin")
        requested = []
        ctx.on("request", lambda request: requested.append(request.url))
        page = ctx.new_page()
        page.goto(allowed.origin + "/")
        frame = page.frame_locator("iframe[data-fundus-embed]")
        expect(frame.get_by_role("link", name=re.compile(r"^Fair vermieten, Teil 1"))).to_be_visible()
        expect(frame.get_by_text("Nur für Ämter")).to_have_count(0)
        link = frame.get_by_role("link", name=re.compile(r"^Fair vermieten, Teil 1"))
        assert link.get_attribute("target") == "_blank"
        assert link.get_attribute("href").startswith(live.url + "/events/")

        def fits() -> bool:
            """The frame is as tall as its content (within a pixel), more than the 150 px it began with."""
            height = page.evaluate("document.querySelector('iframe').getBoundingClientRect().height")
            content = page.frames[1].evaluate("document.documentElement.getBoundingClientRect().height")
            return height > 150 and abs(height - content) <= 1

        page.wait_for_function("parseFloat(document.querySelector('iframe').style.height) > 150")
        assert fits()
        check(page, "embedded-programme")  # the host page with the frame, for the README
        desktop_height = page.evaluate("document.querySelector('iframe').getBoundingClientRect().height")
        page.set_viewport_size(PHONE)  # narrower: the entries wrap, the content grows, the frame follows
        page.wait_for_function(f"document.querySelector('iframe').getBoundingClientRect().height > {desktop_height}")
        assert fits()
        check(page)  # the host page with the frame
        for origin in {url.split("/", 3)[0] + "//" + url.split("/", 3)[2] for url in requested}:
            assert origin in (allowed.origin, live.url), f"a request to {origin}"

        # A site not in EMBED_ORIGINS: the browser refuses to show Fundus in its frame.
        refused = ctx.new_page()
        refused.goto(other.origin + "/")
        refused.wait_for_load_state("load")  # the page waits for its frame, refused or not
        frame = refused.frames[1]
        assert "Fair vermieten" not in frame.evaluate("document.documentElement.innerText || ''")
        ctx.close()


def test_the_embed_page_itself_in_both_languages_at_both_widths(context, live, app, trainings):
    page = context.new_page()
    for lang, heading, link in (("de", "Fortbildungen von", "Das Programm"), ("en", "Trainings of", "The programme")):
        page.set_viewport_size(DESKTOP)
        page.goto(f"/embed/programme?lang={lang}&target_group=housing")
        expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(f"^{heading}"))
        expect(page.get_by_role("link", name=re.compile(f"^{link}"))).to_be_visible()
        check(page)
        page.set_viewport_size(PHONE)
        check(page)


def test_staff_copy_the_code_and_see_the_preview(context, live, app, trainings, make_user):
    from tests.browser.conftest import sign_in

    email = make_user(role="staff").email
    release()
    page = context.new_page()
    sign_in(page, email, PASSWORD)
    page.goto("/events/staff/")
    page.get_by_role("link", name="Das Programm auf Ihrer Website").click()
    page.get_by_label("Zielgruppe").select_option(label="Wohnungswirtschaft")
    page.get_by_role("button", name="Code anzeigen").click()
    expect(page.locator("pre.snippet")).to_contain_text(f'{live.url}/embed/programme?target_group=housing"')
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live.url)
    page.get_by_role("button", name="Code kopieren").click()
    expect(page.get_by_role("status").filter(has_text="Kopiert.")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == page.locator("pre.snippet").inner_text()
    preview = page.frame_locator("iframe.embed-preview")
    expect(preview.get_by_role("link", name=re.compile(r"^Fair vermieten, Teil 1"))).to_be_visible()
    page.wait_for_function("document.querySelector('iframe.embed-preview').style.height !== ''")
    check(page)
    page.set_viewport_size(PHONE)
    check(page)
