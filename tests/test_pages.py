"""Site-wide pages: security headers, no inline code or foreign hosts, accessible markup, errors."""

import re
from html.parser import HTMLParser

from accounts.models import Role

PUBLIC = ["/", "/login", "/apply", "/password/forgot", "/imprint", "/privacy", "/materials/", "/events/", "/events/archive", "/my/registrations"]
STAFF = ["/account", "/account/password", "/staff/organisations", "/staff/organisations/new",
         "/staff/applications", "/admin/users", "/admin/users/new", "/admin/outbox", "/requests/", "/requests/overview",
         "/materials/new", "/events/staff/", "/events/staff/new", "/events/staff/people"]


class FormAudit(HTMLParser):
    """Collect what an accessibility check needs from a page."""

    def __init__(self):
        super().__init__()
        self.labels_for, self.controls, self.landmarks = set(), [], set()
        self.inline_scripts, self.style_attrs, self.handlers, self.foreign = 0, 0, [], []
        self.ids = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "label" and "for" in a:
            self.labels_for.add(a["for"])
        if tag in ("input", "select", "textarea") and a.get("type") not in ("hidden", "submit", "button"):
            self.controls.append(a.get("id"))
        if tag in ("main", "header", "footer", "nav"):
            self.landmarks.add(tag)
        if tag == "script" and "src" not in a:
            self.inline_scripts += 1
        if "style" in a:
            self.style_attrs += 1
        self.handlers += [k for k in a if k.startswith("on")]
        for key in ("src", "href", "action"):
            value = a.get(key) or ""
            if re.match(r"(https?:)?//", value) and not (tag == "a" and key == "href"):
                self.foreign.append(value)


def audit(html: str) -> FormAudit:
    parser = FormAudit()
    parser.feed(html)
    return parser


def check_page(client, url: str) -> None:
    """Landmarks, skip link, a label for every control, unique ids, no inline code, nothing from other hosts."""
    response = client.get(url)
    assert response.status_code == 200, url
    html = response.get_data(as_text=True)
    page = audit(html)
    assert {"main", "header", "footer", "nav"} <= page.landmarks, url
    assert 'class="skip-link" href="#main"' in html
    missing = [c for c in page.controls if c not in page.labels_for]
    assert missing == [], f"controls without label on {url}"
    assert len(page.ids) == len(set(page.ids)), f"duplicate ids on {url}"
    # The CSP forbids inline code; none is needed.
    assert (page.inline_scripts, page.style_attrs, page.handlers) == (0, 0, []), url
    assert page.foreign == [], f"assets from other hosts on {url}"


def test_pages_are_accessible_and_self_contained(client, make_user, login):
    for url in PUBLIC + ["LOGIN"] + STAFF:
        if url == "LOGIN":
            login(make_user(Role.ADMIN))
            continue
        check_page(client, url)


def test_security_headers(client):
    response = client.get("/")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "Strict-Transport-Security" not in response.headers  # only when HTTPS is configured
    assert client.get("/nope").headers["Content-Security-Policy"] == csp


def test_static_assets_are_served_locally(client):
    for path in ("/static/css/fundus.css", "/static/img/favicon.svg"):
        with client.get(path) as response:
            assert response.status_code == 200
    with client.get("/static/css/fundus.css") as response:
        css = response.get_data(as_text=True)
    assert "@import" not in css and "http" not in css and ":focus-visible" in css


def test_error_pages_use_the_layout(make_app):
    app = make_app()

    @app.get("/boom")
    def boom():
        raise RuntimeError("kaputt")

    client = app.test_client()
    for url, status, text in [("/nope", 404, "Seite nicht gefunden"), ("/boom", 500, "Etwas ist schiefgelaufen")]:
        response = client.get(url)
        assert response.status_code == status
        html = response.get_data(as_text=True)
        assert text in html and 'class="site-header"' in html and "kaputt" not in html
    response = client.post("/", data={})
    assert response.status_code == 405 and "Nicht erlaubt" in response.get_data(as_text=True)


def test_imprint_and_privacy_come_from_configuration(make_app):
    client = make_app(
        ORG_NAME="Antidiskriminierungsbüro Süd e.V.", ORG_STREET="Hauptstraße 1", ORG_POSTCODE_CITY="79098 Freiburg",
        ORG_EMAIL="info@adb-sued.example", IMPRINT_REPRESENTATIVE="Vorstand: Erika Muster",
        IMPRINT_REGISTER="Vereinsregister Amtsgericht Freiburg, VR 123", PRIVACY_CONTACT="datenschutz@adb-sued.example",
    ).test_client()
    imprint = client.get("/imprint").get_data(as_text=True)
    for text in ("Antidiskriminierungsbüro Süd e.V.", "Hauptstraße 1", "79098 Freiburg",
                 "Vorstand: Erika Muster", "VR 123"):
        assert text in imprint
    assert "Planerladen" not in imprint
    privacy = client.get("/privacy").get_data(as_text=True)
    assert "datenschutz@adb-sued.example" in privacy


def test_default_imprint_is_planerladen(client):
    imprint = client.get("/imprint").get_data(as_text=True)
    assert "Planerladen e.V." in imprint and "Schützenstraße 42" in imprint and "44147 Dortmund" in imprint
