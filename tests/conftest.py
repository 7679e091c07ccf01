"""Shared fixtures: one real PostGIS server per test session, a fresh database per test.

The server is the embedded :class:`pipeline.embedded.Cluster` in a throwaway
folder directly under /tmp (a short path keeps the socket under the 107-byte
limit; as root the server runs as the ``weipian`` account, which can enter
/tmp).  Tests never touch the project's own ``.weipian/db``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest

from pipeline import db
from pipeline.embedded import Cluster


@pytest.fixture(scope="session")
def pg_cluster():
    """A started Cluster for the whole session; stopped and deleted at the end, pass or fail."""
    folder = Path(tempfile.mkdtemp(prefix="wp"))
    cluster = Cluster(folder)
    try:
        cluster.up()
        yield cluster
    finally:
        cluster.down()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def migrated_template(pg_cluster):
    """A database with the project's sql/migrations applied, to clone (CREATE DATABASE ... TEMPLATE).

    Migrating once per session instead of once per test saves ``CREATE EXTENSION
    postgis`` and friends in every test.
    """
    name = "wp_template"
    url = pg_cluster.create_database(name)
    with psycopg.connect(url, autocommit=True) as conn:
        db.migrate(conn)
    yield name
    pg_cluster.drop_database(name)


def _database_for(request, cluster: Cluster, monkeypatch, template: str | None = None):
    """Create a uniquely named database, point DATABASE_URL at it, drop it afterwards."""
    slug = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")[:40]
    name = f"t_{slug}_{uuid.uuid4().hex[:8]}"
    url = cluster.create_database(name, template=template)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.delenv("PGSERVICE", raising=False)
    try:
        yield url
    finally:
        cluster.drop_database(name)


@pytest.fixture
def database_url(request, pg_cluster, monkeypatch):
    """URL of a fresh, empty database for this test (no schema, no PostGIS yet).

    ``DATABASE_URL`` is set to it for the test too, so in-process ``db.connect()``
    reaches the same database as the CLI run by ``run_cli``.
    """
    yield from _database_for(request, pg_cluster, monkeypatch)


@pytest.fixture
def migrated_database_url(request, pg_cluster, migrated_template, monkeypatch):
    """Like ``database_url``, but a clone of the session's migrated template."""
    yield from _database_for(request, pg_cluster, monkeypatch, template=migrated_template)


@pytest.fixture
def run_cli(database_url):
    """Return ``run_cli(*args, env=None, check=True)`` running ``python -m pipeline ARGS``.

    The child gets ``DATABASE_URL`` = this test's database, no ``PGSERVICE``, and
    UTF-8 output (Chinese names must survive a C-locale CI).  ``env`` entries
    override; a value of None removes the variable.  With ``check`` a non-zero
    exit fails the test, showing stdout and stderr.
    """

    def run(*args, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
        child_env = {k: v for k, v in os.environ.items() if k != "PGSERVICE"}
        child_env.update(DATABASE_URL=database_url, PYTHONIOENCODING="utf-8")
        for key, value in (env or {}).items():
            if value is None:
                child_env.pop(key, None)
            else:
                child_env[key] = str(value)
        cmd = [sys.executable, "-m", "pipeline", *map(str, args)]
        done = subprocess.run(cmd, env=child_env, capture_output=True, text=True,
                              encoding="utf-8", errors="replace")
        if check and done.returncode != 0:
            pytest.fail(
                f"weipian {' '.join(map(str, args))} exited {done.returncode}\n"
                f"--- stdout ---\n{done.stdout}\n--- stderr ---\n{done.stderr}",
                pytrace=False,
            )
        return done

    return run
