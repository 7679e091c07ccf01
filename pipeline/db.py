"""Where the database is, how to reach it, and how its schema is brought up to date.

Resolution order for :func:`connect`, most explicit first:

1. ``DATABASE_URL`` - a libpq URL or keyword string (CI, servers, tests);
2. ``PGSERVICE`` - a section of ``pg_service.conf``, the same file QGIS reads, so
   analysts configure the connection once for both;
3. the embedded cluster in :func:`pipeline.embedded.default_datadir`, started on
   demand, so a laptop needs no configuration at all.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict

from pipeline import SQL_DIR
from pipeline.embedded import Cluster, default_datadir
from pipeline.errors import DatabaseError

#: ``NNNN_name.sql``; the number, not the name, orders the files.
MIGRATION_FILE = re.compile(r"(\d+)_(\w+)\.sql")
#: Any constant: serialises concurrent ``migrate`` runs against one database.
MIGRATION_LOCK = 7_340_001
#: How often a backend busy in a statement looks whether its client is still there
#: (PostgreSQL 14+).  Without it a killed ``weipian`` leaves its backend running
#: the statement to its end, holding the county's lock, and the next run is refused.
CLIENT_CHECK = "1s"

SCHEMA_MIGRATIONS_DDL = """
CREATE SCHEMA IF NOT EXISTS weipian;
CREATE TABLE IF NOT EXISTS weipian.schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE weipian.schema_migrations IS '已执行的数据库迁移 (sql/migrations/NNNN_name.sql), one row per file';
COMMENT ON COLUMN weipian.schema_migrations.version IS '迁移编号 NNNN';
COMMENT ON COLUMN weipian.schema_migrations.name IS '文件名 (without .sql)';
COMMENT ON COLUMN weipian.schema_migrations.checksum IS 'sha256 of the file, line endings normalised';
COMMENT ON COLUMN weipian.schema_migrations.applied_at IS '执行时间';
"""


def database_url() -> str | None:
    """``DATABASE_URL`` if set and not empty, else None."""
    return os.environ.get("DATABASE_URL") or None


def connect(autocommit: bool = False) -> psycopg.Connection:
    """Open a connection following the resolution order in the module docstring."""
    url = database_url()
    if url:
        return _connect(url, autocommit, f"DATABASE_URL ({_describe(url)})", "check DATABASE_URL")
    service = os.environ.get("PGSERVICE")
    if service:
        # libpq reads PGSERVICE (and PGSERVICEFILE) itself, exactly as QGIS does.
        return _connect("", autocommit, f"PGSERVICE={service}", "check that service in pg_service.conf")
    cluster = Cluster(default_datadir())
    try:  # already up: one connection attempt, no subprocess
        return _session(psycopg.connect(cluster.conninfo(), autocommit=True), autocommit)
    except psycopg.OperationalError:
        cluster.up()
    return _connect(cluster.conninfo(), autocommit, f"the embedded database in {cluster.datadir}",
                    "see `weipian db status` and its server.log")


def _connect(conninfo: str, autocommit: bool, what: str, remedy: str) -> psycopg.Connection:
    try:
        conn = psycopg.connect(conninfo, autocommit=True)
    except psycopg.OperationalError as err:
        raise DatabaseError(f"cannot connect to {what}: {_one_line(err)}; {remedy}") from None
    return _session(conn, autocommit)


def _session(conn: psycopg.Connection, autocommit: bool) -> psycopg.Connection:
    """Session settings every weipian connection has, set outside any transaction."""
    if conn.info.server_version >= 140000:
        conn.execute("SELECT set_config('client_connection_check_interval', %s, false)", (CLIENT_CHECK,))
    conn.autocommit = autocommit
    return conn


def _describe(url: str) -> str:
    """Host and database of a conninfo, never its password."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "unparsable"
    return f"host {parts.get('host', 'default')}, database {parts.get('dbname', 'default')}"


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def run_sql_file(conn: psycopg.Connection, path: Path) -> None:
    """Execute a whole SQL file (several statements, no parameters) in one round trip.

    Without parameters psycopg uses the simple query protocol, which accepts many
    statements and leaves ``%`` alone.  psql meta-commands (``\\set``, ``\\i``) are
    not understood.  In a non-autocommit connection the file joins the current
    transaction; the caller commits.  Errors name the file and the line.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8-sig")
    if not text.strip():
        return
    try:
        conn.execute(text)  # type: ignore[arg-type]  # a file, not a literal
    except psycopg.Error as err:
        where = path.name
        position = err.diag.statement_position
        if position and position.isdigit():
            where += f" line {text[: int(position) - 1].count(chr(10)) + 1}"
        message = err.diag.message_primary or str(err)
        raise DatabaseError(f"{where}: {_one_line(message)}") from err


def migrate(conn: psycopg.Connection, migrations_dir: Path | None = None) -> list[str]:
    """Apply the migrations not yet recorded in ``weipian.schema_migrations``.

    Each file runs in its own transaction together with its bookkeeping row, so
    a failure leaves the earlier files applied and the failing one not at all.
    Migrations are append-only: a recorded file whose checksum changed, or that
    disappeared, is refused rather than silently diverging from the code.  An
    open transaction on ``conn`` is committed first.  Statements that cannot run
    in a transaction (``CREATE INDEX CONCURRENTLY``, ``VACUUM``) do not belong here.

    Returns the names (``NNNN_name``) applied, in order.
    """
    files = _migration_files(Path(migrations_dir) if migrations_dir else SQL_DIR / "migrations")
    if not conn.autocommit and conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.commit()
    with conn.transaction():
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
    try:
        with conn.transaction():
            conn.execute(SCHEMA_MIGRATIONS_DDL)
            rows = conn.execute("SELECT version, name, checksum FROM weipian.schema_migrations")
            applied = {version: (name, checksum) for version, name, checksum in rows}
        _check_applied(applied, files)
        done = []
        for version, path in sorted(files.items()):
            if version in applied:
                continue
            with conn.transaction():
                run_sql_file(conn, path)
                conn.execute(
                    "INSERT INTO weipian.schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (version, path.stem, _checksum(path)),
                )
            done.append(path.stem)
        return done
    finally:
        if not conn.closed:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))


def _migration_files(folder: Path) -> dict[int, Path]:
    if not folder.is_dir():
        raise DatabaseError(f"migrations folder {folder} does not exist")
    files: dict[int, Path] = {}
    for path in sorted(folder.glob("*.sql")):
        match = MIGRATION_FILE.fullmatch(path.name)
        if not match:
            raise DatabaseError(f"{path}: migration files are named NNNN_name.sql (e.g. 0007_add_landuse_class.sql)")
        version = int(match.group(1))
        if version in files:
            raise DatabaseError(f"{path.name} and {files[version].name} share version {version}; renumber one")
        files[version] = path
    return files


def _check_applied(applied: dict[int, tuple[str, str]], files: dict[int, Path]) -> None:
    for version, (name, checksum) in sorted(applied.items()):
        path = files.get(version)
        if path is None:
            raise DatabaseError(
                f"the database has migration {name} applied but the migrations folder has no file "
                f"numbered {version}; this weipian is older than the database, update it"
            )
        if _checksum(path) != checksum:
            raise DatabaseError(
                f"{path.name} was changed after it was applied (as {name}); migrations are append-only: "
                "restore the file and put the change in a new NNNN_name.sql"
            )


def _checksum(path: Path) -> str:
    """sha256 with CRLF folded to LF, so a Windows checkout does not look like an edit."""
    return hashlib.sha256(path.read_bytes().replace(b"\r\n", b"\n")).hexdigest()
