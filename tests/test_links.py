"""Links and identifiers in mails and feeds come from configuration, never from the request's Host."""

import re

import icalendar
import pytest
from sqlalchemy import select

from app import create_app
from core.config import DEV_BASE_URL
from core.extensions import db
from core.jobs import run_all
from core.mail import OutboxMessage
from events import links, registrations
from tests.conftest import base_config, mail_text

FORGED = {"Host": "evil.example"}


def links_in_new_mails(since: int) -> list[str]:
    db.session.rollback()
    rows = db.session.scalars(select(OutboxMessage).where(OutboxMessage.id > since)).all()
    assert rows, "the form sent no mail"
    text = "\n".join(mail_text(row) + row.raw.decode("ascii", "replace") for row in rows)
    assert "evil.example" not in text
    return re.findall(r"https?://[^\s\"'<>]+", "\n".join(mail_text(row) for row in rows))


def last_mail_id() -> int:
    return db.session.scalar(select(db.func.max(OutboxMessage.id))) or 0


FORMS = {
    "password reset": lambda ctx: ("/password/forgot", {"email": ctx["user"].email}),
    "application": lambda ctx: ("/apply", {"name": "Nina Neu", "email": "nina@example.org", "organisation_id": "0",
                                           "organisation_name": "Neue Wohnen eG", "consent": "y"}),
    "registration": lambda ctx: (f"/events/{ctx['training'].id}", {"name": "Tom Test", "email": "tom@example.org",
                                                                    "consent": "y"}),
    "my registrations": lambda ctx: ("/my/registrations", {"email": "known@example.org"}),
}


@pytest.mark.parametrize("base_url", ["https://fundus.example.org", ""])
@pytest.mark.parametrize("form", FORMS)
def test_a_forged_host_never_reaches_a_mail(make_app, make_user, make_training, form, base_url):
    """With ``BASE_URL`` set its address is used; unset (development) the development server's."""
    training = make_training()
    registrations.register(training.id, "Known", "known@example.org")
    context = {"user": make_user(), "training": training}
    client = make_app(BASE_URL=base_url, WTF_CSRF_ENABLED=False).test_client()  # cookies do not go to a forged host
    url, data = FORMS[form](context)
    before = last_mail_id()
    db.session.rollback()
    response = client.post(url, data=data, headers=FORGED)
    assert response.status_code in (200, 302), response.get_data(as_text=True)
    found = links_in_new_mails(before)
    assert found and all(link.startswith((base_url or DEV_BASE_URL) + "/") for link in found), found


def test_calendar_uids_and_links_come_from_configuration(make_app, make_training):
    training = make_training()
    client = make_app(BASE_URL="https://fundus.example.org").test_client()
    feed = client.get(f"/events/{training.id}.ics", headers=FORGED)
    (event,) = icalendar.Calendar.from_ical(feed.get_data()).walk("VEVENT")
    assert str(event["uid"]).endswith("@fundus.example.org")
    assert str(event["url"]) == f"https://fundus.example.org/events/{training.id}"
    page = client.get(f"/events/{training.id}", headers=FORGED).get_data(as_text=True)
    assert "evil.example" not in page and f"webcal://fundus.example.org/events/{training.id}.ics" in page
    assert "evil.example" not in client.get("/events/", headers=FORGED).get_data(as_text=True)


def test_mails_queued_by_the_jobs_link_to_the_configured_address(app, make_training):
    from datetime import UTC, datetime, timedelta

    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    training = make_training(sessions=[(start, start + timedelta(hours=2))])
    result = registrations.register(training.id, "Rita", "rita@example.org")
    registrations.confirm_registration(links.confirm_token(result.registration))
    before = last_mail_id()
    app.config["BASE_URL"] = "https://fundus.example.org"
    run_all()  # the reminder two days before
    found = links_in_new_mails(before)
    assert found and all(link.startswith("https://fundus.example.org/") for link in found)


@pytest.mark.parametrize("production", [{"SESSION_COOKIE_SECURE": True}, {"PROXY_COUNT": 1}])
def test_production_does_not_start_without_base_url(app_config, production):
    with pytest.raises(RuntimeError, match="BASE_URL is not set"):
        create_app(app_config | production | {"BASE_URL": ""})
    assert create_app(app_config | production).config["BASE_URL"] == "http://fundus.test"


@pytest.mark.parametrize("value", ["fundus.example.org", "ftp://fundus.example.org", "https://x.org/?a=1"])
def test_a_base_url_that_is_not_an_address_is_refused_at_start(value):
    with pytest.raises(RuntimeError, match="BASE_URL must be"):
        create_app(base_config("sqlite://") | {"BASE_URL": value})


def test_base_url_may_carry_a_path_prefix(make_app):
    other = make_app(BASE_URL="https://example.org/fundus/")
    with other.test_request_context("/", headers=FORGED):
        from core.urls import external_url

        assert external_url("events.detail", training_id=3) == "https://example.org/fundus/events/3"
