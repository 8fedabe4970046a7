"""Fundus: materials lending and trainings for a social-sector service centre.

``flask --app app run`` starts it; ``create_app`` is the application factory.
"""

import logging
import os
from datetime import timedelta
from pathlib import Path

import click
from flask import Flask, g
from flask_babel import lazy_gettext as _l
from werkzeug.middleware.proxy_fix import ProxyFix

from core import i18n, text
from core.after_response import deliver_after_response
from core.bounds import IdConverter, refuse_control_characters
from core.config import load_config
from core.db import configure_engine, ensure_schema
from core.extensions import babel, csrf, db, limiter, login_manager, migrate
from core.pagecache import init_page_cache
from core.security import set_security_headers
from core.urls import external_url, webcal_url

ROOT = Path(__file__).resolve().parent


def instance_path() -> str:
    """The instance folder (secret key, SQLite file, config.py): ``FUNDUS_INSTANCE`` or ``instance/`` beside
    this file, so several instances can run from one checkout."""
    folder = os.environ.get("FUNDUS_INSTANCE")
    return os.path.abspath(os.path.expanduser(folder)) if folder else str(ROOT / "instance")


def create_app(test_config: dict | None = None) -> Flask:
    """Build the application: configuration, extensions, blueprints, commands."""
    app = Flask(__name__, instance_path=instance_path(), instance_relative_config=True)
    load_config(app, test_config)
    if app.logger.level == logging.NOTSET:
        app.logger.setLevel(logging.INFO)
        logging.getLogger("fundus").setLevel(logging.INFO)
        if not logging.getLogger("fundus").handlers:
            logging.getLogger("fundus").addHandler(logging.StreamHandler())
    if app.config["LOG_FORMAT"] == "json":  # one JSON object a line, for log collectors (core.logs)
        from core.logs import use_json

        use_json(app.logger, logging.getLogger("fundus"))

    if app.config["PROXY_COUNT"]:
        n = app.config["PROXY_COUNT"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)
    app.url_map.converters["int"] = IdConverter  # every <int:…> of a route fits the database (core.bounds)
    register_extensions(app)
    register_blueprints(app)
    register_hooks(app)
    register_commands(app)
    return app


def register_extensions(app: Flask) -> None:
    # Import every model module so metadata (and Alembic) sees all tables.
    import accounts.jobs  # noqa: F401  (registers the sign-in housekeeping)
    import accounts.models  # noqa: F401
    import core.changes  # noqa: F401
    import core.mail  # noqa: F401
    import events.jobs  # noqa: F401  (registers the expiry job)
    import events.models  # noqa: F401
    import figures.jobs  # noqa: F401  (counts the year's figures ahead, after the jobs that change data)
    import materials.jobs  # noqa: F401  (registers the reminder job)
    import materials.models  # noqa: F401

    db.init_app(app)
    configure_engine(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"), render_as_batch=True)
    csrf.init_app(app)
    limiter.init_app(app)
    babel.init_app(
        app,
        locale_selector=i18n.select_locale,
        default_translation_directories=str(ROOT / "translations"),
    )
    login_manager.init_app(app)
    login_manager.login_view = "accounts.login"
    login_manager.login_message = _l("Please sign in to see this page.")
    login_manager.login_message_category = "info"

    from accounts.sessions import load_user, sign_in_needed

    login_manager.user_loader(load_user)
    login_manager.unauthorized_handler(sign_in_needed)

    from api.http import init_api

    init_api(app)


def register_blueprints(app: Flask) -> None:
    from accounts import admin_views, staff_views  # noqa: F401  (their routes join the accounts blueprint)
    from accounts.views import bp as accounts_bp
    from core.health import bp as health_bp
    from events.staff_views import bp as trainings_bp
    from events.views import bp as events_bp
    from events.views import my_bp
    from figures.views import bp as figures_bp
    from materials.request_views import bp as requests_bp
    from materials.views import bp as materials_bp
    from pages.views import bp as pages_bp

    app.register_blueprint(pages_bp)
    app.register_blueprint(accounts_bp)
    app.register_blueprint(materials_bp)
    app.register_blueprint(requests_bp)
    app.register_blueprint(trainings_bp)
    app.register_blueprint(events_bp)
    app.register_blueprint(my_bp)
    app.register_blueprint(figures_bp)
    app.register_blueprint(health_bp)


def register_hooks(app: Flask) -> None:
    from accounts.sessions import notice_ended_sign_in
    from materials.files import version as file_version

    app.before_request(ensure_schema)
    app.before_request(refuse_control_characters)
    app.before_request(notice_ended_sign_in)
    init_page_cache(app)  # after the hooks above: a kept answer passes the same checks
    app.after_request(set_security_headers)
    app.after_request(deliver_after_response)
    app.after_request(i18n.vary_on_language)
    app.jinja_env.filters["datetime"] = i18n.format_datetime
    app.jinja_env.filters["date"] = i18n.format_date
    app.jinja_env.filters["session"] = i18n.format_session
    app.jinja_env.filters["sentence"] = text.sentence
    app.jinja_env.filters["lines"] = text.lines
    app.jinja_env.filters["one_line"] = text.one_line
    app.jinja_env.filters["month"] = i18n.format_month
    app.jinja_env.filters["decimal"] = i18n.format_decimal
    app.jinja_env.filters["number"] = i18n.format_number
    app.jinja_env.globals["timedelta"] = timedelta
    app.jinja_env.globals["webcal_url"] = webcal_url
    app.jinja_env.globals["external_url"] = external_url
    app.jinja_env.globals["page_to_return_to"] = i18n.page_to_return_to
    app.jinja_env.globals["file_version"] = file_version

    @app.context_processor
    def inject_site():
        from flask_babel import get_locale

        return {"config_org": _org(app), "current_locale": str(get_locale())}

    @app.teardown_request
    def _forget_outbox(_exc):
        g.pop("outbox_ids", None)


def _org(app: Flask) -> dict:
    cfg = app.config
    keys = ["NAME", "UNIT", "STREET", "POSTCODE_CITY", "PHONE", "FAX", "EMAIL", "WEBSITE"]
    return {key.lower(): cfg[f"ORG_{key}"] for key in keys}


def register_commands(app: Flask) -> None:
    from accounts.cli import users_cli
    from core.backup import backup_command, restore_command
    from core.i18n_cli import i18n_cli
    from core.jobs import jobs_cli
    from materials.files import files_cli

    app.cli.add_command(users_cli)
    app.cli.add_command(jobs_cli)
    app.cli.add_command(files_cli)
    app.cli.add_command(i18n_cli)
    app.cli.add_command(seed_demo_command)
    app.cli.add_command(backup_command)
    app.cli.add_command(restore_command)


@click.command("seed-demo")
def seed_demo_command():
    """Load demo organisations, accounts, materials, requests, trainings and registrations."""
    from demo.content import run  # imported only when asked for, not at every start

    run()
