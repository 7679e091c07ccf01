"""Report stage: the files of contract.md, written from the tables in PostGIS.

This module writes the contract's files (polygons.csv, township_stats.csv,
classified.gpkg) and the narrative lines, and calls the modules that write the
rest: tables.xlsx (:mod:`pipeline.tables`), the figures (:mod:`pipeline.figures`),
report.md and report.pdf (:mod:`pipeline.report_doc`, :mod:`pipeline.report_md`,
:mod:`pipeline.pdf`) and the Shapefile / File Geodatabase (:mod:`pipeline.exports`).
The workbook and the layers are written in child processes beside the rest, so a
report uses the machine's cores (:func:`write_outputs`).

Every file is written to a temporary name in the output folder and renamed,
so a reader never sees half a file.
"""

from __future__ import annotations

import csv
import multiprocessing
import os
import pickle
import signal
import sys
import tempfile
import traceback
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import shapely

from pipeline import exports, fonts, logs, report_data, report_doc, report_md, report_tables
from pipeline.config import County
from pipeline.report_tables import CLASS_ZH
from pipeline.stats import Selection

if TYPE_CHECKING:
    import geopandas as gpd

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
        # mkstemp makes the file private (0600): give it the mode any new file gets here
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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

    The Chinese font is looked for first, so a machine without one stops before
    writing anything. The database is then read, once (:mod:`pipeline.report_data`),
    and every file is written from that snapshot, so the files cannot disagree:
    polygons.csv, township_stats.csv and classified.gpkg (the contract), tables.xlsx,
    the figures, report.md and report.pdf, and the Shapefile and File Geodatabase
    exports. The files do not depend on each other (but report.pdf on the figures),
    so tables.xlsx and the three layers are written by two child processes while
    this one writes the rest (:func:`_beside`); it returns when all are written.
    """
    fonts.sans()
    out.mkdir(parents=True, exist_ok=True)
    polygons = polygon_rows(conn, county, sel)
    towns = township_rows(conn, county, sel)
    quarantined = conn.execute(
        """SELECT s.kind, s.path, count(q.id) FROM weipian.source s
           JOIN weipian.quarantine q ON q.source_id = s.id AND q.county_code = s.county_code
           WHERE s.county_code = %s GROUP BY s.kind, s.path ORDER BY s.path""",
        (county.code,),
    ).fetchall()
    data = report_data.load(conn, county, sel, [dict(zip(TOWNSHIP_COLUMNS, r)) for r in towns], quarantined)
    scope = f"{sel.label} 年（批次 {'、'.join(sel.batches)}）"

    with _beside((_write_workbook, (out / "tables.xlsx", data, county.name, scope)),
                 (_write_layers, (out, county, polygons))):
        from pipeline import figures, pdf  # matplotlib and reportlab: only when reporting

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
    return report


def _write_workbook(path: Path, data: report_data.ReportData, unit: str, scope: str) -> None:
    """tables.xlsx (in a child process)."""
    from pipeline import tables  # openpyxl: only where the workbook is written

    with _atomic(path, mode=None) as tmp:
        tables.write_workbook(tmp, report_tables.workbook_tables(data), unit, scope)


def _write_layers(out: Path, county: County, polygons: list[tuple]) -> None:
    """classified.gpkg, classified.shp and classified.gdb (in a child process)."""
    layer = _layer(county, polygons)
    with _atomic(out / "classified.gpkg", mode=None) as tmp:
        tmp.unlink()
        layer.to_file(tmp, layer="change_class", driver="GPKG", engine="pyogrio")
    exports.write_shapefile(out, layer)
    exports.write_filegdb(out, layer)


# ------------------------------------------------------------------ child processes


class WorkerError(Exception):
    """The traceback of an error raised in a child process (chained to the error itself)."""


@contextmanager
def _beside(*jobs):
    """Run each job ``(fn, args)`` in a forked child process while the body of the ``with`` runs here.

    The outputs are independent and mostly pure Python (openpyxl, matplotlib,
    reportlab), so other processes are what uses the other cores. A child shares
    this process's memory (fork: nothing is copied or pickled on the way in) and
    never touches the database connection; it ends with ``os._exit``, so nothing of
    this process (connection, files, atexit handlers) is closed or flushed twice.
    Leaving the ``with`` waits for every child, also when the body failed (so no
    temporary file of a child is left behind), and raises the first job's error
    (an OSError stays an OSError, a WeipianError keeps its exit status).
    Where fork is not available or there is a single core, the jobs run here first.
    """
    if not _can_fork():
        for fn, args in jobs:
            fn(*args)
        yield
        return
    ctx = multiprocessing.get_context("fork")
    children = []
    try:
        for fn, args in jobs:
            reader, writer = ctx.Pipe(duplex=False)
            child = ctx.Process(target=_child_main, args=(writer, os.getpid(), fn, args),
                                name=f"weipian-{fn.__name__}", daemon=True)
            child.start()
            writer.close()
            children.append((reader, child))
        yield
    finally:
        errors = []
        for reader, child in children:
            errors.append(_child_result(reader, child))
            reader.close()
    for error in errors:
        if error is not None:
            raise error


def _can_fork() -> bool:
    return sys.platform.startswith("linux") and (os.cpu_count() or 1) > 1 and \
        multiprocessing.current_process().daemon is False


def _child_main(writer, parent: int, fn, args) -> None:
    _die_with_parent(parent)
    try:
        fn(*args)
        payload = pickle.dumps(None)
    except BaseException as err:  # noqa: BLE001 — every error goes back to the parent
        text = traceback.format_exc()
        try:
            payload = pickle.dumps((err, text))
            pickle.loads(payload)
        except Exception:
            payload = pickle.dumps((RuntimeError(f"{type(err).__name__}: {err}"), text))
    writer.send_bytes(payload)
    writer.close()


def _child_result(reader, child) -> BaseException | None:
    try:
        result = pickle.loads(reader.recv_bytes())
    except EOFError:  # ended without a word: killed (out of memory, a signal)
        result = (RuntimeError(f"{child.name}: the worker process ended abnormally"), None)
    child.join()
    if result is None:
        if child.exitcode != 0:
            return RuntimeError(f"{child.name}: the worker process ended with status {child.exitcode}")
        return None
    err, text = result
    if text:
        err.__cause__ = WorkerError(text)
    return err


def _die_with_parent(parent: int) -> None:
    """Linux: the kernel kills this process when its parent dies, so a killed run leaves
    no child writing on (its temporary file is removed by the next run)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # not glibc: the child ends by itself moments later
        pass
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)


def _layer(county: County, polygons: list[tuple]) -> gpd.GeoDataFrame:
    """The classified polygons with the columns of polygons.csv and the Chinese class names."""
    import geopandas as gpd  # pandas: only where the layers are written

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
