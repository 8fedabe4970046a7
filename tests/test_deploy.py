"""The deployment guide and its files (docs/deploy.md, deploy/) hold what they promise.

The systemd units pass ``systemd-analyze verify``; the nginx site passes ``nginx -t`` and, run for real
in front of Fundus's own proxy handling, redirects to HTTPS, serves static files with their caching and
hands on the headers ``PROXY_COUNT=1`` reads. Every setting and every ``flask --app app`` command the guide
and the files name exists; the environment file starts Fundus. ``LOG_FORMAT=json`` writes one JSON object
a line. No test touches a database, so the SQLite and the PostgreSQL runs of the suite run them alike.
Without systemd-analyze, nginx or openssl the tests that need them are skipped, or fail with ``CI`` set.
"""

import configparser
import contextlib
import http.client
import io
import json
import logging
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sysconfig
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest
from flask.cli import FlaskGroup, ScriptInfo
from flask.logging import default_handler as flask_default_handler
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.serving import make_server

from app import create_app
from core.config import DEFAULTS, _cast
from core.logs import JsonFormatter

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
GUIDE = ROOT / "docs" / "deploy.md"
UNITS = ("fundus.service", "fundus-jobs.service", "fundus-jobs.timer")
SITE = DEPLOY / "nginx.conf"
ENV_EXAMPLE = DEPLOY / "fundus.env.example"

# Where the guide installs things; the tests move them into a temporary tree.
INSTALL = "/srv/fundus"
VENV_BIN = f"{INSTALL}/.venv/bin"
CERTIFICATE = "/etc/letsencrypt/live/fundus.example.org/fullchain.pem"
CERTIFICATE_KEY = "/etc/letsencrypt/live/fundus.example.org/privkey.pem"
SITE_NAME = "fundus.example.org"

# Commands the guide names that are being built, as words ("files import"): while one is not registered
# it does not fail the test. Remove each from here when it lands. (backup, restore, files import: landed.)
PENDING_COMMANDS: set[str] = set()

# Upper-case names in the guide that are not settings in core.config.DEFAULTS, each with its reason.
NOT_SETTINGS = {
    "FUNDUS_INSTANCE": "the instance folder, read from the environment by app.instance_path()",
    "MAX_CONTENT_LENGTH": "derived by core.config.load_config, matched by nginx's client_max_body_size",
    "ORIG_HEAD": "git's name for the commit before a pull",
}


def require(tool: str, package: str) -> str:
    """The tool's path, or skip (fail with ``CI`` set) saying how to install it."""
    path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")  # nginx: not on a user's PATH
    if path is None:
        reason = f"{tool} is not installed (apt-get install {package})"
        if os.environ.get("CI"):
            pytest.fail(f"deployment checks cannot run: {reason}", pytrace=False)
        pytest.skip(f"deployment check skipped: {reason}")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_unit(name: str) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(interpolation=None, strict=True)
    unit.optionxform = str  # systemd's keys are case-sensitive
    unit.read_string((DEPLOY / name).read_text(encoding="utf-8"))
    return unit


def gunicorn_bind() -> str:
    args = shlex.split(read_unit("fundus.service")["Service"]["ExecStart"])
    return args[args.index("--bind") + 1]


def read_env_example() -> dict[str, str]:
    """The environment file as systemd and a shell (``set -a; . FILE``) both read it."""
    values: dict[str, str] = {}
    for number, line in enumerate(ENV_EXAMPLE.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, equals, raw = line.partition("=")
        assert equals and re.fullmatch(r"[A-Z][A-Z0-9_]*", key), f"line {number} is not NAME=value: {line!r}"
        assert key not in values, f"{key} is set twice"
        words = shlex.split(raw)
        assert len(words) <= 1, f"line {number}: a value with spaces needs single quotes, or a shell splits it"
        values[key] = words[0] if words else ""
    return values


def plain_app(tmp_path, **overrides):
    """An app for reading its configuration and commands; its database is never opened."""
    config = {"TESTING": True, "SECRET_KEY": "deploy-test", "BASE_URL": "https://fundus.example.org",
              "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'unused.sqlite'}", "AUTO_MIGRATE": False}
    return create_app(config | overrides)


@pytest.fixture
def production_app(tmp_path, monkeypatch):
    """Fundus as systemd starts it: the example environment file and nothing else, no test config."""
    for key in DEFAULTS:
        monkeypatch.delenv(key, raising=False)
    for key, value in read_env_example().items():
        monkeypatch.setenv(key, value)
    instance = tmp_path / "instance"
    monkeypatch.setenv("FUNDUS_INSTANCE", str(instance))
    app = create_app()
    assert app.instance_path == str(instance)
    return app


# --- systemd ---------------------------------------------------------------------------------------


def test_the_units_pass_systemd_analyze_verify(tmp_path):
    """``systemd-analyze verify`` checks the syntax and also that each ExecStart binary exists. The units
    name the guide's install tree (/srv/fundus/.venv), which a test machine lacks, so they are checked in a
    copy whose paths point to the virtual environment running this test: one made from requirements.txt,
    as the guide's is, so gunicorn and flask must be in it."""
    analyze = require("systemd-analyze", "systemd")
    scripts = sysconfig.get_path("scripts")
    for name in UNITS:
        text = (DEPLOY / name).read_text(encoding="utf-8")
        for line in text.splitlines():
            if line.startswith("ExecStart="):
                assert line.startswith(f"ExecStart={VENV_BIN}/"), f"{name}: runs outside the guide's venv: {line}"
        text = text.replace(VENV_BIN, scripts).replace(INSTALL, str(ROOT))
        (tmp_path / name).write_text(text, encoding="utf-8")
    result = subprocess.run([analyze, "verify", *(str(tmp_path / name) for name in UNITS)],
                            capture_output=True, text=True, timeout=60)
    # Unknown keys and values systemd ignores are only warnings (exit status 0): fail on them too.
    complaints = [line for line in result.stderr.splitlines() if any(name in line for name in UNITS)]
    assert result.returncode == 0 and complaints == [], result.stderr


def test_the_units_run_what_the_guide_says():
    web, jobs, timer = (read_unit(name) for name in UNITS)
    gunicorn = shlex.split(web["Service"]["ExecStart"])
    assert gunicorn[0] == f"{VENV_BIN}/gunicorn" and gunicorn[-1] == "app:create_app()"
    assert gunicorn_bind() == "127.0.0.1:8000"
    assert int(gunicorn[gunicorn.index("--workers") + 1]) >= 2
    assert shlex.split(jobs["Service"]["ExecStart"]) == [f"{VENV_BIN}/flask", "--app", "app", "jobs", "run"]
    assert jobs["Service"]["Type"] == "oneshot"
    for unit in (web, jobs):
        assert unit["Service"]["User"] == "fundus"
        assert unit["Service"]["WorkingDirectory"] == INSTALL
        assert unit["Service"]["EnvironmentFile"] == "/etc/fundus/fundus.env"
    assert timer["Timer"]["Unit"] == "fundus-jobs.service"  # systemd-analyze does not check the name
    assert timer["Timer"]["OnCalendar"] == "*:0/5"  # every five minutes
    assert timer["Install"]["WantedBy"] == "timers.target"
    guide = GUIDE.read_text(encoding="utf-8")
    assert f"gunicorn {' '.join(gunicorn[1:])}" in guide  # the guide quotes the command line it installs


# --- nginx -----------------------------------------------------------------------------------------


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    openssl = require("openssl", "openssl")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    f"/CN={SITE_NAME}", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def nginx_setup(folder: Path, live: dict | None = None) -> Path:
    """A main nginx.conf in ``folder`` that includes the site, with the site's paths moved into ``folder``
    (certificate, logs, the certbot webroot) and its static root at this checkout. ``live`` gives ports to
    listen on and an upstream to proxy to, for a server that really runs."""
    site = SITE.read_text(encoding="utf-8")
    cert, key = self_signed_certificate(folder)
    moves = {CERTIFICATE: str(cert), CERTIFICATE_KEY: str(key), "/var/log/nginx/": f"{folder}/",
             f"root {INSTALL};": f"root {ROOT};", "/var/www/html": str(folder)}
    for old, new in moves.items():
        assert old in site, f"the site no longer names {old}; update this test"
        site = site.replace(old, new)
    if live:
        site = re.sub(r"^\s*listen \[::\].*\n", "", site, flags=re.M)  # the test machine may lack IPv6
        site = re.sub(r"listen 80;", f"listen 127.0.0.1:{live['http']};", site)
        site = re.sub(r"listen 443 ", f"listen 127.0.0.1:{live['https']} ", site)
        site = site.replace(f"server {gunicorn_bind()};", f"server 127.0.0.1:{live['upstream']};")
    (folder / "site.conf").write_text(site, encoding="utf-8")
    mime = "include /etc/nginx/mime.types;" if Path("/etc/nginx/mime.types").exists() else ""
    temp = "\n".join(f"    {kind}_temp_path {folder / kind};" for kind in ("client_body", "proxy", "fastcgi",
                                                                             "uwsgi", "scgi"))
    main = folder / "nginx.conf"
    main.write_text(f"""
pid {folder / 'nginx.pid'};
error_log {folder / 'error.log'};
{"daemon off;" if live else ""}
events {{ worker_connections 64; }}
http {{
    {mime}
    access_log {folder / 'access.log'};
{temp}
    include {folder / 'site.conf'};
}}
""", encoding="utf-8")
    return main


def test_nginx_accepts_the_site(tmp_path):
    """``nginx -t`` on the site as Debian includes it (inside ``http``), with a certificate made here."""
    nginx = require("nginx", "nginx")
    main = nginx_setup(tmp_path)
    result = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(main), "-e", str(tmp_path / "error.log")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    # Warnings fail too, but one: nginx 1.25.1 and later prefer `http2 on;`, which Debian 12's 1.22 lacks.
    warnings = [line for line in result.stderr.splitlines() if "[warn]" in line and "http2" not in line]
    assert warnings == [], result.stderr


def test_the_site_agrees_with_fundus_and_the_unit(tmp_path):
    """The upload limit is Fundus's, the upstream is where the unit binds gunicorn, and the proxy headers
    are the three ProxyFix reads with ``PROXY_COUNT``."""
    site = SITE.read_text(encoding="utf-8")
    size = re.search(r"client_max_body_size (\d+)([kKmM]?);", site)
    factor = {"": 1, "k": 1024, "m": 1024 * 1024}[size.group(2).lower()]
    assert int(size.group(1)) * factor == plain_app(tmp_path).config["MAX_CONTENT_LENGTH"]
    assert re.search(r"upstream fundus \{\s*server " + re.escape(gunicorn_bind()) + ";", site)
    assert "proxy_pass http://fundus;" in site
    headers = dict(re.findall(r"proxy_set_header (\S+) (\S+);", site))
    assert headers == {"Host": "$host", "X-Forwarded-For": "$proxy_add_x_forwarded_for",
                       "X-Forwarded-Proto": "$scheme", "X-Forwarded-Host": "$host"}
    assert re.search(r"listen 80;.*?return 301 https://\$host\$request_uri;", site, re.S)


def echo(environ, start_response):
    """What the application sees of a request after ProxyFix: client, scheme, host."""
    body = json.dumps({"remote_addr": environ["REMOTE_ADDR"], "scheme": environ["wsgi.url_scheme"],
                       "host": environ["HTTP_HOST"], "path": environ["PATH_INFO"]}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


@contextlib.contextmanager
def serving(wsgi, port: int):
    server = make_server("127.0.0.1", port, wsgi, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


@contextlib.contextmanager
def running_nginx(nginx: str, main: Path, folder: Path, port: int):
    process = subprocess.Popen([nginx, "-p", str(folder), "-c", str(main), "-e", str(folder / "error.log")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                pytest.fail(f"nginx did not start: {process.stderr.read().decode()}"
                            f"{(folder / 'error.log').read_text() if (folder / 'error.log').exists() else ''}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if time.monotonic() > deadline:
                pytest.fail("nginx did not listen within 15 s")
            time.sleep(0.05)
        yield
    finally:
        process.send_signal(signal.SIGQUIT)  # nginx's graceful stop
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stderr.close()


def ask(port: int, method: str, path: str, headers: dict | None = None, tls: bool = True):
    """One request to nginx for the site's name; the status, headers and body."""
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the certificate is self-signed for the test
        connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
    else:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, headers={"Host": SITE_NAME, **(headers or {})})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def test_nginx_in_front_of_fundus(tmp_path, production_app):
    """nginx runs with the site (ports moved) in front of the WSGI middleware that Fundus builds from the
    example environment file (``PROXY_COUNT=1``), around an app that reports what it sees."""
    nginx = require("nginx", "nginx")
    proxy_fix = production_app.wsgi_app
    assert isinstance(proxy_fix, ProxyFix)
    proxy_fix.app = echo  # Fundus's own ProxyFix, with a view that needs no database behind it
    ports = {"http": free_port(), "https": free_port(), "upstream": free_port()}
    main = nginx_setup(tmp_path, live=ports)
    with serving(proxy_fix, ports["upstream"]), running_nginx(nginx, main, tmp_path, ports["https"]):
        status, headers, _ = ask(ports["http"], "GET", "/trainings?page=2", tls=False)
        assert (status, headers["Location"]) == (301, f"https://{SITE_NAME}/trainings?page=2")

        # A client that claims another address gets its own: nginx appends it, ProxyFix takes the last.
        status, _, body = ask(ports["https"], "GET", "/materials", {"X-Forwarded-For": "203.0.113.9"})
        assert status == 200
        assert json.loads(body) == {"remote_addr": "127.0.0.1", "scheme": "https", "host": SITE_NAME,
                                    "path": "/materials"}

        status, headers, body = ask(ports["https"], "GET", "/static/css/fundus.css")
        assert status == 200 and body == (ROOT / "static/css/fundus.css").read_bytes()
        assert headers["Cache-Control"] == "max-age=3600"  # unversioned names: not longer
        assert headers["X-Content-Type-Options"] == "nosniff"
        status, headers, _ = ask(ports["https"], "GET", "/static/img/favicon.svg")
        assert status == 200 and headers["Cache-Control"] == "max-age=604800"

        limit = production_app.config["MAX_CONTENT_LENGTH"]
        assert ask(ports["https"], "POST", "/materials/new", {"Content-Length": str(limit + 1)})[0] == 413


# --- settings and commands -------------------------------------------------------------------------


def test_the_environment_file_names_settings_only():
    values = read_env_example()
    unknown = set(values) - set(DEFAULTS) - {"FUNDUS_INSTANCE"}
    assert unknown == set()
    for key, value in values.items():
        if key in DEFAULTS:
            _cast(DEFAULTS[key], value)  # an integer setting gets a number
    for key in ("BASE_URL", "SECRET_KEY", "SESSION_COOKIE_SECURE", "PROXY_COUNT", "DATABASE_URL",
                "RATELIMIT_STORAGE_URI", "MAIL_SERVER", "FUNDUS_INSTANCE"):
        assert values.get(key), f"the example leaves {key} out"


def test_the_environment_file_starts_fundus_behind_one_proxy(production_app):
    config = production_app.config
    assert config["PROXY_COUNT"] == 1 and config["SESSION_COOKIE_SECURE"] is True
    assert config["BASE_URL"].startswith("https://")
    assert config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql+psycopg://")
    assert config["RATELIMIT_STORAGE_URI"] == "redis://127.0.0.1:6379"
    proxy_fix = production_app.wsgi_app
    assert (proxy_fix.x_for, proxy_fix.x_proto, proxy_fix.x_host) == (1, 1, 1)


def named_settings(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+(?![\w-])", text))


def test_every_setting_the_guide_names_exists(tmp_path):
    sources = [GUIDE, *sorted(DEPLOY.iterdir())]
    named = set().union(*(named_settings(path.read_text(encoding="utf-8")) for path in sources))
    assert {"BASE_URL", "SECRET_KEY", "PROXY_COUNT", "HEALTH_JOBS_MINUTES", "LOG_FORMAT"} <= named
    assert named - set(DEFAULTS) - set(NOT_SETTINGS) == set()
    assert "MAX_CONTENT_LENGTH" in plain_app(tmp_path).config
    assert "FUNDUS_INSTANCE" in (ROOT / "app.py").read_text(encoding="utf-8")


def named_commands() -> dict[str, list[str]]:
    """Each ``flask --app app …`` command line of the guide and the units, as words, up to a shell
    operator or the end of the code span."""
    found = {}
    for path in (GUIDE, *(DEPLOY / name for name in UNITS)):
        for match in re.finditer(r"flask --app app ([^`\n]*)", path.read_text(encoding="utf-8")):
            line = re.split(r"\s(?:&&|\|\||[|;>])", match.group(1))[0].strip()
            if line and line != "…":
                found[line] = shlex.split(line.replace("$(", "").replace(")", ""))
    return found


def resolve(app, words: list[str]) -> tuple[click.Command | None, list[str]]:
    """The command ``flask --app app WORDS`` runs, as the flask script finds it (its own commands, plugins,
    the app's), and the words that led there."""
    group = FlaskGroup(create_app=lambda: app)
    with click.Context(group, obj=ScriptInfo(create_app=lambda: app)) as ctx:
        command, path = group, []
        for word in words:
            if not isinstance(command, click.Group):
                break
            command = command.get_command(ctx, word)
            path.append(word)
            if command is None:
                break
    return command, path


def test_every_command_the_guide_names_exists(tmp_path):
    app = plain_app(tmp_path)
    commands = named_commands()
    assert len(commands) >= 10 and "jobs run" in commands and "db upgrade" in commands
    missing, pending = [], []
    for line, words in commands.items():
        command, path = resolve(app, words)
        if command is None or isinstance(command, click.Group):
            building = any(words[:len(p.split())] == p.split() for p in PENDING_COMMANDS)
            (pending if building else missing).append(line)
            continue
        options = {opt for param in command.params for opt in param.opts + param.secondary_opts}
        unknown = [word for word in words[len(path):] if word.startswith("-") and word.split("=")[0] not in options]
        if unknown:
            missing.append(f"{line} (no option {', '.join(unknown)})")
    assert missing == [], f"the guide names commands Fundus does not have: {missing}"


# --- JSON log lines --------------------------------------------------------------------------------


def one_json_line(text: str) -> dict:
    assert "\n" not in text
    return json.loads(text)


def test_a_log_line_is_one_json_object_with_time_level_logger_and_message():
    record = logging.LogRecord("fundus.mail", logging.WARNING, __file__, 1, "Mail %s an\n%s", (7, "Jürgen"), None)
    entry = one_json_line(JsonFormatter().format(record))
    assert set(entry) == {"time", "level", "logger", "message"}
    assert (entry["level"], entry["logger"], entry["message"]) == ("WARNING", "fundus.mail", "Mail 7 an\nJürgen")
    when = datetime.fromisoformat(entry["time"])
    assert when.utcoffset() == timedelta(0) and abs(datetime.now(UTC) - when) < timedelta(minutes=1)


def test_an_error_brings_its_exception_on_the_same_line():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("fundus.test_deploy")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            logger.exception("Job %r failed", "reminders")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert set(entry) == {"time", "level", "logger", "message", "exception"}
    assert entry["level"] == "ERROR" and entry["message"] == "Job 'reminders' failed"
    assert entry["exception"].startswith("Traceback") and "ZeroDivisionError: division by zero" in entry["exception"]


@pytest.fixture
def keep_log_formats():
    """Logging is the process's: give the handlers their formatters back after the test (a handler that the
    test's create_app added gets the one it was made with: Flask's own, or none)."""
    before = {h: h.formatter for name in ("app", "fundus") for h in logging.getLogger(name).handlers}
    before.setdefault(flask_default_handler, flask_default_handler.formatter)
    yield
    for handler in [h for name in ("app", "fundus") for h in logging.getLogger(name).handlers]:
        handler.setFormatter(before.get(handler))


def test_log_format_json_formats_the_application_logs(tmp_path, keep_log_formats):
    app = plain_app(tmp_path, LOG_FORMAT="json")
    handlers = [*app.logger.handlers, *logging.getLogger("fundus").handlers]
    assert handlers and all(isinstance(h.formatter, JsonFormatter) for h in handlers)
    record = app.logger.makeRecord(app.logger.name, logging.INFO, __file__, 1, "started", (), None)
    assert one_json_line(handlers[0].format(record))["message"] == "started"


def test_the_guide_is_found_from_the_readme():
    assert "docs/deploy.md" in (ROOT / "README.md").read_text(encoding="utf-8")
