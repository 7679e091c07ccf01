"""An embedded PostGIS cluster that lives in one folder.

A county team should get a working database with ``weipian db up`` and nothing
else: no server administration, no password, no port to collide with another
PostgreSQL on the machine.  So the cluster is an ordinary ``initdb`` folder run
by Debian's PostgreSQL binaries, reachable only through a unix socket inside
that folder (``listen_addresses = ''``) with trust authentication; whoever can
enter the folder can use the database, nobody on the network can.

PostgreSQL refuses to run as root, and CI runs as root.  Then the binaries run
as the unprivileged system account ``weipian`` (created on demand), the folder
is handed to it, and root connects through the socket as database user
``weipian``.
"""

from __future__ import annotations

import os
import pwd
import re
import stat
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from pipeline import PROJECT_ROOT
from pipeline.errors import DatabaseError

#: System account that runs the server when we are root.
ACCOUNT = "weipian"
#: Only names the socket file (``.s.PGSQL.5432``); no TCP port is opened.
PORT = 5432
#: sun_path holds 108 bytes including the terminating NUL.
SOCKET_PATH_LIMIT = 107
INSTALL_HINT = "apt-get install postgresql-15 postgresql-15-postgis-3 (or `make setup`)"

#: Written to ``<datadir>/weipian.conf`` at every start, so changing a value here
#: reaches existing clusters.  Modest memory: the pipeline shares a laptop with QGIS.
SETTINGS = {
    "listen_addresses": "''",
    "port": str(PORT),  # explicit, so a PGPORT in the environment cannot move the socket
    "max_connections": "50",
    "shared_buffers": "'256MB'",
    "work_mem": "'64MB'",
    "maintenance_work_mem": "'256MB'",
    "effective_cache_size": "'1GB'",
    "max_wal_size": "'2GB'",
    # Losing the last few hundred ms of commits after a crash is harmless for a
    # rerunnable pipeline; corruption is still prevented (fsync stays on).
    "synchronous_commit": "off",
    # No replica, no archive: the WAL only has to recover from a crash. Then a
    # table emptied in the loading transaction (ingest.py, _take_table) is
    # written without WAL and synced once at commit, instead of written twice.
    "wal_level": "minimal",
    "max_wal_senders": "0",
    # PostGIS loaded once by the postmaster, so that a new backend or parallel
    # worker does not load and link it (with GEOS and PROJ) on its first
    # geometry: 1 ms for its first ST_Area instead of 10-13 ms, 10 ms instead of
    # 26 for its first ST_Transform; a classification starts two workers and
    # every command a new connection.
    "shared_preload_libraries": "'postgis-3'",
    # Containers often mount a 64 MB /dev/shm, too small for parallel hash joins.
    "dynamic_shared_memory_type": "mmap",
    "log_line_prefix": "'%m [%p] '",
}


def find_pg_bindir() -> Path:
    """Return the newest ``/usr/lib/postgresql/<v>/bin`` whose version has PostGIS.

    A PostgreSQL without the matching ``postgresql-<v>-postgis-3`` package is
    skipped: ``CREATE EXTENSION postgis`` would fail much later and less clearly.
    ``WEIPIAN_PG_BINDIR`` overrides the search (other layouts than Debian's).
    """
    override = os.environ.get("WEIPIAN_PG_BINDIR")
    if override:
        bindir = Path(override)
        if (bindir / "initdb").is_file():
            return bindir
        raise DatabaseError(f"WEIPIAN_PG_BINDIR={override} has no initdb; point it at PostgreSQL's bin folder")
    found, without_postgis = [], []
    for bindir in Path("/usr/lib/postgresql").glob("*/bin"):
        version = bindir.parent.name
        if not re.fullmatch(r"\d+(\.\d+)?", version) or not (bindir / "initdb").is_file():
            continue
        if Path(f"/usr/share/postgresql/{version}/extension/postgis.control").is_file():
            found.append((tuple(int(p) for p in version.split(".")), bindir))
        else:
            without_postgis.append(version)
    if found:
        return max(found)[1]
    seen = f"found PostgreSQL {', '.join(sorted(without_postgis))} without PostGIS; " if without_postgis else ""
    raise DatabaseError(
        f"no PostgreSQL with PostGIS under /usr/lib/postgresql ({seen}checked <v>/bin/initdb and "
        f"/usr/share/postgresql/<v>/extension/postgis.control); install it: {INSTALL_HINT}"
    )


def default_datadir() -> Path:
    """``$WEIPIAN_DB_DIR`` if set, else ``<project root>/.weipian/db``."""
    env = os.environ.get("WEIPIAN_DB_DIR")
    return Path(env).expanduser() if env else PROJECT_ROOT / ".weipian" / "db"


#: glibc's allocator settings for the server (GLIBC_TUNABLES; other C libraries
#: ignore them). With the defaults, every block over 128 kB freed by GEOS or by a
#: memory context goes back to the kernel (munmap, or the heap's top trimmed)
#: and is faulted in, zeroed, again for the next polygon: the classification's
#: parallel workers spent a sixth of their CPU in the kernel, 100 000 page
#: faults per batch of 3 000 polygons. Blocks up to 16 MB now come from the
#: heap, which keeps up to 64 MB free: 24 000 faults, and the batch classified
#: in 0.85 of the time (bench/out, alternating runs; README, Performance).
MALLOC_TUNABLES = ("glibc.malloc.mmap_threshold=16777216:glibc.malloc.trim_threshold=67108864"
                   ":glibc.malloc.top_pad=16777216")


def _server_env() -> dict[str, str]:
    """The environment for pg_ctl and the server.

    Without PG* variables: PGDATA, PGPORT etc. must not steer the server. With
    MALLOC_TUNABLES, ahead of any GLIBC_TUNABLES of the caller's (the last
    setting of a name wins, so the caller's own stay in force).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["GLIBC_TUNABLES"] = ":".join(filter(None, [MALLOC_TUNABLES, env.get("GLIBC_TUNABLES")]))
    return env


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class Cluster:
    """A PostgreSQL data directory plus the socket and log beside its files.

    Parameters
    ----------
    datadir : Path
        The ``PGDATA`` folder; created (with parents) by :meth:`up`.  The socket
        ``.s.PGSQL.5432`` and ``server.log`` live in it too, so the whole database
        moves, or is deleted, as one folder.
    dbname, user : str
        Database created by :meth:`up` and the superuser made by ``initdb``.
    """

    def __init__(self, datadir: Path, dbname: str = "weipian", user: str = "weipian"):
        self.datadir = Path(datadir).expanduser().resolve()
        self.dbname = dbname
        self.user = user
        self.log = self.datadir / "server.log"
        self._bindir: Path | None = None

    def __repr__(self) -> str:
        return f"Cluster({str(self.datadir)!r})"

    # -- state ---------------------------------------------------------------

    def initialized(self) -> bool:
        try:
            return (self.datadir / "PG_VERSION").is_file()
        except PermissionError:
            raise DatabaseError(
                f"cannot read {self.datadir}: it belongs to another user (root runs it as '{ACCOUNT}'); "
                "use the same user as before or set WEIPIAN_DB_DIR to another folder"
            ) from None

    def running(self) -> bool:
        """Ask ``pg_ctl status``; exit 0 means a live postmaster owns the folder."""
        if not self.initialized() or (_is_root() and not _account_exists()):
            return False
        return self._pg("pg_ctl", "status", "-D", str(self.datadir)).returncode == 0

    def status(self) -> dict:
        return {
            "datadir": str(self.datadir),
            "initialized": self.initialized(),
            "running": self.running(),
            "url": self.url(),
        }

    def conninfo(self, dbname: str | None = None) -> str:
        return make_conninfo(host=str(self.datadir), port=PORT, user=self.user, dbname=dbname or self.dbname)

    def url(self, dbname: str | None = None) -> str:
        host = quote(str(self.datadir), safe="")
        return f"postgresql://{quote(self.user, safe='')}@/{quote(dbname or self.dbname, safe='')}?host={host}&port={PORT}"

    # -- lifecycle -----------------------------------------------------------

    def up(self) -> None:
        """Initialise if needed, start if stopped, and make sure ``dbname`` exists.

        When the server already runs this costs one ``pg_ctl status`` and one
        connection, so every command may call it.
        """
        self._check_socket_path()
        if not self.running():
            self._prepare_datadir()
            if not self.initialized():
                self._initdb()
            self._write_settings()
            if _is_root():
                self._hand_over()
            self._start()
        self._ensure_database(self.dbname)

    def down(self) -> None:
        """``pg_ctl stop -m fast``: roll back open transactions, disconnect, stop."""
        if not self.running():
            return
        done = self._pg("pg_ctl", "stop", "-D", str(self.datadir), "-m", "fast", "-w", "-t", "60", "-s")
        if done.returncode != 0 and self.running():
            raise DatabaseError(f"PostgreSQL in {self.datadir} did not stop: {_one_line(done.stderr)}")

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create database ``name`` (optionally cloned from ``template``) and return its URL."""
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            query += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        try:
            with self._admin() as conn:
                conn.execute(query)
        except psycopg.Error as err:
            raise DatabaseError(f"cannot create database {name!r} in {self.datadir}: {_one_line(err)}") from None
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop ``name`` if it exists, disconnecting its sessions (``WITH (FORCE)``)."""
        query = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        try:
            with self._admin() as conn:
                conn.execute(query)
        except psycopg.Error as err:
            raise DatabaseError(f"cannot drop database {name!r} in {self.datadir}: {_one_line(err)}") from None

    # -- internals -----------------------------------------------------------

    @property
    def bindir(self) -> Path:
        if self._bindir is None:
            self._bindir = find_pg_bindir()
        return self._bindir

    def _pg(self, program: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run a PostgreSQL binary, as the ``weipian`` account when we are root.

        ``cwd="/"``: the account may not enter root's working directory, and
        initdb/pg_ctl complain when they cannot.
        """
        cmd = [str(self.bindir / program), *args]
        if _is_root():
            cmd = ["runuser", "-u", ACCOUNT, "--", *cmd]
        return subprocess.run(
            cmd, cwd="/", env=_server_env(), stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=timeout,
        )

    def _check_socket_path(self) -> None:
        socket = self.datadir / f".s.PGSQL.{PORT}"
        size = len(os.fsencode(str(socket)))
        if size > SOCKET_PATH_LIMIT:
            raise DatabaseError(
                f"socket path {socket} is {size} bytes, over the {SOCKET_PATH_LIMIT}-byte unix-socket limit; "
                "set WEIPIAN_DB_DIR to a shorter folder, e.g. /srv/weipian/db"
            )

    def _prepare_datadir(self) -> None:
        """Create the folder; as root also the account, and check it can reach the folder."""
        try:
            self.datadir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise DatabaseError(f"cannot create {self.datadir}: {err.strerror}; set WEIPIAN_DB_DIR to a writable folder") from None
        if _is_root():
            _ensure_account()
            _check_traversable(self.datadir)

    def _initdb(self) -> None:
        if any(self.datadir.iterdir()):
            raise DatabaseError(
                f"{self.datadir} is not empty and holds no PostgreSQL cluster (no PG_VERSION); "
                "empty it or set WEIPIAN_DB_DIR to a new folder"
            )
        if _is_root():
            self._hand_over()
        done = self._pg(
            "initdb", "-D", str(self.datadir), "-U", self.user, "--auth=trust",
            "--encoding=UTF8", f"--locale={_locale()}", "--no-instructions",
        )
        if done.returncode != 0:
            raise DatabaseError(f"initdb failed in {self.datadir}: {_one_line(done.stderr)[-400:]}")

    def _write_settings(self) -> None:
        """Refresh ``weipian.conf`` and make ``postgresql.conf`` include it (once)."""
        directory = '"' + str(self.datadir) + '"'  # double quotes: a list element may hold spaces
        lines = [f"{k} = {v}" for k, v in SETTINGS.items()]
        lines.append("unix_socket_directories = '" + directory.replace("'", "''") + "'")
        header = "# Written by weipian at every start; edits are overwritten.\n"
        (self.datadir / "weipian.conf").write_text(header + "\n".join(lines) + "\n")
        main = self.datadir / "postgresql.conf"
        include = "include_if_exists = 'weipian.conf'"
        if include not in main.read_text():
            with main.open("a") as f:
                f.write(f"\n{include}\n")

    def _hand_over(self) -> None:
        """``chown -R`` the folder to the account: files root wrote must stay writable."""
        entry = pwd.getpwnam(ACCOUNT)
        done = subprocess.run(
            ["chown", "-R", f"{entry.pw_uid}:{entry.pw_gid}", str(self.datadir)],
            capture_output=True, text=True,
        )
        if done.returncode != 0:
            raise DatabaseError(
                f"cannot give {self.datadir} to account '{ACCOUNT}': {_one_line(done.stderr)}; "
                "set WEIPIAN_DB_DIR to a folder on a local disk"
            )

    def _start(self) -> None:
        done = self._pg("pg_ctl", "start", "-D", str(self.datadir), "-l", str(self.log), "-w", "-t", "60", "-s")
        if done.returncode != 0 and not self.running():  # running: another process won the race
            raise DatabaseError(
                f"PostgreSQL did not start in {self.datadir}: {self._log_tail() or _one_line(done.stderr)} "
                f"(full log: {self.log})"
            )

    def _log_tail(self, lines: int = 3) -> str:
        try:
            tail = self.log.read_text(errors="replace").strip().splitlines()[-lines:]
        except OSError:
            return ""
        return " | ".join(line.strip() for line in tail)

    def _admin(self) -> psycopg.Connection:
        return psycopg.connect(self.conninfo("postgres"), autocommit=True, connect_timeout=10)

    def _ensure_database(self, name: str) -> None:
        """Create ``name`` if missing; retry briefly while the server finishes starting."""
        deadline = time.monotonic() + 30
        while True:
            try:
                with self._admin() as conn:
                    if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                        return
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                    return
            except psycopg.errors.DuplicateDatabase:
                return  # created concurrently
            except psycopg.OperationalError as err:
                if time.monotonic() > deadline:
                    raise DatabaseError(
                        f"PostgreSQL in {self.datadir} does not accept connections: {_one_line(err)} "
                        f"(log: {self.log})"
                    ) from None
                time.sleep(0.2)


# -- the unprivileged account (root only) -----------------------------------


def _is_root() -> bool:
    return os.geteuid() == 0


def _account_exists() -> bool:
    try:
        pwd.getpwnam(ACCOUNT)
        return True
    except KeyError:
        return False


def _ensure_account() -> None:
    if _account_exists():
        return
    done = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", ACCOUNT],
        capture_output=True, text=True,
    )
    if done.returncode != 0 and not _account_exists():
        raise DatabaseError(
            f"PostgreSQL cannot run as root and creating the account '{ACCOUNT}' failed "
            f"({_one_line(done.stderr)}); create it or run weipian as a normal user"
        )


def _check_traversable(datadir: Path) -> None:
    """Every parent of the folder must be enterable (x bit) by the account.

    Checked from the permission bits up front because the server would only
    report a bare "Permission denied" in its log.
    """
    entry = pwd.getpwnam(ACCOUNT)
    groups = set(os.getgrouplist(ACCOUNT, entry.pw_gid))
    for parent in reversed(datadir.parents):
        st = parent.stat()
        if st.st_uid == entry.pw_uid:
            ok = st.st_mode & stat.S_IXUSR
        elif st.st_gid in groups:
            ok = st.st_mode & stat.S_IXGRP
        else:
            ok = st.st_mode & stat.S_IXOTH
        if not ok:
            raise DatabaseError(
                f"account '{ACCOUNT}' (PostgreSQL may not run as root) cannot enter {parent} "
                f"(mode {stat.filemode(st.st_mode)}); set WEIPIAN_DB_DIR to a folder under /srv or /tmp, "
                f"or run `chmod o+x {parent}`"
            )


def _locale() -> str:
    """C.UTF-8 when the system has it (character classes for Chinese text), else C."""
    try:
        names = subprocess.run(["locale", "-a"], capture_output=True, text=True).stdout.split()
    except OSError:
        return "C"
    return "C.UTF-8" if {"C.utf8", "C.UTF-8"} & set(names) else "C"
