"""Report stage: the files of contract.md, written from the tables in PostGIS.

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

from pipeline.config import County
from pipeline.stats import Selection

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

CLASS_ZH = {"legal": "合法用地", "unchanged": "实地未变化", "agri_adjust": "农业结构调整", "illegal": "违法用地"}


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
    """Write polygons.csv, township_stats.csv, report.md and classified.gpkg; return report.md."""
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

    _write_gpkg(out / "classified.gpkg", county, polygons)
    quarantined = conn.execute(
        """SELECT s.kind, s.path, count(q.id) FROM weipian.source s
           JOIN weipian.quarantine q ON q.source_id = s.id AND q.county_code = s.county_code
           WHERE s.county_code = %s GROUP BY s.kind, s.path ORDER BY s.path""",
        (county.code,),
    ).fetchall()
    report = out / "report.md"
    with _atomic(report, encoding="utf-8") as f:
        f.write(render_report(county, sel, towns, polygons, quarantined))
    return report


def _write_gpkg(path: Path, county: County, polygons: list[tuple]) -> None:
    columns = POLYGON_COLUMNS + POLYGON_EXTRA
    records = [dict(zip(columns, row[:-1])) for row in polygons]
    geoms = shapely.from_wkb([row[-1] for row in polygons]) if polygons else []
    gdf = gpd.GeoDataFrame(records, columns=columns, geometry=list(geoms), crs=f"EPSG:{county.srid}")
    with _atomic(path, mode=None) as tmp:
        tmp.unlink()
        gdf.to_file(tmp, layer="change_class", driver="GPKG", engine="pyogrio")


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


def render_report(county: County, sel: Selection, towns, polygons, quarantined) -> str:
    lines = narrative(county, sel, towns)
    batches = "、".join(sel.batches)
    md = [
        f"# {county.name}{sel.label} 年土地卫片执法检查汇总分析报告",
        "",
        f"县级行政区划代码：{county.code}；监测批次：{batches}；图斑 {len(polygons)} 个。",
        "",
        "## 一、违法用地情况",
        "",
        lines[0],
    ]
    if len(lines) > 1:
        md += ["", "各乡镇违法占用耕地面积从大到小依次排名如下。", ""]
        md += lines[1:]
    md += ["", "## 二、乡镇统计表（面积单位：亩）", ""]
    head = ["排名", "乡镇代码", "乡镇", "图斑（宗）", "合法", "实地未变化", "农业结构调整", "违法",
            "违法涉及耕地（宗）", "总面积", "合法面积", "实地未变化面积", "农业结构调整面积", "违法面积",
            "违法占用耕地", "违法占用永久基本农田", "新增建设用地", "新增建设占用耕地", "违法占用耕地比例"]
    md.append("| " + " | ".join(head) + " |")
    md.append("|" + "---|" * len(head))
    for r in towns:
        d = dict(zip(TOWNSHIP_COLUMNS, r))
        ratio = d["illegal_cultivated_ratio"]
        ratio_s = "" if ratio is None else f"{ratio * 100:.2f}%" + (" ⚠" if ratio >= Decimal("0.15") else "")
        cells = [
            "" if d["rank"] is None else str(d["rank"]), d["xzqdm"],
            d["xzqmc"] if d["rank"] is not None else f"**{d['xzqmc']}（合计）**",
            *(str(d[k]) for k in ["n_total", "n_legal", "n_unchanged", "n_agri", "n_illegal",
                                  "n_illegal_cultivated"]),
            *(_mu(d[k]) for k in ["area_mu", "legal_mu", "unchanged_mu", "agri_mu", "illegal_mu",
                                  "illegal_cultivated_mu", "illegal_farmland_mu",
                                  "new_construction_mu", "new_cultivated_mu"]),
            ratio_s,
        ]
        md.append("| " + " | ".join(cells) + " |")
    md += ["", "违法占用耕地比例 = 违法占用耕地面积 ÷ 新增建设用地占用耕地面积；⚠ 表示达到 15% 问责线。", ""]

    md += ["## 三、图斑认定情况", ""]
    idx = POLYGON_COLUMNS.index
    counts = {}
    for row in polygons:
        key = (row[idx("auto_class")], row[idx("class")])
        counts[key] = counts.get(key, 0) + 1
    final = {c: sum(n for (a, f), n in counts.items() if f == c) for c in CLASS_ZH}
    md.append("| 认定类型 | 图斑（宗） |")
    md.append("|---|---|")
    for c, zh in CLASS_ZH.items():
        md.append(f"| {zh} | {final[c]} |")
    changed = sum(n for (a, f), n in counts.items() if a != f)
    md += ["", f"外业核查改变内业判定的图斑 {changed} 个（统计均按最终认定类型）。", ""]

    md += ["## 四、数据说明", "",
           "- 面积为 CGCS2000 椭球面积，1 亩 = 666.667 平方米；耕地面积已扣除田坎（KCXS）。",
           "- 各乡镇面积按图斑落在该乡镇内的部分计算，宗数计入面积占比最大的乡镇。"]
    if quarantined:
        md.append("- 以下数据源有要素被隔离（未参与计算），详见数据库表 weipian.quarantine：")
        for kind, path, n in quarantined:
            md.append(f"  - {Path(path).name}（{kind}）：{n} 个")
    md.append("")
    return "\n".join(md)
