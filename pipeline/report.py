"""Report stage: the files of contract.md, written from the tables in PostGIS.

This module writes the contract's files (polygons.csv, township_stats.csv,
classified.gpkg) and the narrative lines, and calls the modules that write the
rest: tables.xlsx (:mod:`pipeline.tables`), the figures (:mod:`pipeline.figures`),
report.md and report.pdf (:mod:`pipeline.report_doc`, :mod:`pipeline.report_md`,
:mod:`pipeline.pdf`) and the Shapefile / File Geodatabase (:mod:`pipeline.exports`).

Every file is written to a temporary name in the output folder and renamed,
so a reader never sees half a file.
"""

from __future__ import annotations

import csv
import os
import tempfile
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import geopandas as gpd
import psycopg
import shapely

from pipeline import exports, fonts, logs, report_data, report_doc, report_md, report_tables, tables
from pipeline.config import County
from pipeline.report_tables import CLASS_ZH
from pipeline.stats import Selection

log = logs.get("report")

POLYGON_COLUMNS = [
    "jcbh", "batch", "xzqdm", "xzqmc", "class", "auto_class", "area_m2", "legal_m2",
    "unchanged_m2", "agri_m2", "illegal_m2", "cultivated_m2", "farmland_m2",
    "legal_cultivated_m2", "illegal_cultivated_m2", "illegal_farmland_m2", "bnpbj_m2",
    "wnpbj_m2", "wpxj_m2", "lsyd_cq_m2", "wbjy_m2", "ssny_wba_m2",
]
#: Columns after the contract's, from the plan layer (empty without one).
POLYGON_EXTRA = ["illegal_outside_ubg_m2", "illegal_in_eco_m2"]

TOWNSHIP_COLUMNS = [
    "xzqdm", "xzqmc", "n_total", "n_legal", "n_unchanged", "n_agri", "n_illegal",
    "n_illegal_cultivated", "area_mu", "legal_mu", "unchanged_mu", "agri_mu", "illegal_mu",
    "illegal_cultivated_mu", "illegal_farmland_mu", "new_construction_mu", "new_cultivated_mu",
    "illegal_cultivated_ratio", "rank",
]


@contextmanager
def _atomic(path: Path, mode: str = "w", **kwargs):
    """Open a temporary file beside `path`; rename it over `path` once complete."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        if mode is None:
            yield Path(tmp)
        else:
            with open(tmp, mode, **kwargs) as f:
                yield f
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def polygon_rows(conn: psycopg.Connection, county: County, sel: Selection) -> list[tuple]:
    cols = ", ".join(POLYGON_COLUMNS + POLYGON_EXTRA)
    return conn.execute(
        f"""SELECT {cols}, ST_AsBinary(geom) FROM weipian.change_result
            WHERE county_code = %s AND batch = ANY(%s) ORDER BY batch, jcbh""",
        (county.code, list(sel.batches)),
    ).fetchall()


def township_rows(conn: psycopg.Connection, county: County, sel: Selection) -> list[tuple]:
    return conn.execute(
        f"""SELECT {', '.join(TOWNSHIP_COLUMNS)} FROM weipian.township_stat
            WHERE county_code = %s AND selection = %s ORDER BY ord, xzqdm""",
        (county.code, sel.label),
    ).fetchall()


def write_outputs(conn: psycopg.Connection, county: County, sel: Selection, out: Path) -> Path:
    """Write every file of the selection into ``out``; return the path of report.md.

    polygons.csv, township_stats.csv and classified.gpkg (the contract), then
    tables.xlsx, the figures, report.md and report.pdf (one snapshot of the
    database, :mod:`pipeline.report_data`), then the Shapefile and File
    Geodatabase exports. The Chinese font is looked for first, so a machine
    without one stops before writing anything.
    """
    from pipeline import figures, pdf  # matplotlib and reportlab: only when reporting

    fonts.sans()
    out.mkdir(parents=True, exist_ok=True)
    polygons = polygon_rows(conn, county, sel)
    towns = township_rows(conn, county, sel)

    with _atomic(out / "polygons.csv", newline="", encoding="utf-8-sig") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(POLYGON_COLUMNS + POLYGON_EXTRA)
        for row in polygons:
            w.writerow([_fmt(v) for v in row[:-1]])

    with _atomic(out / "township_stats.csv", newline="", encoding="utf-8-sig") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(TOWNSHIP_COLUMNS)
        for row in towns:
            w.writerow([_fmt(v) for v in row])

    layer = _layer(county, polygons)
    with _atomic(out / "classified.gpkg", mode=None) as tmp:
        tmp.unlink()
        layer.to_file(tmp, layer="change_class", driver="GPKG", engine="pyogrio")
    quarantined = conn.execute(
        """SELECT s.kind, s.path, count(q.id) FROM weipian.source s
           JOIN weipian.quarantine q ON q.source_id = s.id AND q.county_code = s.county_code
           WHERE s.county_code = %s GROUP BY s.kind, s.path ORDER BY s.path""",
        (county.code,),
    ).fetchall()

    data = report_data.load(conn, county, sel, [dict(zip(TOWNSHIP_COLUMNS, r)) for r in towns], quarantined)
    scope = f"{sel.label} 年（批次 {'、'.join(sel.batches)}）"
    with _atomic(out / "tables.xlsx", mode=None) as tmp:
        tables.write_workbook(tmp, report_tables.workbook_tables(data), county.name, scope)

    with _atomic(out / report_doc.MAP_PNG, mode=None) as map_tmp, \
            _atomic(out / report_doc.CHART_PNG, mode=None) as chart_tmp:
        problems = figures.render(data, map_tmp, chart_tmp)
    blocks = report_doc.build(data, narrative(county, sel, towns))
    report = out / "report.md"
    with _atomic(report, encoding="utf-8") as f:
        f.write(report_md.render(blocks))
    with _atomic(out / "report.pdf", mode=None) as tmp:
        missing = pdf.write(tmp, blocks, out, blocks[0].text)
    if missing:
        problems.append(f"report.pdf: 字体缺少字形 missing glyphs {''.join(sorted(missing))}")
    for problem in problems:
        log.warning("提示 warning: %s", problem, extra={"stage": "report"})

    exports.write_shapefile(out, layer)
    exports.write_filegdb(out, layer)
    return report


def _layer(county: County, polygons: list[tuple]) -> gpd.GeoDataFrame:
    """The classified polygons with the columns of polygons.csv and the Chinese class names."""
    columns = POLYGON_COLUMNS + POLYGON_EXTRA
    records = [dict(zip(columns, row[:-1])) for row in polygons]
    for r in records:
        r["class_zh"], r["auto_class_zh"] = CLASS_ZH[r["class"]], CLASS_ZH[r["auto_class"]]
    geoms = shapely.from_wkb([row[-1] for row in polygons]) if polygons else []
    return gpd.GeoDataFrame(records, columns=columns + ["class_zh", "auto_class_zh"], geometry=list(geoms),
                            crs=f"EPSG:{county.srid}")


# ------------------------------------------------------------------ report.md

def _mu(v: Decimal | None) -> str:
    return f"{(v or Decimal(0)):.2f}"


def narrative(county: County, sel: Selection, towns: list[tuple]) -> list[str]:
    """The county line and the numbered township lines of seed 004 (domain.md Decision 9)."""
    rec = [dict(zip(TOWNSHIP_COLUMNS, r)) for r in towns]
    total = next(r for r in rec if r["xzqdm"] == county.code and r["rank"] is None)
    lines = [
        f"{sel.label} 年全县土地卫片执法共发现各类违法用地 {total['n_illegal']} 宗，"
        f"总面积 {_mu(total['illegal_mu'])} 亩（其中：耕地 {total['n_illegal_cultivated']} 宗，"
        f"面积 {_mu(total['illegal_cultivated_mu'])} 亩）。"
    ]
    listed = [r for r in rec if r["rank"] is not None and (r["n_illegal"] > 0 or r["illegal_mu"] >= Decimal("0.01"))]
    listed.sort(key=lambda r: r["rank"])
    for i, r in enumerate(listed, 1):
        if r["n_illegal_cultivated"] == 0 and r["illegal_cultivated_mu"] == 0:
            cult = "不涉及耕地"
        else:
            cult = f"涉及耕地 {r['n_illegal_cultivated']} 宗，面积 {_mu(r['illegal_cultivated_mu'])} 亩"
        lines.append(f"{i}. {r['xzqmc']}违法用地 {r['n_illegal']} 宗，总面积 {_mu(r['illegal_mu'])} 亩，{cult}。")
    return lines
