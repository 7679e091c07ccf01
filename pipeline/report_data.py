"""What the report files are made of, read from PostGIS once per selection.

Every number a report shows is computed in SQL (sql/30_statistics and
sql/40_report), rounded there once per cell as Decision 13 says, and only
arranged in Python. The files are then written from this one snapshot, so the
workbook, the Markdown and the PDF cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import psycopg
import shapely

from pipeline import SQL_DIR
from pipeline.classify import set_params
from pipeline.config import County
from pipeline.errors import DatabaseError
from pipeline.stats import Selection

REPORT_SQL = SQL_DIR / "40_report"

#: Final classes in the order of the tables, with their Chinese names.
CLASSES = ("legal", "unchanged", "agri_adjust", "illegal")
#: Illegal sub-types in the order of the tables (the issue's order).
ILLEGAL_SUBTYPES = ("wbjy", "wpxj", "lsyd_cq", "ssny_wba")
SUBTYPE_ZH = {"wbjy": "未报即用", "wpxj": "未批先建", "lsyd_cq": "临时用地超期",
              "ssny_wba": "未备案设施农用地", "bnpbj": "本年批准本年建设", "wnpbj": "往年批准本年建设"}


@dataclass
class ReportData:
    county: County
    selection: Selection
    #: township_stat rows as dicts (township rows in rank order, the county row last)
    towns: list[dict]
    #: the township_stat-shaped row of what lies outside every township
    outside: dict
    #: 10_polygon_sheet.sql rows, with ``geom`` (shapely) added
    polygons: list[dict]
    #: (unit, xzqdm, subtype) → {n, area_mu, cultivated_mu, farmland_mu}
    subtypes: dict[tuple[str, str | None, str], dict]
    #: 40_field_check_matrix.sql rows
    checks: list[dict]
    #: township code → (name, shapely geometry), in code order
    township_shapes: dict[str, tuple[str, object]]
    #: (layer kind, file, features quarantined)
    quarantined: list[tuple[str, str, int]]

    @property
    def county_row(self) -> dict:
        return next(t for t in self.towns if t["xzqdm"] == self.county.code and t["rank"] is None)

    @property
    def township_rows(self) -> list[dict]:
        """The township rows in township code order (the tables' order)."""
        return sorted((t for t in self.towns if t["rank"] is not None), key=lambda t: t["xzqdm"])

    @property
    def has_outside(self) -> bool:
        """Whether anything lies outside every township (then the tables show a row for it)."""
        o = self.outside
        return bool(o["n_total"]) or any(v for k, v in o.items() if k.endswith("_mu"))

    @property
    def has_plan(self) -> bool:
        """Whether a plan layer gave the 城镇开发边界 / 生态保护红线 columns."""
        return any(p["illegal_outside_ubg_mu"] is not None for p in self.polygons)

    def over_line(self) -> list[dict]:
        """Townships whose 违法占用耕地比例 reaches the 15 % line, highest ratio first."""
        rows = [t for t in self.township_rows
                if t["illegal_cultivated_ratio"] is not None and t["illegal_cultivated_ratio"] >= Decimal("0.15")]
        return sorted(rows, key=lambda t: (-t["illegal_cultivated_ratio"], t["xzqdm"]))


def _select(conn: psycopg.Connection, county: County, sel: Selection, name: str) -> list[dict]:
    """Run one SELECT file of sql/40_report with the selection's parameters."""
    path = REPORT_SQL / name
    with conn.transaction():
        set_params(conn, {"county_code": county.code, "batches": ",".join(sel.batches)})
        try:
            cur = conn.execute(path.read_text(encoding="utf-8"))  # type: ignore[arg-type]
        except psycopg.Error as err:
            raise DatabaseError(f"{path.name}: {err.diag.message_primary or err}") from err
        cols = [d.name for d in cur.description or []]
        return [dict(zip(cols, row)) for row in cur.fetchall()]


def load(conn: psycopg.Connection, county: County, sel: Selection, towns: list[dict],
         quarantined: list[tuple[str, str, int]]) -> ReportData:
    """Everything the report files need for one selection (township_stat already computed)."""
    polygons = _select(conn, county, sel, "10_polygon_sheet.sql")
    geoms = dict(((b, j), g) for b, j, g in conn.execute(
        """SELECT batch, jcbh, ST_AsBinary(geom) FROM weipian.change_result
           WHERE county_code = %s AND batch = ANY(%s)""", (county.code, list(sel.batches))))
    for p in polygons:
        p["geom"] = shapely.from_wkb(geoms[(p["batch"], p["jcbh"])])
    outside = _select(conn, county, sel, "20_outside_township.sql")[0]
    subtypes = {(r["unit"], r["xzqdm"], r["subtype"]): r
                for r in _select(conn, county, sel, "30_illegal_subtypes.sql")}
    checks = _select(conn, county, sel, "40_field_check_matrix.sql")
    shapes = {code: (name, shapely.from_wkb(wkb)) for code, name, wkb in conn.execute(
        """SELECT xzqdm, min(xzqmc), ST_AsBinary(ST_Multi(ST_Union(geom))) FROM weipian.township
           WHERE county_code = %s GROUP BY xzqdm ORDER BY xzqdm COLLATE "C" """, (county.code,))}
    return ReportData(county, sel, towns, outside, polygons, subtypes, checks, shapes, quarantined)
