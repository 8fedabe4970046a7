"""Real-browser fixtures: the app served on 127.0.0.1 with a fresh database and a real SMTP server,
driven by Debian's Chromium through Playwright.

Without Chromium (or Playwright) these tests are skipped with a message saying what to install;
with ``CI`` set they fail instead, so CI never passes without having run them.
"""

import email
import email.policy
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from werkzeug.serving import WSGIRequestHandler, make_server

from core.extensions import db
from tests.conftest import free_port

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", "--disable-quic"]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
SCREENSHOT_DIR = Path(os.environ.get("SCREENSHOT_DIR", Path(__file__).parents[2] / "instance" / "screenshots"))


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)


def missing_browser() -> str | None:
    try:
        import axe_playwright_python  # noqa: F401
        import playwright.sync_api  # noqa: F401
    except ImportError as error:
        return f"{error.name} is not installed (pip install -r requirements.txt)"
    if not os.path.exists(CHROMIUM):
        return f"Chromium is not at {CHROMIUM} (apt-get install chromium)"
    return None


@pytest.fixture(scope="session")
def chromium():
    reason = missing_browser()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"Browser tests cannot run: {reason}", pytrace=False)
        pytest.skip(f"Browser tests skipped: {reason}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield browser
        browser.close()


@dataclass
class Live:
    url: str
    smtp: object
    foreign: list

    def mails_to(self, address: str) -> list:
        """The messages the SMTP server received for ``address``, parsed."""
        found = []
        for envelope in self.smtp.messages:
            if address in envelope.rcpt_tos:
                found.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return found

    def link_in_last_mail(self, address: str, pattern: str, count: int = 1) -> str:
        """A link of this site from the newest mail to ``address`` (waits until it has ``count`` mails)."""
        deadline = time.monotonic() + 30  # a loaded CI machine can take seconds to deliver after a response
        while len(mails := self.mails_to(address)) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        text = mails[-1].get_body(("plain",)).get_content()
        match = re.search(re.escape(self.url) + pattern, text)
        assert match, text
        return match.group(0)


class ClosingHandler(WSGIRequestHandler):
    """Werkzeug's development server closes a response's file only if reading what is left of the request works;
    when the browser has already dropped the connection (it often does for the favicon), that read fails first and
    the file stays open (a ResourceWarning, an error in this suite). The answer is kept where the handler of a
    dropped connection finds it and closes it."""

    def connection_dropped(self, error, environ=None):
        if environ and "fundus.answer" in environ:
            environ["fundus.answer"].close()
        super().connection_dropped(error, environ)


class Answer:
    """A response's iterable, closed once whoever closes it first."""

    def __init__(self, inner):
        self.inner, self.closed = inner, False

    def __iter__(self):
        return iter(self.inner)

    def close(self):
        if not self.closed:
            self.closed = True
            if hasattr(self.inner, "close"):
                self.inner.close()


def keeping_the_answer(app):
    def wsgi(environ, start_response):
        environ["fundus.answer"] = answer = Answer(app(environ, start_response))
        return answer

    return wsgi


@pytest.fixture
def live(app, smtp_server):
    """The app on a free port, mailing to the test's SMTP server right after each response."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app.config.update(BASE_URL=url, MAIL_SEND_AFTER_REQUEST=True)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request in the test output
    server = make_server("127.0.0.1", port, keeping_the_answer(app), threaded=True, request_handler=ClosingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    db.session.commit()
    db.session.remove()  # the test holds no lock while the browser works
    yield Live(url, smtp_server, [])
    server.shutdown()
    thread.join()


@pytest.fixture
def context(chromium, live):
    """A fresh browser profile in German; every request to another host is recorded (and must not happen)."""
    ctx = chromium.new_context(viewport=DESKTOP, locale="de-DE", base_url=live.url, timezone_id="Europe/Berlin")
    ctx.set_default_timeout(10_000)

    def watch(request):
        if not request.url.startswith((live.url, "data:", "about:")):
            live.foreign.append(request.url)

    ctx.on("request", watch)
    yield ctx
    ctx.close()
    assert live.foreign == [], f"requests to other hosts: {live.foreign}"


@pytest.fixture
def page(context):
    return context.new_page()


def check(page, name: str | None = None) -> None:
    """What every visited page must pass: axe (WCAG 2.1 A/AA and best practice) with no violation,
    no sideways scrolling at the current width; with ``name``, a screenshot for the docs."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page, options={"runOnly": {"type": "tag", "values": AXE_TAGS}})
    violations = [
        f"{v['id']}: {v['help']} – {[n['target'] for n in v['nodes']][:3]}" for v in results.response["violations"]
    ]
    assert violations == [], f"axe on {page.url}: {violations}"
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), f"sideways scroll on {page.url}"
    if name:
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOT_DIR / f"{name}.png", full_page=True)


def release() -> None:
    """End the test's own transaction: on SQLite every transaction takes the write lock, and the
    server thread would wait for it. Call after the test touched the database."""
    db.session.rollback()


def sign_in(page, user_email: str, password: str) -> None:
    page.goto("/login")
    page.get_by_label("E-Mail-Adresse").fill(user_email)
    page.get_by_label("Passwort").fill(password)
    page.get_by_role("button", name="Anmelden").click()
    page.wait_for_url(re.compile(r"^(?!.*/login)"))
