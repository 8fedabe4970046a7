"""Configuration in layers: defaults here, then ``instance/config.py``, then the environment.

Every setting below can be given as an environment variable of the same name.
The defaults describe the Planerladen e.V. service centre in Dortmund; another
agency runs its own Fundus by overriding the ``ORG_*``, ``IMPRINT_*`` and
``PRIVACY_*`` settings.
"""

import os
import re
import secrets
import time
from datetime import timedelta
from pathlib import Path

from core.urls import check_base_url

DEFAULTS: dict[str, object] = {
    # Core
    "SECRET_KEY": "",  # empty: generated once into instance/secret_key
    "DATABASE_URL": "",  # empty: SQLite file instance/fundus.sqlite
    "BASE_URL": "",  # public address for links in mails and feeds; empty: DEV_BASE_URL (production needs it)
    "AUTO_MIGRATE": True,  # upgrade an SQLite database on first use
    "SESSION_COOKIE_SECURE": False,  # set to 1 when served over HTTPS
    "PROXY_COUNT": 0,  # reverse proxies in front (nginx: 1), so client addresses are right
    "TIMEZONE": "Europe/Berlin",
    "UPLOAD_FOLDER": "",  # where covers and PDFs lay before they moved into the database (flask files import)
    "PAGE_CACHE_ENTRIES": 400,  # public answers kept per process for anonymous visitors (core.pagecache); 0: none
    "PAGE_CACHE_SECONDS": 60,  # how long a kept answer serves, for what changes with the time alone
    "LOG_FORMAT": "text",  # "json": one JSON object per line, for log collectors
    # Operation (/healthz, jobs run)
    "HEALTH_MAIL_MINUTES": 30,  # a mail pending longer: /healthz answers 503 and staff see a warning
    "HEALTH_JOBS_MINUTES": 30,  # no successful jobs run for longer: /healthz answers 503
    "JOB_LEASE_MINUTES": 30,  # a job still marked running after this long is taken as crashed
    # Login protection
    "RATELIMIT_STORAGE_URI": "memory://",  # per process; redis://host:6379 counts across processes and hosts
    "LOGIN_RATE_LIMIT": "10 per minute;50 per hour",  # per client address
    "REGISTRATION_RATE_LIMIT": "5 per minute;30 per hour",  # training registrations per client address
    "ADDRESS_RATE_LIMIT": "5 per hour;20 per day",  # public forms naming one e-mail address, from any client
    "API_RATE_LIMIT": "120 per minute",  # requests to /api/v1/ per client address
    # Other sites
    "API_CORS_ORIGINS": "",  # comma-separated origins whose scripts may read the API (https://www.example.org)
    "EMBED_ORIGINS": "",  # comma-separated origins whose pages may show the programme in a frame (/embed/programme)
    "LOGIN_MAX_FAILURES": 5,  # attempts per address from one client in LOGIN_LOCK_MINUTES
    "LOGIN_MAX_FAILURES_ANYWHERE": 50,  # attempts per address from all clients together
    "LOGIN_LOCK_MINUTES": 15,
    "REMEMBER_DAYS": 365,  # how long "stay signed in" lasts
    "PASSWORD_RESET_HOURS": 2,
    "SET_PASSWORD_DAYS": 7,
    "REGISTRATION_HOLD_HOURS": 48,  # an unconfirmed training registration holds its seat this long
    "REGISTRATION_RETENTION_MONTHS": 12,  # registrations of trainings ended longer ago are anonymised by jobs run
    "REJECTED_APPLICATION_KEEP_DAYS": 180,  # rejected account applications are deleted this long after the decision
    # Mail
    "MAIL_SERVER": "",  # empty: mail is written to the log instead of sent
    "MAIL_PORT": 25,
    "MAIL_USE_TLS": False,
    "MAIL_USERNAME": "",
    "MAIL_PASSWORD": "",
    "MAIL_FROM": "fundus@localhost",
    "MAIL_REPLY_TO": "",  # where answers to mails go; empty: ORG_EMAIL
    "MAIL_TIMEOUT": 10,
    "MAIL_MAX_ATTEMPTS": 12,
    "MAIL_CLAIM_SECONDS": 300,
    "MAIL_SEND_AFTER_REQUEST": True,
    "MAIL_KEEP_DAYS": 30,  # sent mails lose their text and recipient after this many days (jobs run)
    "MAIL_SIGNATURE": "",  # empty: built from ORG_NAME, ORG_UNIT, address, phone, e-mail
    "STAFF_EMAIL": "",  # notices for staff (new account applications); empty: ORG_EMAIL
    # The organisation running this Fundus
    "ORG_NAME": "Planerladen e.V.",
    "ORG_UNIT": "Integrationsagentur – Servicestelle für Antidiskriminierungsarbeit im Handlungsfeld Wohnen",
    "ORG_STREET": "Schützenstraße 42",
    "ORG_POSTCODE_CITY": "44147 Dortmund",
    "ORG_PHONE": "0231 8820700",
    "ORG_FAX": "0231 8820701",
    "ORG_EMAIL": "integration@planerladen.de",
    "ORG_WEBSITE": "https://www.planerladen.de",
    "ORG_OPENING_HOURS": "",  # when materials can be picked up, e.g. "Mo–Do 10–16 Uhr"; in approval mails
    "IMPRINT_REPRESENTATIVE": "",  # who represents the association (Vorstand)
    "IMPRINT_REGISTER": "",  # e.g. "Vereinsregister Amtsgericht Dortmund, VR …"
    "IMPRINT_CONTENT_RESPONSIBLE": "",  # responsible for content (§ 18 Abs. 2 MStV)
    "PRIVACY_CONTACT": "",  # data protection contact; empty: ORG_EMAIL
    "SERVER_LOG_DAYS": 7,  # how long the web server keeps its logs (IP addresses): the privacy notice states it
    "PRIVACY_PROCESSORS": "",  # who hosts the site and delivers its mail (privacy notice); empty: a general line
}

TRUE_WORDS = {"1", "true", "yes", "on"}


def _cast(default: object, raw: str) -> object:
    if isinstance(default, bool):
        return raw.strip().lower() in TRUE_WORDS
    if isinstance(default, int):
        return int(raw)
    return raw


def normalise_database_url(url: str) -> str:
    """Accept ``postgres://`` and ``postgresql://`` and use psycopg 3 for them."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def load_config(app, test_config: dict | None) -> None:
    """Fill ``app.config`` from the layers (or defaults plus ``test_config``), then derive the rest."""
    cfg = app.config
    cfg.update(DEFAULTS)
    if test_config is None:
        cfg.from_pyfile("config.py", silent=True)
        for key, default in DEFAULTS.items():
            if key in os.environ:
                cfg[key] = _cast(default, os.environ[key])
    else:
        # Tests are hermetic: no instance file, no environment.
        cfg.update(test_config)

    instance = Path(app.instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    if not cfg["SECRET_KEY"]:
        cfg["SECRET_KEY"] = _instance_secret(instance / "secret_key")

    url = cfg.get("SQLALCHEMY_DATABASE_URI") or cfg["DATABASE_URL"]
    url = normalise_database_url(url) if url else f"sqlite:///{instance / 'fundus.sqlite'}"
    cfg["SQLALCHEMY_DATABASE_URI"] = url
    if url.startswith("sqlite"):
        # Wait for a writer instead of failing at once with "database is locked".
        cfg.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {"connect_args": {"timeout": 30}})
    else:
        # A server that does not answer is an outage after 5 s, not a worker waiting for ever.
        cfg.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {"pool_pre_ping": True, "connect_args": {"connect_timeout": 5}})

    cfg["BASE_URL"] = _base_url(cfg)
    for key in ("API_CORS_ORIGINS", "EMBED_ORIGINS"):
        cfg[key] = ",".join(check_origin(key, o) for o in str(cfg[key]).split(",") if o.strip())
    cfg["UPLOAD_FOLDER"] = cfg["UPLOAD_FOLDER"] or str(instance / "uploads")
    cfg["SESSION_COOKIE_HTTPONLY"] = True
    cfg["SESSION_COOKIE_SAMESITE"] = "Lax"
    cfg["REMEMBER_COOKIE_HTTPONLY"] = True
    cfg["REMEMBER_COOKIE_SAMESITE"] = "Lax"
    cfg["REMEMBER_COOKIE_SECURE"] = cfg["SESSION_COOKIE_SECURE"]
    cfg["REMEMBER_COOKIE_DURATION"] = timedelta(days=cfg["REMEMBER_DAYS"])
    cfg["PREFERRED_URL_SCHEME"] = "https" if cfg["SESSION_COOKIE_SECURE"] else "http"
    cfg["BABEL_DEFAULT_LOCALE"] = "de"
    cfg["BABEL_DEFAULT_TIMEZONE"] = cfg["TIMEZONE"]
    cfg["LANGUAGES"] = ("de", "en")
    cfg["WTF_CSRF_TIME_LIMIT"] = None  # tied to the session; a long form must not expire
    cfg["MAX_CONTENT_LENGTH"] = cfg.get("MAX_CONTENT_LENGTH") or 21 * 1024 * 1024  # a 5 MB cover and a 15 MB PDF
    cfg["RATELIMIT_HEADERS_ENABLED"] = True
    # Redis away: requests are served and counted per process meanwhile (logged), instead of failing (core.limits).
    cfg["RATELIMIT_IN_MEMORY_FALLBACK_ENABLED"] = True
    cfg["RATELIMIT_SWALLOW_ERRORS"] = True
    # A Redis that accepts connections but does not answer holds a request half a second, not the client's default.
    cfg.setdefault("RATELIMIT_STORAGE_OPTIONS", {"socket_timeout": 0.5, "socket_connect_timeout": 0.5})
    if not cfg["MAIL_SIGNATURE"]:
        lines = [cfg["ORG_NAME"], cfg["ORG_UNIT"], cfg["ORG_STREET"], cfg["ORG_POSTCODE_CITY"]]
        lines += [f"Tel. {cfg['ORG_PHONE']}" if cfg["ORG_PHONE"] else "", cfg["ORG_EMAIL"]]
        cfg["MAIL_SIGNATURE"] = "\n".join(line for line in lines if line)
    cfg["STAFF_EMAIL"] = cfg["STAFF_EMAIL"] or cfg["ORG_EMAIL"]
    cfg["MAIL_REPLY_TO"] = cfg["MAIL_REPLY_TO"] or cfg["ORG_EMAIL"]
    cfg["PRIVACY_CONTACT"] = cfg["PRIVACY_CONTACT"] or cfg["ORG_EMAIL"]


DEV_BASE_URL = "http://127.0.0.1:5000"  # where ``flask --app app run`` serves


def _base_url(cfg) -> str:
    """Links in mails and feeds come from here, never from a request's Host header. Production (HTTPS
    cookies or a proxy in front) must say its address; development gets the development server's."""
    if cfg["BASE_URL"]:
        return check_base_url(cfg["BASE_URL"])
    if cfg["SESSION_COOKIE_SECURE"] or cfg["PROXY_COUNT"]:
        raise RuntimeError(
            "BASE_URL is not set. Set it to the site's public address (e.g. BASE_URL=https://fundus.example.org "
            "in instance/config.py or the environment): links in mails and calendar feeds are built from it.")
    return DEV_BASE_URL


def check_origin(key: str, origin: str) -> str:
    """An origin as browsers send it (``https://www.example.org``, a port if not the default), or a clear
    error at start-up: it goes into a Content-Security-Policy and a CORS header."""
    origin = origin.strip().rstrip("/")
    if not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?", origin, re.ASCII):
        raise RuntimeError(f"{key}: {origin!r} is not an origin such as https://www.example.org "
                           "(scheme and host, a port if needed, no path), separated by commas")
    return origin


def _instance_secret(path: Path) -> str:
    """Read the instance's secret key, creating it (readable by the owner only) if missing."""
    for _ in range(50):
        try:
            key = path.read_text().strip()
        except FileNotFoundError:
            key = ""
        if key:
            return key
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process is writing it right now
            time.sleep(0.05)
            continue
        key = secrets.token_hex(32)
        with os.fdopen(fd, "w") as fh:
            fh.write(key)
        return key
    raise RuntimeError(f"{path} exists but stays empty; delete it and start again")
