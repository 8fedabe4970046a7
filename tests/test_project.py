"""How the project is kept: the rules of the house that a reader of the code relies on."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
CODE = [p for package in ("accounts", "core", "demo", "events", "materials", "pages") for p in (ROOT / package).glob("*.py")]


def test_no_template_compares_status_strings():
    """Templates ask the model (``obj.can("hand_over")``, ``training.is_cancelled``) instead of
    re-encoding the workflow as comparisons of status values."""
    pattern = re.compile(r"(status|condition|delivery|format)\.value|\.value\s*(==|!=|in\b)|'equalto'")
    found = [f"{path.relative_to(ROOT)}: {line.strip()}"
             for path in (ROOT / "templates").rglob("*.*") for line in path.read_text().splitlines()
             if pattern.search(line) and "s.value == status" not in line and "k.value == kind" not in line]
    assert found == []


def test_views_never_commit_and_services_commit_only_through_unit_of_work():
    offenders = [f"{p.relative_to(ROOT)}: {line.strip()}" for p in CODE for line in p.read_text().splitlines()
                 if re.search(r"db\.session\.(commit|rollback)\(\)", line) and p.parent.name not in ("demo", "core")]
    # The one exception: the error page for an unexpected error ends the failed request's transaction.
    assert offenders == ["pages/views.py: db.session.rollback()"]


def test_the_runtime_lock_installs_no_test_tool():
    """``pip install -r requirements.txt`` is what a production server runs."""
    names = {line.split("==")[0].lower() for line in (ROOT / "requirements.txt").read_text().splitlines()
             if line and not line.startswith("#")}
    assert names and not names & {"pytest", "playwright", "aiosmtpd", "hypothesis", "ruff", "axe-playwright-python"}
    assert all("==" in line for line in (ROOT / "requirements.txt").read_text().splitlines()
               if line and not line.startswith("#"))
    assert "-r requirements.txt" in (ROOT / "requirements-dev.txt").read_text()


def test_no_module_has_grown_into_several():
    """One concern per module: none much over 400 lines (a sign it holds several rules)."""
    assert [f"{p.relative_to(ROOT)}: {n}" for p in CODE if (n := len(p.read_text().splitlines())) > 440] == []
