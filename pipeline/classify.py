"""Classify stage: the desk judgement and the final class of each change polygon.

All of it is set-based SQL in sql/20_classify/, run in this order inside one
transaction per batch, so readers see the previous results or the new ones.
The rules themselves live in one PL/pgSQL function, weipian.classify_polygon
(sql/20_classify/00_classify_polygon.sql), which the steps call once per
polygon in a statement that PostgreSQL shares out among parallel workers.
"""

from __future__ import annotations

import logging
import os
import re

import psycopg
from psycopg import sql

from pipeline import SQL_DIR
from pipeline.config import County
from pipeline.db import run_sql_file

log = logging.getLogger(__name__)

#: The run order of the classification (each file's header says what it does).
CLASSIFY_STEPS = [
    "05_parts.sql",
    "10_polygons.sql",
    "20_pieces.sql",
    "60_publish.sql",
]
#: Installed (CREATE OR REPLACE) when its function body differs from the database's.
FUNCTIONS_FILE = SQL_DIR / "20_classify" / "00_classify_polygon.sql"
FUNCTION_NAME = "classify_polygon"
_BODY = re.compile(r"\$fn\$(.*)\$fn\$", re.S)
#: Any constant: serialises installing the function from concurrent runs.
FUNCTIONS_LOCK = 7_340_002


def session_settings() -> dict[str, str]:
    """Planner settings for the batch transaction (SET LOCAL).

    20_pieces.sql is one statement of a few thousand very expensive function
    calls; its table is small (a batch of one county), below PostgreSQL's
    minimum for a parallel scan, so that minimum is lifted. The setup and tuple
    costs keep their defaults: the small statements inside the function must
    never start parallel workers of their own (they would, per polygon, when the
    outer statement runs serially). The leader only gathers rows: executing
    the function itself in the leader was measured several times slower.
    JIT would compile expression code for plans that cost so much and only
    costs time here. The statement inside the function (the lookup of the
    reference polygons near a polygon) is planned once per session, not again
    for each polygon: PL/pgSQL would otherwise keep planning it with each
    polygon's values when those plans look cheaper than the generic one.
    Bitmap scans are off: in a database holding several counties the generic
    plan of that lookup ANDs the GiST probe with the county_code B-tree, which
    reads all of the county's 300 000 entries per polygon (19 ms instead of
    0.6 ms; a province county took 47 s to classify instead of 2); a plain GiST
    index scan that filters on county_code is what a probe of a few parcels
    needs.
    Workers: WEIPIAN_PARALLEL_WORKERS (default: the cores of this machine; 0
    turns parallel query off), capped by the server's max_parallel_workers.
    """
    workers = os.environ.get("WEIPIAN_PARALLEL_WORKERS")
    n = int(workers) if workers and workers.strip().isdigit() else (os.cpu_count() or 2)
    return {
        "jit": "off",
        "plan_cache_mode": "force_generic_plan",
        "enable_bitmapscan": "off",
        "work_mem": "256MB",
        "max_parallel_workers_per_gather": str(n),
        "min_parallel_table_scan_size": "0",
        "parallel_leader_participation": "off" if n > 0 else "on",
    }


#: The tables the classification reads; analysed when their statistics are stale.
READ_TABLES = ("change_polygon", "landuse", "approval", "farmland", "township", "plan_zone", "field_check")


def analyze_stale(conn: psycopg.Connection) -> list[str]:
    """ANALYZE the input tables never analysed, or changed by more than 10 % since.

    A layer just loaded has no statistics until autovacuum gets to it; the
    planner then guesses and may scan 300 000 parcels per change polygon. Returns
    the tables analysed.
    """
    stale = [r[0] for r in conn.execute(
        """SELECT relname FROM pg_stat_user_tables
           WHERE schemaname = 'weipian' AND relname = ANY(%s)
             AND (coalesce(last_analyze, last_autoanalyze) IS NULL
                  OR n_mod_since_analyze > 0.1 * greatest(n_live_tup, 1000))""",
        (list(READ_TABLES),),
    )]
    # an ANALYZE rolled back with its caller's transaction leaves the counters
    # above saying "analysed" and no statistics: then a table that has rows and
    # no pg_stats is stale too (without them the planner takes a batch for one
    # row and classifies it serially)
    for (name,) in conn.execute(
            """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = 'weipian' AND c.relname = ANY(%s)
                 AND NOT EXISTS (SELECT 1 FROM pg_stats s
                                 WHERE s.schemaname = 'weipian' AND s.tablename = c.relname)""",
            (list(READ_TABLES),)).fetchall():
        if name not in stale and conn.execute(
                sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier("weipian", name))).fetchone()[0]:
            stale.append(name)
    done = []
    for name in stale:
        # another county's ANALYZE of this shared table may hold its lock until that
        # county's transaction ends: then its statistics are recent, go on without
        before = conn.execute("SELECT current_setting('lock_timeout')").fetchone()[0]
        try:
            with conn.transaction():
                conn.execute("SELECT set_config('lock_timeout', '2s', true)")
                conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier("weipian", name)))
                conn.execute("SELECT set_config('lock_timeout', %s, true)", (before,))
            done.append(name)
        except psycopg.errors.LockNotAvailable:
            log.info("weipian.%s: another session is analysing it; its statistics are used as they are", name)
    return done


def install_functions(conn: psycopg.Connection) -> bool:
    """Create or replace weipian.classify_polygon when the file's body differs; True if it did.

    The database must hold exactly one function of that name, with this body (an
    earlier version with other arguments is dropped by the file).
    """
    text = FUNCTIONS_FILE.read_text(encoding="utf-8")
    body = _BODY.search(text).group(1)

    def current() -> list[str]:
        return [r[0] for r in conn.execute(
            """SELECT p.prosrc FROM pg_proc p
               WHERE p.pronamespace = to_regnamespace('weipian') AND p.proname = %s""",
            (FUNCTION_NAME,),
        )]

    if current() == [body]:
        return False
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (FUNCTIONS_LOCK,))
        if current() == [body]:
            return False
        run_sql_file(conn, FUNCTIONS_FILE)
    log.info("installed weipian.%s from %s", FUNCTION_NAME, FUNCTIONS_FILE.name)
    return True


def set_params(conn: psycopg.Connection, params: dict[str, object]) -> None:
    """Pass parameters to the SQL files as transaction-local settings `weipian.*`."""
    for name, value in params.items():
        conn.execute("SELECT set_config(%s, %s, true)", (f"weipian.{name}", str(value)))


def classify_batch(conn: psycopg.Connection, county: County, batch: str) -> dict[str, int]:
    """Judge every polygon of one batch; return the number of polygons per final class."""
    install_functions(conn)
    analyze_stale(conn)
    with conn.transaction():
        for name, value in session_settings().items():
            conn.execute("SELECT set_config(%s, %s, true)", (name, value))
        set_params(conn, {
            "county_code": county.code,
            "batch": batch,
            "min_part_m2": county.settings["min_part_m2"],
        })
        for step in CLASSIFY_STEPS:
            run_sql_file(conn, SQL_DIR / "20_classify" / step)
        conn.execute("SELECT weipian.refresh_county_views(%s)", (county.code,))
    rows = conn.execute(
        """SELECT class, count(*) FROM weipian.change_result
           WHERE county_code = %s AND batch = %s GROUP BY class""",
        (county.code, batch),
    ).fetchall()
    return dict(rows)


def unknown_codes(conn: psycopg.Connection, county: County, batch: str) -> list[str]:
    """Warnings for BHLX / PZLX values outside the tables (judged as 建设用地 / construction permit)."""
    warnings = []
    for (value, n) in conn.execute(
        """SELECT c.bhlx, count(*) FROM weipian.change_polygon c
           WHERE c.county_code = %s AND c.batch = %s
             AND NOT EXISTS (SELECT 1 FROM weipian.change_type t WHERE t.bhlx = c.bhlx)
           GROUP BY c.bhlx ORDER BY c.bhlx""",
        (county.code, batch),
    ):
        warnings.append(f"批次 {batch}：变化类型 BHLX '{value}'（{n} 个图斑）不在变化类型表中，按建设用地判定")
    for (value, n) in conn.execute(
        """SELECT a.pzlx, count(*) FROM weipian.approval a
           WHERE a.county_code = %s
             AND NOT EXISTS (SELECT 1 FROM weipian.approval_type t WHERE t.pzlx = a.pzlx)
           GROUP BY a.pzlx ORDER BY a.pzlx""",
        (county.code,),
    ):
        warnings.append(f"批准类型 PZLX '{value}'（{n} 宗）不在批准类型表中，按建设用地批准处理")
    return warnings
