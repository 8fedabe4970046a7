"""Benchmark: build a database at a scale, serve it with gunicorn, load each page with wrk.

    python bench/run.py --db sqlite|postgres --scale small|large [--json FILE] [--seconds 10]

Needs wrk (``apt-get install wrk``). PostgreSQL: the server at 127.0.0.1:5432 (trust auth); the
harness drops and creates the database ``fundus_bench``. Prints one table; see BENCHMARKS.md.
"""

import argparse
import http.cookiejar
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORKERS = 4  # gunicorn sync workers: 2 × cores on the 2-core benchmark machine
CONCURRENCY = 16
# Pages one person uses at a time, measured one request after another: the figures page at the large scale
# costs about a second of CPU, so 16 at once on 2 cores queue for eight seconds and none ends within the
# measured time. Its p50 is then the time one staff member waits.
ALONE = {"figures"}
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_BENCH = "postgresql+psycopg://postgres@127.0.0.1:5432/fundus_bench"
PASSWORD = "bench-password-2026"
SECRET = "bench-secret-key"


def database_url(kind: str, scale: str, workdir: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{workdir / f'fundus-{scale}.sqlite'}"
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS fundus_bench WITH (FORCE)")
        conn.execute("CREATE DATABASE fundus_bench")
    return PG_BENCH


def build(url: str, scale: str) -> dict:
    from flask_migrate import upgrade
    from werkzeug.security import generate_password_hash

    from app import create_app
    from bench.generate import generate, reset_sequences
    from core.extensions import db

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": SECRET, "AUTO_MIGRATE": False})
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        started = time.monotonic()
        ids = generate(scale, generate_password_hash(PASSWORD))
        reset_sequences()
        if db.engine.dialect.name == "sqlite":
            db.session.execute(db.text("ANALYZE"))
        else:
            db.session.commit()
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(db.text("VACUUM ANALYZE"))
        db.session.commit()
        ids["build_seconds"] = round(time.monotonic() - started, 1)
        db.engine.dispose()
    return ids


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(url: str, port: int, floor_dir: Path) -> subprocess.Popen:
    env = dict(os.environ, DATABASE_URL=url, SECRET_KEY=SECRET, BENCH_FLOOR_DIR=str(floor_dir),
               AUTO_MIGRATE="0", MAIL_SERVER="", PYTHONPATH=str(ROOT),
               # One load generator is one client: the API's limit per client stays on (its check is part of
               # the cost) but high enough never to refuse.
               API_RATE_LIMIT="1000000 per minute")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", str(WORKERS), "--bind", f"127.0.0.1:{port}",
         "--log-level", "warning", "bench.app:create()"],
        cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.DEVNULL)
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/imprint", timeout=10).read()
            return process
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    process.kill()
    raise SystemExit("gunicorn did not start")


def sign_in(base: str, email: str | None) -> str:
    """A session cookie: signed in as ``email`` through the real login form, or (``None``) that of an
    anonymous visitor after a first page, as a browser keeps it."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"{base}/login").read().decode()
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    if email:
        data = urllib.parse.urlencode({"csrf_token": token, "email": email, "password": PASSWORD}).encode()
        opener.open(f"{base}/login", data=data).read()
    return "; ".join(f"{c.name}={c.value}" for c in jar)


def fetch(url: str, headers: dict) -> tuple[int, bytes, dict]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


# Who asks: a visitor (anonymous, with the session cookie a browser keeps after its first page), a partner's or
# a staff member's browser, or a program without a session (calendar apps poll the feeds, other sites' servers
# ask the API).
VISITOR, PARTNER, STAFF, PROGRAM = "visitor", "partner", "staff", "program"


def pages(ids: dict) -> dict[str, tuple[str, str]]:
    from datetime import date

    soon = date.today() + timedelta(days=60)
    return {
        "catalogue": ("/materials/", VISITOR),
        "catalogue_search": (f"/materials/?q=wohnen&available_from={soon}&available_to={soon + timedelta(days=3)}",
                             VISITOR),
        "catalogue_page50": ("/materials/?page=50", VISITOR),
        "material_detail": (f"/materials/{ids['material']}", VISITOR),
        "programme": ("/events/", VISITOR),
        "training_detail": (f"/events/{ids['training']}", VISITOR),
        "partner_catalogue": ("/materials/", PARTNER),
        "request_page": (f"/requests/{ids['request']}", STAFF),
        "overdue": ("/requests/loans/overdue", STAFF),
        "dashboard": ("/requests/overview", STAFF),
        "participants": (f"/events/staff/{ids['training']}", STAFF),
        "feed": ("/events/calendar.ics", PROGRAM),
        "feed_304": ("/events/calendar.ics", PROGRAM),
        "api_programme": ("/api/v1/trainings", PROGRAM),
        "api_programme_304": ("/api/v1/trainings", PROGRAM),
        "api_catalogue": ("/api/v1/materials", PROGRAM),
        "api_catalogue_304": ("/api/v1/materials", PROGRAM),
        "figures": (f"/figures/?kind=year&year={date.today().year}", STAFF),
    }


def wrk(url: str, headers: dict, seconds: int, concurrency: int = CONCURRENCY) -> dict:
    args = ["wrk", f"-t{min(2, concurrency)}", f"-c{concurrency}", f"-d{seconds}s", "--timeout", "30s",
            "-s", str(ROOT / "bench" / "report.lua")]
    for key, value in headers.items():
        args += ["-H", f"{key}: {value}"]
    output = subprocess.run(args + [url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    found = dict(re.findall(r"(\w+)=(\d+)", output.split("BENCH", 1)[1]))
    return {"rps": rps, "p50_ms": int(found["p50"]) / 1000, "p95_ms": int(found["p95"]) / 1000,
            "errors": int(found["non2xx"]) + int(found["errors"])}


def settle(url: str, headers: dict, quick: float = 0.1, patience: float = 300) -> None:
    """Wait until every worker is idle again: as many floor requests at once as there are workers all
    answer quickly (one at a time would find the one idle worker)."""
    from concurrent.futures import ThreadPoolExecutor

    def timed(_):
        started = time.monotonic()
        fetch(url, headers)
        return time.monotonic() - started

    deadline = time.monotonic() + patience
    with ThreadPoolExecutor(WORKERS) as pool:
        while max(pool.map(timed, range(WORKERS))) >= quick and time.monotonic() < deadline:
            time.sleep(0.5)


def peak_rss_mb(master: int) -> float:
    """The largest peak resident set (VmHWM) among the gunicorn workers."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    peaks = []
    for pid in children:
        status = Path(f"/proc/{pid}/status").read_text()
        peaks.append(int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024)
    return round(max(peaks), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=("sqlite", "postgres"), required=True)
    parser.add_argument("--scale", choices=("small", "large"), required=True)
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument("--seconds", type=int, default=10, help="measured time per page (after a 2 s warm-up)")
    parser.add_argument("--only", default="", help="comma-separated page names, to re-measure a few")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")

    workdir = Path(tempfile.mkdtemp(prefix="fundus-bench-"))
    url = database_url(args.db, args.scale, workdir)
    ids = build(url, args.scale)
    print(f"built {args.scale} on {args.db} in {ids['build_seconds']} s: {ids['materials']} materials, "
          f"{ids['loans']} loans, {ids['registrations']} registrations", flush=True)

    floor_dir = workdir / "floor"
    floor_dir.mkdir()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_gunicorn(url, port, floor_dir)
    results = {}
    try:
        from bench.generate import PARTNER_EMAIL, STAFF_EMAIL

        cookies = {VISITOR: sign_in(base, None), PARTNER: sign_in(base, PARTNER_EMAIL),
                   STAFF: sign_in(base, STAFF_EMAIL)}
        wanted = set(filter(None, args.only.split(",")))
        for name, (path, who) in pages(ids).items():
            if wanted and name not in wanted:
                continue
            headers = {"Cookie": cookies[who]} if who in cookies else {}
            if name.endswith("_304"):
                _, _, first = fetch(base + path, headers)
                headers["If-None-Match"] = first["ETag"]
            status, body, response_headers = fetch(base + path, headers)
            assert status in (200, 304), f"{name}: {status}"
            sql = int(response_headers.get("X-SQL-Statements", "-1"))
            (floor_dir / f"{name}.body").write_bytes(body)
            (floor_dir / f"{name}.json").write_text(json.dumps(
                {"status": status, "type": response_headers.get("Content-Type", "text/html; charset=utf-8")}))
            # The floor first, each after its warm-up: a slow page leaves workers busy with queued requests
            # after wrk stops (the large figures page: seconds each), so the next measurement waits for quiet.
            concurrency = 1 if name in ALONE else CONCURRENCY
            wrk(f"{base}/__floor/{name}", headers, 2, concurrency)
            floor = wrk(f"{base}/__floor/{name}", headers, args.seconds, concurrency)
            wrk(base + path, headers, 2, concurrency)
            settle(f"{base}/__floor/{name}", headers)
            page = wrk(base + path, headers, args.seconds, concurrency)
            settle(f"{base}/__floor/{name}", headers)
            results[name] = {"rps": page["rps"], "floor_rps": floor["rps"],
                             "ratio": round(page["rps"] / floor["rps"], 3) if floor["rps"] else 0.0,
                             "p50_ms": page["p50_ms"], "p95_ms": page["p95_ms"], "sql": sql, "concurrency": concurrency,
                             "errors": page["errors"]}
            row = results[name]
            print(f"{name:<18} {row['rps']:>8.1f} {row['floor_rps']:>9.1f} {row['ratio']:>6.2f} "
                  f"{row['p50_ms']:>8.1f} {row['p95_ms']:>8.1f} {row['sql']:>4} {row['errors']:>6}", flush=True)
        rss = peak_rss_mb(server.pid)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)

    print(f"\n{'page':<18} {'req/s':>8} {'floor/s':>9} {'ratio':>6} {'p50 ms':>8} {'p95 ms':>8} "
          f"{'sql':>4} {'errors':>6}")
    for name, row in results.items():
        print(f"{name:<18} {row['rps']:>8.1f} {row['floor_rps']:>9.1f} {row['ratio']:>6.2f} "
              f"{row['p50_ms']:>8.1f} {row['p95_ms']:>8.1f} {row['sql']:>4} {row['errors']:>6}")
    print(f"peak memory per worker: {rss} MB; {WORKERS} workers, concurrency {CONCURRENCY} "
          f"({', '.join(sorted(ALONE))}: one request at a time), {os.cpu_count()} cores")
    if args.json:
        Path(args.json).write_text(json.dumps({"db": args.db, "scale": args.scale, "pages": results, "rss_mb": rss,
                                               "build_seconds": ids["build_seconds"], "workers": WORKERS,
                                               "concurrency": CONCURRENCY, "cores": os.cpu_count()}, indent=2))
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
