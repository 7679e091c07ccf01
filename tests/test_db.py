"""pipeline.embedded and pipeline.db against a real PostgreSQL + PostGIS (no mocks)."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import tempfile
from pathlib import Path

import psycopg
import pytest

from pipeline import SQL_DIR, db
from pipeline.embedded import ACCOUNT, Cluster, default_datadir, find_pg_bindir
from pipeline.errors import DatabaseError

IS_ROOT = os.geteuid() == 0


@pytest.fixture
def scratch():
    """An empty folder directly under /tmp that the weipian account can enter."""
    folder = Path(tempfile.mkdtemp(prefix="wp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def fresh_cluster():
    """A second cluster this module may stop and start without disturbing pg_cluster."""
    folder = Path(tempfile.mkdtemp(prefix="wp"))
    cluster = Cluster(folder)
    try:
        cluster.up()
        yield cluster
    finally:
        cluster.down()
        shutil.rmtree(folder, ignore_errors=True)


def dbname_of(url: str) -> str:
    return psycopg.conninfo.conninfo_to_dict(url)["dbname"]


# -- the embedded cluster -----------------------------------------------------


def test_status_before_up_reports_not_initialized(scratch):
    status = Cluster(scratch / "db").status()
    assert status == {
        "datadir": str((scratch / "db").resolve()),
        "initialized": False,
        "running": False,
        "url": Cluster(scratch / "db").url(),
    }


def test_up_is_idempotent_when_running(pg_cluster):
    pg_cluster.up()
    with psycopg.connect(pg_cluster.conninfo(), autocommit=True) as c:
        before = c.execute("SELECT pg_postmaster_start_time()").fetchone()
    pg_cluster.up()
    assert pg_cluster.running()
    with psycopg.connect(pg_cluster.conninfo(), autocommit=True) as c:  # the same server, not restarted
        assert c.execute("SELECT pg_postmaster_start_time()").fetchone() == before


def test_status_reports_running(pg_cluster):
    status = pg_cluster.status()
    assert status["initialized"] and status["running"]
    assert status["datadir"] == str(pg_cluster.datadir)
    assert status["url"] == pg_cluster.url()


def test_down_then_up(fresh_cluster):
    fresh_cluster.down()
    assert not fresh_cluster.running()
    fresh_cluster.down()  # already down: no error
    fresh_cluster.up()
    assert fresh_cluster.running()
    with psycopg.connect(fresh_cluster.url()) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("weipian",)


def test_socket_in_datadir_and_no_tcp_listener(pg_cluster):
    socket = pg_cluster.datadir / ".s.PGSQL.5432"
    assert stat.S_ISSOCK(socket.stat().st_mode)
    with psycopg.connect(pg_cluster.conninfo()) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == ("",)
        directories = conn.execute("SHOW unix_socket_directories").fetchone()[0]
        assert directories.strip('"') == str(pg_cluster.datadir)
        assert conn.execute("SELECT inet_server_addr()").fetchone() == (None,)
    assert (pg_cluster.datadir / "server.log").is_file()


def test_conninfo_and_url_reach_the_same_database(pg_cluster):
    for target in (pg_cluster.conninfo("postgres"), pg_cluster.url("postgres")):
        with psycopg.connect(target) as conn:
            row = conn.execute("SELECT current_database(), current_user").fetchone()
            assert row == ("postgres", "weipian")


def test_url_escapes_the_socket_folder(pg_cluster):
    url = Cluster(Path("/tmp/a b/db")).url()
    assert url == "postgresql://weipian@/weipian?host=%2Ftmp%2Fa%20b%2Fdb&port=5432"


def test_too_long_socket_path_is_refused(scratch):
    cluster = Cluster(scratch / ("x" * 100))
    with pytest.raises(DatabaseError, match="107-byte unix-socket limit.*WEIPIAN_DB_DIR"):
        cluster.up()
    assert not (scratch / ("x" * 100)).exists()


def test_non_empty_folder_without_cluster_is_refused(scratch):
    (scratch / "notes.txt").write_text("mine")
    with pytest.raises(DatabaseError, match="is not empty and holds no PostgreSQL cluster"):
        Cluster(scratch).up()
    assert (scratch / "notes.txt").read_text() == "mine"


@pytest.mark.skipif(not IS_ROOT, reason="only root switches to the weipian account")
def test_parent_the_account_cannot_enter_is_named():
    private = Path(tempfile.mkdtemp(prefix="wp"))  # mode 0700, owned by root
    try:
        with pytest.raises(DatabaseError, match=f"cannot enter {private} .*WEIPIAN_DB_DIR"):
            Cluster(private / "db").up()
    finally:
        shutil.rmtree(private)


def test_server_runs_as_weipian_when_root(pg_cluster):
    pid = int((pg_cluster.datadir / "postmaster.pid").read_text().split()[0])
    uid = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
               if line.startswith("Uid:"))
    with psycopg.connect(pg_cluster.url()) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("weipian",)
    if not IS_ROOT:
        pytest.skip("not root: the server runs as the invoking user, no account switch to check")
    assert pwd.getpwuid(uid).pw_name == ACCOUNT
    assert pwd.getpwuid(pg_cluster.datadir.stat().st_uid).pw_name == ACCOUNT


#: 100 rows, each cutting two circles of 16 000 vertices (256 kB of coordinates each)
FAULTING_QUERY = """SELECT sum(ST_Area(ST_Intersection(ST_Buffer(ST_Point(i, 0), 10, 4000),
                                                ST_Buffer(ST_Point(i + 5, 0), 10, 4000))))
                    FROM generate_series(1, 100) i"""


def _page_faults_of_a_second_run(cluster: Cluster) -> int:
    """Minor page faults of one backend running FAULTING_QUERY, after a first run."""
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    # a new backend: what an earlier statement freed moves glibc's own thresholds
    with psycopg.connect(cluster.url()) as conn:
        stat_file = Path(f"/proc/{conn.execute('SELECT pg_backend_pid()').fetchone()[0]}/stat")

        def faults() -> int:
            return int(stat_file.read_text().rsplit(")", 1)[1].split()[7])  # minflt

        conn.execute(FAULTING_QUERY)
        before = faults()
        conn.execute(FAULTING_QUERY)
        return faults() - before


def test_server_backends_keep_freed_memory_for_the_next_row(fresh_cluster, monkeypatch):
    # MALLOC_TUNABLES: the second run reuses what the first freed, so next to no
    # page faults (not one per row)
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    fresh_cluster.down()
    fresh_cluster.up()
    assert _page_faults_of_a_second_run(fresh_cluster) < 100
    # the caller's own settings come last and win: glibc's defaults of 128 kB
    # made fixed, every buffer is mapped and unmapped again, dozens of faults per row
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=131072:glibc.malloc.trim_threshold=131072"
                                         ":glibc.malloc.top_pad=131072")
    fresh_cluster.down()
    fresh_cluster.up()
    assert _page_faults_of_a_second_run(fresh_cluster) > 2000


def test_a_new_backend_has_postgis_loaded_before_its_first_geometry(pg_cluster):
    # loaded by the postmaster (shared_preload_libraries), not by each backend and
    # parallel worker on its first geometry
    with psycopg.connect(pg_cluster.url()) as conn:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        assert "/postgis-3.so" in Path(f"/proc/{pid}/maps").read_text()


def test_postgis_extension_can_be_created(database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION postgis")
        area = conn.execute("SELECT ST_Area('POLYGON((0 0, 10 0, 10 10, 0 10, 0 0))'::geometry)").fetchone()
        assert area == (100.0,)


def test_create_clone_and_drop_database(pg_cluster, database_url):
    source = dbname_of(database_url)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE marker (x int); INSERT INTO marker VALUES (42)")
    clone = source[:50] + "_clone"
    url = pg_cluster.create_database(clone, template=source)
    try:
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT x FROM marker").fetchone() == (42,)
        with pytest.raises(DatabaseError, match=f"cannot create database '{clone}'.*already exists"):
            pg_cluster.create_database(clone)
    finally:
        pg_cluster.drop_database(clone)
    pg_cluster.drop_database(clone)  # already gone: no error
    with psycopg.connect(pg_cluster.url("postgres")) as conn:
        assert conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (clone,)).fetchone() == (0,)


def test_find_pg_bindir_has_postgis():
    bindir = find_pg_bindir()
    assert (bindir / "initdb").is_file()
    version = bindir.parent.name
    assert Path(f"/usr/share/postgresql/{version}/extension/postgis.control").is_file()


def test_bad_pg_bindir_override_is_named(monkeypatch):
    monkeypatch.setenv("WEIPIAN_PG_BINDIR", "/nonexistent/bin")
    with pytest.raises(DatabaseError, match="WEIPIAN_PG_BINDIR=/nonexistent/bin has no initdb"):
        find_pg_bindir()


def test_default_datadir(monkeypatch):
    monkeypatch.setenv("WEIPIAN_DB_DIR", "/srv/wp/db")
    assert default_datadir() == Path("/srv/wp/db")
    monkeypatch.delenv("WEIPIAN_DB_DIR")
    assert default_datadir().parts[-2:] == (".weipian", "db")


# -- connections ----------------------------------------------------------------


def test_database_url_reads_the_environment(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql:///x")
    assert db.database_url() == "postgresql:///x"
    monkeypatch.setenv("DATABASE_URL", "")
    assert db.database_url() is None
    monkeypatch.delenv("DATABASE_URL")
    assert db.database_url() is None


def test_connect_uses_database_url(database_url):
    with db.connect() as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (dbname_of(database_url),)
        assert not conn.autocommit
    with db.connect(autocommit=True) as conn:
        assert conn.autocommit


def test_unreachable_database_url_is_one_line_without_password(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://me:s3cret@/nosuch?host=/nonexistent/sock")
    with pytest.raises(DatabaseError, match=r"cannot connect to DATABASE_URL \(host /nonexistent/sock") as err:
        db.connect()
    assert "s3cret" not in str(err.value)
    assert "\n" not in str(err.value)


def test_connect_uses_pgservice(pg_cluster, database_url, tmp_path, monkeypatch):
    service_file = tmp_path / "pg_service.conf"
    service_file.write_text(
        f"[weipian_test]\nhost={pg_cluster.datadir}\nport=5432\nuser=weipian\ndbname={dbname_of(database_url)}\n"
    )
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.setenv("PGSERVICEFILE", str(service_file))
    monkeypatch.setenv("PGSERVICE", "weipian_test")
    with db.connect() as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (dbname_of(database_url),)


def test_connect_starts_the_embedded_cluster_on_demand(fresh_cluster, monkeypatch):
    fresh_cluster.down()
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("PGSERVICE", raising=False)
    monkeypatch.setenv("WEIPIAN_DB_DIR", str(fresh_cluster.datadir))
    with db.connect() as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("weipian",)
    assert fresh_cluster.running()


# -- run_sql_file -----------------------------------------------------------------


def test_run_sql_file_runs_every_statement(database_url, tmp_path):
    path = tmp_path / "two.sql"
    path.write_text("\ufeff-- a BOM and a comment first\nCREATE TABLE t (s text);\n"
                    "INSERT INTO t VALUES ('100%'), ('稷山县');\n", encoding="utf-8")
    with db.connect() as conn:
        db.run_sql_file(conn, path)
        assert conn.execute("SELECT s FROM t ORDER BY s COLLATE \"C\"").fetchall() == [("100%",), ("稷山县",)]


def test_run_sql_file_accepts_comment_only_and_empty_files(database_url, tmp_path):
    (tmp_path / "empty.sql").write_text("")
    (tmp_path / "comment.sql").write_text("-- nothing yet\n")
    with db.connect() as conn:
        db.run_sql_file(conn, tmp_path / "empty.sql")
        db.run_sql_file(conn, tmp_path / "comment.sql")


def test_run_sql_file_error_names_file_and_line(database_url, tmp_path):
    path = tmp_path / "broken.sql"
    path.write_text("SELECT 1;\n\nSELECT * FROM no_such_table;\n")
    with db.connect() as conn, pytest.raises(DatabaseError, match='broken.sql line 3: relation "no_such_table"'):
        db.run_sql_file(conn, path)


# -- migrations ---------------------------------------------------------------------


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def recorded(conn) -> list[tuple]:
    return conn.execute("SELECT version, name FROM weipian.schema_migrations ORDER BY version").fetchall()


def test_migrations_apply_in_numeric_order_and_are_recorded(database_url, tmp_path):
    folder = tmp_path / "migrations"
    write(folder, "2_create.sql", "CREATE TABLE steps (n int, seq serial);")
    write(folder, "10_third.sql", "INSERT INTO steps (n) VALUES (10);")  # sorts first as text
    write(folder, "9_second.sql", "INSERT INTO steps (n) VALUES (9);")
    with db.connect(autocommit=True) as conn:
        assert db.migrate(conn, folder) == ["2_create", "9_second", "10_third"]
        assert conn.execute("SELECT n FROM steps ORDER BY seq").fetchall() == [(9,), (10,)]
        assert recorded(conn) == [(2, "2_create"), (9, "9_second"), (10, "10_third")]
        checksums = conn.execute("SELECT checksum, applied_at FROM weipian.schema_migrations").fetchall()
        assert all(len(c) == 64 and at is not None for c, at in checksums)


def test_rerun_applies_nothing_and_upgrade_applies_the_new_file(database_url, tmp_path):
    folder = tmp_path / "migrations"
    write(folder, "0001_base.sql", "CREATE TABLE base (x int);")
    with db.connect(autocommit=True) as conn:
        assert db.migrate(conn, folder) == ["0001_base"]
        assert db.migrate(conn, folder) == []
        write(folder, "0002_more.sql", "ALTER TABLE base ADD COLUMN y int;")
        assert db.migrate(conn, folder) == ["0002_more"]
        assert recorded(conn) == [(1, "0001_base"), (2, "0002_more")]


def test_changed_applied_migration_is_refused(database_url, tmp_path):
    folder = tmp_path / "migrations"
    path = write(folder, "0001_base.sql", "CREATE TABLE base (x int);")
    with db.connect(autocommit=True) as conn:
        db.migrate(conn, folder)
        path.write_text("CREATE TABLE base (x bigint);")
        write(folder, "0002_more.sql", "CREATE TABLE more (x int);")
        with pytest.raises(DatabaseError, match="0001_base.sql was changed after it was applied.*append-only"):
            db.migrate(conn, folder)
        assert recorded(conn) == [(1, "0001_base")]


def test_crlf_line_endings_are_not_a_change(database_url, tmp_path):
    folder = tmp_path / "migrations"
    path = write(folder, "0001_base.sql", "CREATE TABLE base (x int);\nCOMMENT ON TABLE base IS 'b';\n")
    with db.connect(autocommit=True) as conn:
        db.migrate(conn, folder)
        path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
        assert db.migrate(conn, folder) == []


def test_failing_migration_names_the_file_and_keeps_earlier_ones(database_url, tmp_path):
    folder = tmp_path / "migrations"
    write(folder, "0001_ok.sql", "CREATE TABLE ok (x int);")
    write(folder, "0002_bad.sql", "CREATE TABLE half (x int);\n\nINSERT INTO nowhere VALUES (1);\n")
    with db.connect(autocommit=True) as conn:
        with pytest.raises(DatabaseError, match='0002_bad.sql line 3: relation "nowhere" does not exist'):
            db.migrate(conn, folder)
        assert recorded(conn) == [(1, "0001_ok")]
        assert conn.execute("SELECT to_regclass('half')").fetchone() == (None,)  # rolled back whole


def test_migrate_commits_on_a_non_autocommit_connection(database_url, tmp_path):
    folder = tmp_path / "migrations"
    write(folder, "0001_base.sql", "CREATE TABLE base (x int);")
    with db.connect() as conn:
        conn.execute("SELECT 1")  # leaves a transaction open
        assert db.migrate(conn, folder) == ["0001_base"]
    with db.connect() as other:
        assert recorded(other) == [(1, "0001_base")]


def test_badly_named_and_duplicate_migrations_are_refused(database_url, tmp_path):
    with db.connect(autocommit=True) as conn:
        folder = tmp_path / "a"
        write(folder, "add_column.sql", "SELECT 1;")
        with pytest.raises(DatabaseError, match="add_column.sql: migration files are named NNNN_name.sql"):
            db.migrate(conn, folder)
        folder = tmp_path / "b"
        write(folder, "0003_x.sql", "SELECT 1;")
        write(folder, "3_y.sql", "SELECT 1;")
        with pytest.raises(DatabaseError, match="share version 3"):
            db.migrate(conn, folder)


def test_applied_migration_missing_from_folder_is_refused(database_url, tmp_path):
    folder = tmp_path / "migrations"
    path = write(folder, "0001_base.sql", "CREATE TABLE base (x int);")
    with db.connect(autocommit=True) as conn:
        db.migrate(conn, folder)
        path.unlink()
        with pytest.raises(DatabaseError, match="has migration 0001_base applied.*older than the database"):
            db.migrate(conn, folder)


def test_project_migrations_apply_to_the_template(migrated_database_url):
    files = sorted((SQL_DIR / "migrations").glob("*.sql"))
    with db.connect() as conn:
        assert len(recorded(conn)) == len(files)
        assert db.migrate(conn) == []


# -- the run_cli fixture ----------------------------------------------------------------


def test_run_cli_fails_the_test_with_the_output(run_cli):
    done = run_cli("no-such-command", check=False)
    assert done.returncode != 0
    with pytest.raises(pytest.fail.Exception, match="(?s)exited .*--- stderr ---"):
        run_cli("no-such-command")
