"""Backup and restore (core.backup): every row and every uploaded file as at backup time, the change
counters above anything a process or client kept before, foreign files refused untouched, a snapshot
while others write, no half file under the backup's name. On SQLite and, with TEST_DATABASE_URL, on
PostgreSQL."""

import io
import os
import sqlite3
import stat
import subprocess
import threading
from pathlib import Path

import pytest
from sqlalchemy import delete, func, inspect, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from accounts.models import Organisation, OrganisationKind, Role
from core.backup import written_atomically
from core.changes import ChangeCounter, all_versions
from core.db import current_revision, head_revision
from core.extensions import db, migrate
from events.models import Training
from materials import files
from materials.models import Material


def jpeg(colour: tuple[int, int, int]) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (400, 300), colour).save(out, "JPEG")
    return out.getvalue()


def rows() -> dict[str, list[str]]:
    """Every row of every table but the counters (checked on their own), the stored files' bytes included."""
    db.session.rollback()
    found = {table.name: sorted(map(repr, db.session.execute(table.select()).all()))
             for table in db.metadata.sorted_tables if table.name != "change_counters"}
    db.session.rollback()
    return found


def counters() -> dict[str, int]:
    return dict(all_versions())


def leftovers(folder) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.endswith(".part"))


def is_postgresql() -> bool:
    return db.engine.dialect.name == "postgresql"


def test_restore_brings_back_every_row_and_file_and_nothing_kept_from_before(
        app, client, runner, make_user, make_org, make_material, make_training, tmp_path):
    staff = make_user(Role.STAFF)
    doomed = make_org(name="Wohnen am Hafen eG")
    material = make_material(title="Fair vermieten", editions={"de": 5})
    files.save_files(material.id, staff, cover=jpeg((11, 85, 99)))
    training = make_training(title="Diskriminierungsfreie Vermietung")
    cover_url, page_url = f"/materials/{material.id}/cover.jpg", f"/materials/{material.id}"

    cover_then = client.get(cover_url)
    assert cover_then.status_code == 200 and cover_then.data.startswith(b"\xff\xd8")
    assert "Fair vermieten" in client.get(page_url).get_data(as_text=True)  # kept by this process
    etag_then = client.get("/events/calendar.ics").headers["ETag"]
    rows_then, counters_then, revision_then = rows(), counters(), current_revision()

    backup_file = tmp_path / "backups" / "fundus.backup"
    backup_file.parent.mkdir()
    result = runner.invoke(args=["backup", str(backup_file)])
    assert result.exit_code == 0, result.output
    assert result.output.count("\n") == 1
    assert result.output.startswith("Backed up ") and f"to {backup_file} (" in result.output
    assert stat.S_IMODE(backup_file.stat().st_mode) == 0o600
    assert leftovers(backup_file.parent) == []

    # Afterwards: a row added, one changed, one deleted, the cover replaced, the programme changed.
    make_org(name="Neue Nachbarschaft e.V.")
    db.session.execute(update(Material).where(Material.id == material.id).values(title="Ganz anders"))
    db.session.execute(update(Training).where(Training.id == training.id).values(title="Verschoben"))
    db.session.delete(db.session.get(Organisation, doomed.id))
    db.session.commit()
    files.save_files(material.id, staff, cover=jpeg((200, 30, 30)))
    assert client.get(cover_url).data != cover_then.data
    assert "Ganz anders" in client.get(page_url).get_data(as_text=True)  # kept under the new counters
    etag_before = client.get("/events/calendar.ics").headers["ETag"]
    assert etag_before != etag_then
    assert rows() != rows_then
    counters_before = counters()

    result = runner.invoke(args=["restore", "--yes", str(backup_file)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Restored {backup_file} (") and " into the " in result.output
    assert result.output.count("\n") == 1  # the schema is current: no hint

    assert rows() == rows_then  # every row of every table, the stored files too
    assert current_revision() == revision_then
    assert client.get(cover_url).data == cover_then.data
    counters_after = counters()
    for name in set(counters_then) | set(counters_before):
        assert counters_after[name] > max(counters_then.get(name, 0), counters_before.get(name, 0)), name
    # No process serves what it kept before the restore, no ETag from before matches.
    page = client.get(page_url).get_data(as_text=True)
    assert "Fair vermieten" in page and "Ganz anders" not in page
    for etag in (etag_then, etag_before):
        again = client.get("/events/calendar.ics", headers={"If-None-Match": etag})
        assert again.status_code == 200 and again.headers["ETag"] not in (etag_then, etag_before)


def test_counters_end_above_the_live_and_the_backups_values(app, runner, make_org, tmp_path):
    """Counters higher in the backup than in the database (a backup of another installation), counters
    only the database has, and only the backup has: each ends above both."""
    make_org()
    db.session.execute(update(ChangeCounter).values(value=500))
    db.session.add(ChangeCounter(name="only-in-backup", value=70))
    db.session.commit()
    backup_file = tmp_path / "high.backup"
    assert runner.invoke(args=["backup", str(backup_file)]).exit_code == 0
    in_backup = counters()
    db.session.execute(update(ChangeCounter).values(value=3))
    db.session.execute(delete(ChangeCounter).where(ChangeCounter.name == "only-in-backup"))
    db.session.add(ChangeCounter(name="only-in-database", value=900))
    db.session.commit()
    before = counters()

    assert runner.invoke(args=["restore", "--yes", str(backup_file)]).exit_code == 0
    after = counters()
    assert set(after) == set(in_backup) | set(before)
    for name in after:
        assert after[name] > max(in_backup.get(name, 0), before.get(name, 0)), name
    assert after["only-in-database"] > 900 and after["only-in-backup"] > 70


def sqlite_file(path, with_alembic: bool, revision: str = "d5a7c3e9f182") -> None:
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE organisations (id INTEGER PRIMARY KEY, name TEXT)")
        if with_alembic:
            connection.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
            connection.execute("INSERT INTO alembic_version VALUES (?)", (revision,))
    connection.close()


def foreign_files(tmp_path) -> dict:
    """Files a restore must refuse on this database, with what its message says."""
    text_file = tmp_path / "notes.txt"
    text_file.write_text("Kontakte\nWohnen am Hafen eG\n")
    empty = tmp_path / "empty.backup"
    empty.write_bytes(b"")
    broken_pg = tmp_path / "broken.dump"
    broken_pg.write_bytes(b"PGDMP" + os.urandom(200))
    foreign_sqlite = tmp_path / "other.sqlite"
    sqlite_file(foreign_sqlite, with_alembic=False)
    fundus_sqlite = tmp_path / "fundus-sqlite.backup"
    sqlite_file(fundus_sqlite, with_alembic=True)
    refused = {text_file: "is not a backup of Fundus", empty: "is not a backup of Fundus"}
    if is_postgresql():
        partial = tmp_path / "organisations-only.dump"
        url = make_url(db.engine.url).set(drivername="postgresql").render_as_string(hide_password=False)
        subprocess.run(["pg_dump", "--format=custom", "--table=organisations", f"--file={partial}", url], check=True)
        return refused | {
            broken_pg: "cannot be read as a pg_dump archive",
            partial: "no alembic_version table",
            foreign_sqlite: "is a backup of an SQLite database; this Fundus runs on PostgreSQL",
            fundus_sqlite: "is a backup of an SQLite database; this Fundus runs on PostgreSQL",
        }
    return refused | {
        broken_pg: "is a backup of a PostgreSQL database (pg_dump); this Fundus runs on SQLite",
        foreign_sqlite: "no alembic_version table",
    }


def test_a_foreign_file_is_refused_and_nothing_changes(app, runner, make_org, make_material, tmp_path):
    make_org(name="Wohnen am Hafen eG")
    make_material(title="Fair vermieten")
    rows_then, counters_then = rows(), counters()
    folder = tmp_path / "files"
    folder.mkdir()
    for path, message in foreign_files(folder).items():
        content = path.read_bytes()
        result = runner.invoke(args=["restore", "--yes", str(path)])
        assert result.exit_code == 1, (path, result.output)
        assert message in result.output and "Nothing was changed." in result.output, result.output
        assert path.read_bytes() == content
        assert rows() == rows_then and counters() == counters_then
    assert sorted(p.name for p in folder.iterdir() if p.name.endswith(("-wal", "-shm", "-journal"))) == []


def test_restore_says_what_happens_and_asks_first(app, runner, make_org, tmp_path):
    make_org(name="Wohnen am Hafen eG")
    backup_file = tmp_path / "fundus.backup"
    assert runner.invoke(args=["backup", str(backup_file)]).exit_code == 0
    make_org(name="Neue Nachbarschaft e.V.")
    rows_now, counters_now = rows(), counters()

    refused = runner.invoke(args=["restore", str(backup_file)], input="n\n")
    assert refused.exit_code == 1 and "Aborted" in refused.output
    assert "will be replaced by those of" in refused.output and "the uploaded files" in refused.output
    assert rows() == rows_now and counters() == counters_now

    confirmed = runner.invoke(args=["restore", str(backup_file)], input="y\n")
    assert confirmed.exit_code == 0, confirmed.output
    assert "Restored" in confirmed.output
    assert db.session.scalar(select(func.count()).select_from(Organisation)) == 1


def test_a_backup_leaves_out_a_transaction_still_open(app, runner, make_org, tmp_path):
    """A write transaction open while the backup runs neither stops it nor gets into it."""
    make_org(name="Vorher eG")
    backup_file = tmp_path / "open.backup"
    db.session.rollback()
    with db.engine.connect() as connection, Session(bind=connection) as other:
        other.begin()
        other.add(Organisation(name="Unbestätigt eG", kind=OrganisationKind.OTHER, city="Offen"))
        other.flush()  # written, not committed, while the backup runs
        result = runner.invoke(args=["backup", str(backup_file)])
        other.commit()
    assert result.exit_code == 0, result.output
    assert "Unbestätigt eG" in db.session.scalars(select(Organisation.name)).all()

    assert runner.invoke(args=["restore", "--yes", str(backup_file)]).exit_code == 0
    names = db.session.scalars(select(Organisation.name)).all()
    assert "Vorher eG" in names and "Unbestätigt eG" not in names


def test_a_backup_while_others_commit_holds_each_transaction_whole_or_not_at_all(app, runner, make_org, tmp_path):
    make_org(name="Vorher eG")
    stop, started = threading.Event(), threading.Event()
    written = []

    def write_batches():  # five organisations of one city per transaction, until the backup is done
        with app.app_context():
            try:
                while not stop.is_set() and len(written) < 2000:
                    batch = len(written) + 1
                    db.session.add_all(Organisation(name=f"Batch {batch}/{n}", kind=OrganisationKind.OTHER,
                                                    city=f"Batch {batch}") for n in range(5))
                    db.session.commit()
                    written.append(batch)
                    if batch == 3:
                        started.set()
            finally:
                started.set()
                db.session.remove()

    db.session.rollback()
    writer = threading.Thread(target=write_batches)
    writer.start()
    try:
        started.wait(30)
        backup_file = tmp_path / "busy.backup"
        result = runner.invoke(args=["backup", str(backup_file)])
        committed_at_end = len(written)
    finally:
        stop.set()
        writer.join()
    assert result.exit_code == 0, result.output

    assert runner.invoke(args=["restore", "--yes", str(backup_file)]).exit_code == 0
    per_batch = dict(db.session.execute(select(Organisation.city, func.count())
                                        .where(Organisation.city.like("Batch %")).group_by(Organisation.city)).all())
    assert len(per_batch) >= 3 and set(per_batch.values()) == {5}, per_batch
    assert len(per_batch) <= committed_at_end
    numbers = sorted(int(city.split()[1]) for city in per_batch)
    assert numbers == list(range(1, len(numbers) + 1))  # a prefix of the commits: one moment's snapshot


def test_a_failed_backup_leaves_the_file_as_it_was(app, make_app, tmp_path):
    target = tmp_path / "fundus.backup"
    target.write_bytes(b"the backup of yesterday")
    with pytest.raises(RuntimeError), written_atomically(target) as temporary:
        temporary.write_bytes(b"half a back")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"the backup of yesterday" and leftovers(tmp_path) == []

    if is_postgresql():
        unreachable = "postgresql+psycopg://postgres@127.0.0.1:1/fundus"
        expected = "The backup failed, nothing was written to the file"
    else:
        unreachable = f"sqlite:///{tmp_path / 'missing' / 'fundus.sqlite'}"
        expected = "Cannot open the SQLite database"
    other = make_app(SQLALCHEMY_DATABASE_URI=unreachable)
    with other.app_context():
        result = other.test_cli_runner().invoke(args=["backup", str(target)])
    assert result.exit_code == 1 and expected in result.output, result.output
    assert target.read_bytes() == b"the backup of yesterday" and leftovers(tmp_path) == []
    assert not (tmp_path / "missing").exists()  # SQLite: no empty database made where none was


def test_a_backup_never_replaces_the_database_itself(app, runner):
    if is_postgresql():
        pytest.skip("SQLite only: a PostgreSQL database is no file")
    live = Path(db.engine.url.database)
    before = live.read_bytes()
    result = runner.invoke(args=["backup", str(live)])
    assert result.exit_code == 1 and "is the database itself" in result.output
    assert live.read_bytes() == before


def test_the_password_goes_to_pg_tools_in_the_environment_only(make_app):
    from core.backup import _connection

    other = make_app(SQLALCHEMY_DATABASE_URI="postgresql+psycopg://fundus:s%40cret%20pw@db.example:5433/fundus"
                                             "?sslmode=require")
    with other.app_context():
        dbname, environment = _connection()
    assert dbname == "--dbname=postgresql://fundus@db.example:5433/fundus?sslmode=require"
    assert environment["PGPASSWORD"] == "s@cret pw"


def test_an_older_backup_asks_for_db_upgrade_and_a_newer_one_for_the_newer_code(app, runner, make_org, tmp_path):
    from alembic.script import ScriptDirectory

    make_org()
    head = head_revision()
    older = ScriptDirectory.from_config(migrate.get_config()).get_revision(head).down_revision

    def backup_at(revision: str, name: str):
        db.session.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": revision})
        db.session.commit()
        path = tmp_path / name
        assert runner.invoke(args=["backup", str(path)]).exit_code == 0
        return path

    try:
        old_file, new_file = backup_at(older, "old.backup"), backup_at("ffffffffffff", "new.backup")
        db.session.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": head})
        db.session.commit()
        result = runner.invoke(args=["restore", "--yes", str(old_file)])
        assert result.exit_code == 0, result.output
        assert result.output.splitlines()[1] == (f"The backup was made by an older Fundus (schema {older}, this code "
                                                 f"needs {head}); bring it up to date: flask --app app db upgrade")
        assert current_revision() == older
        result = runner.invoke(args=["restore", "--yes", str(new_file)])
        assert result.exit_code == 0, result.output
        assert "made by a newer Fundus (schema ffffffffffff" in result.output
    finally:
        db.session.rollback()
        db.session.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": head})
        db.session.commit()


def test_tables_the_backup_does_not_have_are_gone_after_the_restore(app, runner, make_org, tmp_path):
    """A newer schema's table (and, on PostgreSQL, function) beside the backup's: no row of it survives,
    so ``db upgrade`` can build it again."""
    make_org()
    backup_file = tmp_path / "fundus.backup"
    assert runner.invoke(args=["backup", str(backup_file)]).exit_code == 0
    db.session.execute(text("CREATE TABLE newer_things (id INTEGER PRIMARY KEY, note VARCHAR(20))"))
    db.session.execute(text("INSERT INTO newer_things VALUES (1, 'neu')"))
    if is_postgresql():
        db.session.execute(text("CREATE FUNCTION newer_function() RETURNS integer AS 'SELECT 1' LANGUAGE sql"))
    db.session.commit()
    try:
        assert runner.invoke(args=["restore", "--yes", str(backup_file)]).exit_code == 0
        assert "newer_things" not in inspect(db.engine).get_table_names()
        if is_postgresql():
            assert db.session.scalar(text("SELECT count(*) FROM pg_proc WHERE proname = 'newer_function'")) == 0
            assert db.session.scalar(text("SELECT count(*) FROM pg_proc WHERE proname = 'gbt_int4_consistent'")) > 0
    finally:
        db.session.rollback()
        db.session.execute(text("DROP TABLE IF EXISTS newer_things"))
        if is_postgresql():
            db.session.execute(text("DROP FUNCTION IF EXISTS newer_function()"))
        db.session.commit()



def test_extensions_the_database_has_are_left_out_of_the_restore():
    """The role Fundus connects as may not own btree_gist (a superuser installed it): pg_restore --clean
    would fail to drop it. A new database without it gets it."""
    from core.backup import restore_list

    listing = ("; Archive created at 2026-12-03 06:22:02 UTC\n"
               "2; 3079 16643 EXTENSION - btree_gist \n"
               "4041; 0 0 COMMENT - EXTENSION btree_gist \n"
               "465; 1255 17459 FUNCTION public audit_append_only() fundus\n"
               "223; 1259 16440 TABLE public account_applications fundus\n")
    assert restore_list(listing, {"plpgsql", "btree_gist"}) == (
        "; Archive created at 2026-12-03 06:22:02 UTC\n"
        "465; 1255 17459 FUNCTION public audit_append_only() fundus\n"
        "223; 1259 16440 TABLE public account_applications fundus\n")
    assert restore_list(listing, {"plpgsql"}) == listing
