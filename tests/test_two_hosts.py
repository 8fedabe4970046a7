"""Two hosts, one Fundus (issue 20): two gunicorn instances with their own instance folders on two ports,
sharing PostgreSQL and Redis, as two app servers behind a proxy would. Each is a real server process
with two workers; the test talks HTTP to them."""

import io
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from PIL import Image
from sqlalchemy import func, select

from accounts.models import Role
from core.extensions import db
from events.models import Registration
from tests.conftest import PASSWORD, TEST_DATABASE_URL, free_port
from tests.test_operations import REDIS_URL, redis_or_skip

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(not TEST_DATABASE_URL, reason="two hosts share a PostgreSQL server (TEST_DATABASE_URL)")


class Host:
    def __init__(self, name: str, tmp_path: Path, environment: dict):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        instance = tmp_path / f"instance-{name}"
        instance.mkdir()
        # Settings only the instance file can give (not environment settings of Fundus).
        (instance / "config.py").write_text(f"RATELIMIT_KEY_PREFIX = {environment['PREFIX']!r}\n")
        self.log = (tmp_path / f"gunicorn-{name}.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{self.port}",
             "app:create_app()"],
            cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
            env={**os.environ, **environment, "FUNDUS_INSTANCE": str(instance)})

    def wait(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, Path(self.log.name).read_text()
            try:
                requests.get(self.url + "/healthz", timeout=10)
                return
            except (requests.ConnectionError, requests.Timeout):
                time.sleep(0.1)
        raise AssertionError(f"{self.url} did not start: {Path(self.log.name).read_text()}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)
        self.log.close()


@pytest.fixture
def hosts(app, tmp_path):
    redis_or_skip()
    environment = {
        "DATABASE_URL": TEST_DATABASE_URL, "SECRET_KEY": "one-key-for-every-host", "BASE_URL": "http://fundus.test",
        "RATELIMIT_STORAGE_URI": REDIS_URL, "PROXY_COUNT": "1", "AUTO_MIGRATE": "0", "MAIL_SERVER": "",
        "LOGIN_RATE_LIMIT": "3 per minute", "REGISTRATION_RATE_LIMIT": "1000 per minute",
        "PREFIX": f"fundus-two-hosts-{secrets.token_hex(4)}",
    }
    pair = [Host("a", tmp_path, environment), Host("b", tmp_path, environment)]
    try:
        for host in pair:
            host.wait()
        yield pair
    finally:
        for host in pair:
            host.stop()


def form_token(session: requests.Session, url: str) -> str:
    page = session.get(url, timeout=10)
    assert page.status_code == 200, page.text
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text).group(1)


def client_address(n: int) -> dict:
    return {"X-Forwarded-For": f"10.0.{n // 250}.{n % 250 + 1}"}


def test_a_registration_storm_over_both_hosts_keeps_the_seat_rule(hosts, make_training):
    training = make_training(seats=5, title="Sturm")
    url = f"/events/{training.id}"
    answers: list = [None] * 24
    barrier = threading.Barrier(len(answers))

    def register(n: int) -> None:
        host = hosts[n % 2]
        with requests.Session() as session:
            session.headers.update(client_address(n))
            token = form_token(session, host.url + url)
            barrier.wait()
            answers[n] = session.post(host.url + url, timeout=30, data={
                "csrf_token": token, "name": f"Person {n}", "email": f"p{n}@example.org"}).status_code

    threads = [threading.Thread(target=register, args=(n,)) for n in range(len(answers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(answers) <= {200, 302}, answers
    db.session.expire_all()
    statuses = dict(db.session.execute(select(Registration.status, func.count()).group_by(Registration.status)).all())
    assert sum(statuses.values()) == 24
    assert statuses.get("pending", 0) + statuses.get("confirmed", 0) == 5 and statuses["waiting"] == 19
    db.session.refresh(training)
    assert training.seats_taken == 5


def test_a_limit_counted_on_one_host_holds_on_the_other(hosts, make_user):
    email = make_user().email
    codes = []
    for host in (hosts[0], hosts[1], hosts[0], hosts[1]):
        with requests.Session() as session:
            session.headers.update(client_address(7))
            token = form_token(session, host.url + "/login")
            codes.append(session.post(host.url + "/login", timeout=10, allow_redirects=False,
                                      data={"csrf_token": token, "email": email, "password": "falsch"}).status_code)
    assert codes == [200, 200, 200, 429]


def test_a_cover_uploaded_through_one_host_is_served_by_the_other_whose_kept_pages_see_it_at_once(
        hosts, make_user, make_material):
    one, other = hosts
    staff = make_user(Role.STAFF)
    material = make_material(title="Wegweiser")
    page = f"{other.url}/materials/{material.id}"
    for _ in range(3):  # the other host keeps the anonymous page (each worker its own copy)
        assert "cover.jpg" not in requests.get(page, timeout=10).text

    picture = io.BytesIO()
    Image.new("RGB", (600, 800), (11, 85, 99)).save(picture, "PNG")
    with requests.Session() as session:
        session.headers.update(client_address(9))
        token = form_token(session, one.url + "/login")
        signed_in = session.post(one.url + "/login", timeout=10, allow_redirects=False,
                                 data={"csrf_token": token, "email": staff.email, "password": PASSWORD})
        assert signed_in.status_code == 302
        token = form_token(session, f"{one.url}/materials/{material.id}/manage")
        sent = session.post(f"{one.url}/materials/{material.id}/files", timeout=30, data={"csrf_token": token},
                            files={"cover": ("titel.png", picture.getvalue(), "image/png")})
        assert sent.status_code == 200 and "Gespeichert." in sent.text

    for _ in range(3):  # every worker of the other host, at once
        answer = requests.get(page, timeout=10).text
        src = re.search(r'src="(/materials/\d+/cover\.jpg\?v=[^"]+)"', answer)
        assert src, answer
    cover = requests.get(other.url + src.group(1).replace("&amp;", "&"), timeout=10)
    assert cover.status_code == 200 and cover.headers["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(cover.content)).size == (600, 800)
    assert cover.content == requests.get(one.url + src.group(1), timeout=10).content
