"""The app as the benchmark serves it: Fundus itself, plus two things only the harness registers.

- ``X-SQL-Statements``: how many statements the request ran (counted on the engine).
- ``/__floor/<name>``: the pre-rendered bytes of a page, from ``BENCH_FLOOR_DIR``, with no database
  and no template: the framework's own floor for the same gunicorn setup.
"""

import json
import os
from pathlib import Path

from flask import Response, g, has_app_context
from sqlalchemy import event

from app import create_app as fundus_app
from core.db import engines


def create():
    app = fundus_app()
    floor_dir = Path(os.environ["BENCH_FLOOR_DIR"])
    cache: dict[str, tuple[int, bytes, str]] = {}

    def count(*_args):
        if has_app_context():
            g.sql_statements = g.get("sql_statements", 0) + 1

    with app.app_context():
        for engine in engines():  # the session's and, on PostgreSQL, the change counters' (core.db.lone_read)
            event.listen(engine, "before_cursor_execute", count)

    @app.after_request
    def report(response):
        response.headers["X-SQL-Statements"] = str(g.get("sql_statements", 0))
        return response

    @app.get("/__floor/<name>")
    def floor(name: str):
        if name not in cache:
            meta = json.loads((floor_dir / f"{name}.json").read_text())
            cache[name] = (meta["status"], (floor_dir / f"{name}.body").read_bytes(), meta["type"])
        status, body, content_type = cache[name]
        return Response(body, status=status, content_type=content_type)

    return app
