"""Classify stage: the desk judgement and the final class of each change polygon.

All of it is set-based SQL in sql/20_classify/, run in this order inside one
transaction per batch, so readers see the previous results or the new ones.
"""

from __future__ import annotations

import logging

import psycopg

from pipeline import SQL_DIR
from pipeline.config import County
from pipeline.db import run_sql_file

log = logging.getLogger(__name__)

#: The run order of the classification (each file's header says what it does).
CLASSIFY_STEPS = [
    "10_overlays.sql",
    "20_desk_pieces.sql",
    "30_judgement.sql",
    "40_final_pieces.sql",
    "50_township_pieces.sql",
    "60_publish.sql",
]


def set_params(conn: psycopg.Connection, params: dict[str, object]) -> None:
    """Pass parameters to the SQL files as transaction-local settings `weipian.*`."""
    for name, value in params.items():
        conn.execute("SELECT set_config(%s, %s, true)", (f"weipian.{name}", str(value)))


def classify_batch(conn: psycopg.Connection, county: County, batch: str) -> dict[str, int]:
    """Judge every polygon of one batch; return the number of polygons per final class."""
    with conn.transaction():
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
