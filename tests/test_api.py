"""The read-only API (``/api/v1/``): its contract, checked by schemathesis from the OpenAPI document the app
serves, and what the document cannot say: nothing personal, no drafts, the pages' filters, ETags that change
exactly when the answer does, problems as RFC 9457, CORS only for configured origins, the per-client limit."""

import html
import json
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate as validate_spec
from schemathesis.specs.openapi.checks import positive_data_acceptance

from core.extensions import db
from events.models import Training, TrainingFormat, TrainingStatus
from events.registrations import register
from events.seats import FEW_SEATS
from materials.models import Material


def _json(response):
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    return response.get_json()


def test_every_answer_keeps_the_contract(app, make_training, make_material):
    """Status codes, content types, headers and bodies as the document says, and never a 500, for
    parameters schemathesis generates from the document the app serves, valid and not, on every endpoint.
    (Its pytest plugin does not run under pytest 9; the operations are driven here.)"""
    make_training(title="Fair vermieten")
    make_material(editions={"de": 5, "en": 0}, title="Broschüre AGG")
    make_material(returnable=True, units={"de": ["AK-1", "AK-2"]}, title="Ausstellung")
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 5
    for operation in operations:
        # A period whose end is before its start is refused (400), which OpenAPI cannot say of two parameters.
        _check(operation, [positive_data_acceptance] if operation.path == "/api/v1/materials" else [])


def _check(operation, excluded: list) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def keeps_the_contract(case):
        case.call_and_validate(excluded_checks=excluded)

    keeps_the_contract()


def test_the_document_is_valid_openapi_3_1(client):
    document = _json(client.get("/api/v1/openapi.json"))
    validate_spec(document)
    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]) == {"/api/v1/trainings", "/api/v1/trainings/{training_id}", "/api/v1/materials",
                                      "/api/v1/materials/{material_id}", "/api/v1/vocabularies"}


def test_the_documentation_page_shows_what_the_document_says(client):
    document = _json(client.get("/api/v1/openapi.json"))
    page = client.get("/api/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    for path, methods in document["paths"].items():
        assert f"<code>GET {path}</code>" in page
        for parameter in methods["get"].get("parameters", []):
            assert f"<code>{parameter['name']}</code>" in page
    assert "one of: free, few, full, null" in page  # a training's availability, from its schema
    assert "<code>items[].sessions[].starts_at</code>" in page


def test_nothing_personal_and_no_drafts(app, client, make_training):
    shown = make_training(title="Öffentlich")
    draft = make_training(title="Entwurf", status=TrainingStatus.DRAFT)
    register(shown.id, "Erika Mustermann", "erika@example.org", "Wohnbau eG", "Vermietung")
    listed = client.get("/api/v1/trainings").get_data(as_text=True)
    one = client.get(f"/api/v1/trainings/{shown.id}").get_data(as_text=True)
    for text in (listed, one):
        assert "Öffentlich" in text
        for personal in ("Erika", "erika@example.org", "Wohnbau", "Vermietung", "Entwurf"):
            assert personal not in text
    assert client.get(f"/api/v1/trainings/{draft.id}").status_code == 404


def test_a_staff_session_is_not_read_and_no_cookie_is_written(client, login, make_user, make_training):
    """The API answers everyone alike: a signed-in browser sees no draft, gets no cookie (a shared cache
    could hand it on) and the answer may be cached publicly."""
    draft = make_training(title="Entwurf", status=TrainingStatus.DRAFT)
    login(make_user(role="staff"))
    assert client.get(f"/api/v1/trainings/{draft.id}").status_code == 404
    listed = client.get("/api/v1/trainings")
    assert "Entwurf" not in listed.get_data(as_text=True)
    assert "Set-Cookie" not in listed.headers
    assert listed.headers["Cache-Control"] == "public, max-age=60"
    assert client.get("/figures/").status_code == 200  # still signed in on the pages


def test_archived_materials_are_never_visible(app, client, make_material):
    archived = make_material(title="Alte Broschüre", archived_at=datetime.now(UTC))
    kept = make_material(title="Neue Broschüre", editions={"de": 3})
    titles = [m["title"] for m in _json(client.get("/api/v1/materials"))["items"]]
    assert titles == ["Neue Broschüre"]
    assert client.get(f"/api/v1/materials/{archived.id}").status_code == 404
    material = _json(client.get(f"/api/v1/materials/{kept.id}"))
    assert material["editions"] == [{"language": "de", "language_name": "Deutsch", "in_stock": 3, "units": None}]
    assert material["available"] is True


def test_the_programme_filters_and_pages_like_the_page(app, client, make_training):
    start = datetime(2030, 3, 10, 8, tzinfo=UTC)
    online = make_training(title="Online-Seminar", format=TrainingFormat.ONLINE, target_groups="municipal",
                           language="en", sessions=[(start, start + timedelta(hours=2))])
    for i in range(3):
        later = start + timedelta(days=40 + i)
        make_training(title=f"Präsenz {i}", target_groups="housing", sessions=[(later, later + timedelta(hours=3))])

    def titles(query):
        return [t["title"] for t in _json(client.get(f"/api/v1/trainings?{query}"))["items"]]

    assert titles("format=online") == ["Online-Seminar"]
    assert titles("target_group=housing") == ["Präsenz 0", "Präsenz 1", "Präsenz 2"]
    assert titles("month=2030-03") == ["Online-Seminar"]
    assert titles("language=en") == ["Online-Seminar"]
    first = _json(client.get("/api/v1/trainings?per_page=2&target_group=housing", headers={"Host": "evil.example"}))
    assert (first["total"], first["pages"], first["prev"]) == (3, 2, None)
    base = app.config["BASE_URL"]
    assert first["next"] == f"{base}/api/v1/trainings?target_group=housing&per_page=2&page=2"
    second = client.get(first["next"].removeprefix(base)).get_json()
    assert [t["title"] for t in second["items"]] == ["Präsenz 2"] and second["next"] is None
    one = _json(client.get(f"/api/v1/trainings/{online.id}"))
    assert one["sessions"] == [{"starts_at": "2030-03-10T09:00:00+01:00", "ends_at": "2030-03-10T11:00:00+01:00"}]
    assert one["venue"] is None  # online: no place
    assert one["links"]["page"] == f"{base}/events/{online.id}"
    assert one["links"]["calendar"] == f"{base}/events/{online.id}.ics"


def test_labels_in_the_language_asked_for(client, make_training):
    training = make_training(target_groups="housing")
    assert _json(client.get(f"/api/v1/trainings/{training.id}?lang=en"))["target_groups"] == [
        {"id": "housing", "label": "Housing industry"}]
    german = client.get(f"/api/v1/trainings/{training.id}", headers={"Accept-Language": "de-CH, en;q=0.8"})
    assert _json(german)["target_groups"][0]["label"] == "Wohnungswirtschaft"
    assert german.headers["Content-Language"] == "de" and "Accept-Language" in german.headers["Vary"]
    english = client.get("/api/v1/vocabularies", headers={"Accept-Language": "en"})
    assert {"id": "brochure", "label": "Brochure"} in _json(english)["kinds"]


def test_etag_gives_304_until_the_training_or_its_seats_change(app, client, make_training):
    training = make_training(seats=FEW_SEATS + 1)
    other = make_training(title="Andere", seats=FEW_SEATS + 5)
    for url in ("/api/v1/trainings", f"/api/v1/trainings/{training.id}"):
        first = client.get(url)
        assert first.headers["Cache-Control"] == "public, max-age=60"
        etag = first.headers["ETag"]
        assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
    etags = {url: client.get(url).headers["ETag"] for url in ("/api/v1/trainings", f"/api/v1/trainings/{training.id}")}

    register(training.id, "A", "a@example.org")  # a few seats left now
    for url, etag in etags.items():
        changed = client.get(url, headers={"If-None-Match": etag})
        assert changed.status_code == 200, url
        assert "few" in changed.get_data(as_text=True)
        etags[url] = changed.headers["ETag"]
    register(other.id, "B", "b@example.org")  # still "free": the answers stay the same
    for url, etag in etags.items():
        assert client.get(url, headers={"If-None-Match": etag}).status_code == 304, url

    db.session.get(Training, training.id).title = "Neuer Titel"
    db.session.commit()
    for url, etag in etags.items():
        renamed = client.get(url, headers={"If-None-Match": etag})
        assert renamed.status_code == 200 and "Neuer Titel" in renamed.get_data(as_text=True)


def test_a_weak_etag_from_a_compressing_proxy_still_matches(client, make_training):
    make_training()
    etag = client.get("/api/v1/trainings").headers["ETag"]
    assert client.get("/api/v1/trainings", headers={"If-None-Match": f"W/{etag}"}).status_code == 304


def test_no_link_to_a_page_past_the_last_one_allowed(client, make_training, monkeypatch):
    make_training(title="Eins")
    make_training(title="Zwei")
    assert _json(client.get("/api/v1/trainings?per_page=1"))["next"] is not None
    monkeypatch.setattr("api.views.MAX_PAGE", 1)
    assert _json(client.get("/api/v1/trainings?per_page=1&page=1"))["next"] is None  # another address: not kept


def test_a_material_answer_changes_its_etag_with_its_stock(client, make_material):
    material = make_material(editions={"de": 4})
    url = f"/api/v1/materials/{material.id}"
    etag = client.get(url).headers["ETag"]
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
    db.session.get(Material, material.id).editions[0].stock_on_hand = 0
    db.session.commit()
    answer = client.get(url, headers={"If-None-Match": etag})
    assert answer.status_code == 200 and answer.get_json()["available"] is False


@pytest.mark.parametrize("url, status, names", [
    ("/api/v1/trainings?colour=red", 400, {"colour"}),
    ("/api/v1/trainings?page=0&per_page=101", 400, {"page", "per_page"}),
    ("/api/v1/trainings?month=2026-13", 400, {"month"}),
    ("/api/v1/trainings?month=2026-03%0A", 400, {"month"}),  # re.match's $ would let the newline through
    ("/api/v1/trainings?month=20%D9%A2%D9%A6-03", 400, {"month"}),  # Arabic-Indic digits are \\d too
    ("/api/v1/trainings?language=en%0A", 400, {"language"}),
    ("/api/v1/materials?available_from=2026-05-02&available_to=2026-05-01", 400, {"available_to"}),
    ("/api/v1/materials?kind=poem", 400, {"kind"}),
    ("/api/v1/materials?q=a%00b", 400, None),
    ("/api/v1/trainings/99999999", 404, None),
    ("/api/v1/trainings/99999999999999999999", 404, None),
    ("/api/v1/elsewhere", 404, None),
])
def test_bad_requests_are_problems_not_pages(client, url, status, names):
    answer = client.get(url)
    assert answer.status_code == status
    assert answer.mimetype == "application/problem+json"
    problem = answer.get_json()
    assert problem["status"] == status and problem["title"] and problem["type"] == "about:blank"
    if names:
        assert set(problem["errors"]) == names


def test_writing_is_not_allowed(client):
    answer = client.post("/api/v1/trainings", csrf=False)
    assert answer.status_code == 405 and answer.mimetype == "application/problem+json"
    assert "GET" in answer.headers["Allow"]


def test_cors_only_for_configured_origins(app, make_app):
    plain = app.test_client().get("/api/v1/vocabularies", headers={"Origin": "https://www.example.org"})
    assert "Access-Control-Allow-Origin" not in plain.headers  # none by default
    allowed = make_app(API_CORS_ORIGINS="https://www.example.org, https://intranet.example.net").test_client()
    answer = allowed.get("/api/v1/vocabularies", headers={"Origin": "https://intranet.example.net"})
    assert answer.headers["Access-Control-Allow-Origin"] == "https://intranet.example.net"
    assert "ETag" in answer.headers["Access-Control-Expose-Headers"]
    other = allowed.get("/api/v1/vocabularies", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    page = allowed.get("/events/", headers={"Origin": "https://intranet.example.net"})
    assert "Access-Control-Allow-Origin" not in page.headers  # the API only
    preflight = allowed.options("/api/v1/trainings", headers={
        "Origin": "https://www.example.org", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "If-None-Match"})
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://www.example.org"


def test_the_limit_per_client_answers_429_as_a_problem(make_app):
    limited = make_app(RATELIMIT_ENABLED=True, API_RATE_LIMIT="3 per minute").test_client()
    assert [limited.get("/api/v1/vocabularies").status_code for _ in range(3)] == [200, 200, 200]
    refused = limited.get("/api/v1/vocabularies")
    assert refused.status_code == 429 and refused.mimetype == "application/problem+json"
    assert int(refused.headers["Retry-After"]) > 0
    assert limited.get("/events/").status_code == 200  # the pages keep their own limits


def test_no_session_cookie_from_the_api(client):
    answer = client.get("/api/v1/trainings")
    assert "Set-Cookie" not in answer.headers
    assert json.loads(answer.get_data(as_text=True))["items"] == []


# The embedded programme -------------------------------------------------------------------------------

def test_the_embed_may_be_framed_by_the_configured_origins_only(app, make_app, make_training):
    make_training(title="Fair vermieten", target_groups="housing")
    make_training(title="Für Ämter", target_groups="municipal")
    framed = make_app(EMBED_ORIGINS="https://www.planerladen.de,https://intranet.example.net:8443").test_client()
    answer = framed.get("/embed/programme?target_group=housing&lang=en")
    assert answer.status_code == 200
    csp = answer.headers["Content-Security-Policy"]
    assert "frame-ancestors 'self' https://www.planerladen.de https://intranet.example.net:8443;" in csp
    assert "X-Frame-Options" not in answer.headers and "Set-Cookie" not in answer.headers
    page = answer.get_data(as_text=True)
    assert "Fair vermieten" in page and "Für Ämter" not in page and 'target="_blank" rel="noopener"' in page
    assert 'href="http://fundus.test/events/' in page  # to Fundus itself, from BASE_URL
    assert '<html lang="en">' in page
    other = framed.get("/events/")  # every other page still refuses every frame
    assert "frame-ancestors 'none'" in other.headers["Content-Security-Policy"]
    assert other.headers["X-Frame-Options"] == "DENY"
    alone = app.test_client().get("/embed/programme")  # no origins configured: only Fundus itself
    assert "frame-ancestors 'self';" in alone.headers["Content-Security-Policy"]


@pytest.mark.parametrize("origins", ["www.planerladen.de", "https://www.planerladen.de/seite",
                                     "https://a.example 'unsafe-inline'", "javascript:alert(1)"])
def test_origins_that_are_not_origins_stop_the_start(app_config, origins):
    from app import create_app

    for key in ("EMBED_ORIGINS", "API_CORS_ORIGINS"):
        with pytest.raises(RuntimeError, match=key):
            create_app(app_config | {key: origins})


def test_the_snippet_page_gives_the_code_for_the_filters_chosen(app, make_app, login, make_user):
    """What staff copy is valid HTML: the page shows the code as text, so a name with quotes stays inside its
    attribute; the frame's title is in the list's language."""
    staff = make_app(EMBED_ORIGINS="https://www.planerladen.de", ORG_NAME='Verein "Brücke" & Partner').test_client()
    login(make_user(role="staff"), the_client=staff)
    page = staff.get("/staff/embed/?target_group=municipal&lang=en&format=nonsense").get_data(as_text=True)
    shown = html.unescape(re.search(r'<pre class="snippet" id="snippet"><code>(.*?)</code>', page, re.S).group(1))
    parser = Tags()
    parser.feed(shown)
    assert parser.tags == [
        ("iframe", {"src": "http://fundus.test/embed/programme?target_group=municipal&lang=en",
                    "title": 'Trainings of Verein "Brücke" & Partner', "data-fundus-embed": None, "loading": "lazy",
                    "style": "width: 100%; height: 30rem; border: 0"}),
        ("script", {"src": "http://fundus.test/static/js/embed-host.js", "defer": None})]
    assert '<iframe src="/embed/programme?target_group=municipal&amp;lang=en"' in page  # the preview
    assert "https://www.planerladen.de" in page


class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_the_embed_links_keep_its_language_and_a_page_may_be_asked_for_in_one(app, make_app, make_training):
    training = make_training(title="Fair vermieten")
    framed = make_app(EMBED_ORIGINS="https://www.planerladen.de").test_client()
    embed = framed.get("/embed/programme?lang=en").get_data(as_text=True)
    assert f'href="http://fundus.test/events/{training.id}?lang=en"' in embed
    assert 'href="http://fundus.test/events/?lang=en"' in embed
    german_browser = {"Accept-Language": "de-DE"}
    page = framed.get(f"/events/{training.id}?lang=en", headers=german_browser).get_data(as_text=True)
    assert '<html lang="en">' in page
    assert "Set-Cookie" not in framed.get(f"/events/{training.id}?lang=en").headers  # nothing kept
    # The language switch on such a page leads back without ?lang=, which would outrank the choice.
    assert f'name="next" value="/events/{training.id}"' in page


def test_api_details_from_a_first_use(app, make_app, make_training):
    past_start = datetime.now(UTC) - timedelta(days=30)
    past = make_training(title="Vorbei", sessions=[(past_start, past_start + timedelta(hours=2))])
    assert _json(app.test_client().get(f"/api/v1/trainings/{past.id}"))["availability"] is None
    twice = app.test_client().get("/api/v1/trainings?page=1&page=2")
    assert twice.status_code == 400 and twice.get_json()["errors"] == {"page": ["Given more than once."]}
    limited = make_app(RATELIMIT_ENABLED=True, API_RATE_LIMIT="1 per minute",
                       API_CORS_ORIGINS="https://www.planerladen.de").test_client()
    origin = {"Origin": "https://www.planerladen.de"}
    assert "Retry-After" in limited.get("/api/v1/vocabularies", headers=origin).headers["Access-Control-Expose-Headers"]
    refused = limited.get("/api/v1/vocabularies", headers=origin).get_json()
    assert refused["status"] == 429 and "E-Mail" not in refused["detail"] and "e-mail" not in refused["detail"]
