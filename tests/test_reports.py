"""The files a county submits and an analyst reads (issue 5), checked against the database.

One county of three townships and three batches (2023, 2024Q1, 2024Q2) is run once
for the module (``run --batch 2023-2024``), then reported again for one batch
(``report --batch 2024Q2``) and one year (``report --batch 2024``: both quarters).
It has every illegal sub-type, a polygon outside every township and one straddling
two townships, field checks that change the desk judgement, a plan layer, and
areas whose rounded township rows do not add up to the rounded county total, so
the totals rule (sum of displayed rows, county value in a note) is exercised.

Expected numbers are recomputed here from weipian.change_result / change_piece /
township_stat with SQL of the test's own, never read from sql/40_report.
"""

from __future__ import annotations

import csv
import errno
import os
import re
import signal
import subprocess
import time
import uuid
import warnings
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import geopandas as gpd
import nbformat
import openpyxl
import psycopg
import pyogrio
import pytest
from pyproj import CRS

from builders import PROJECT_ROOT, CountyBuilder, pipeline_env, rect, run_pipeline

CODE, NAME = "140824", "稷山县"
TOWNS = [("140824100", "稷峰镇"), ("140824101", "化峪镇"), ("140824102", "翟店镇")]
Y0, Y1 = 3939500.0, 3940500.0
BY = 3939600.0
SHEETS = ["变化图斑情况统计表", "执法检查数据汇总表", "违法用地数据汇总表", "违法用地分类统计表", "内外业对比表"]
SUBTYPES = [("wbjy", "未报即用"), ("wpxj", "未批先建"), ("lsyd_cq", "临时用地超期"), ("ssny_wba", "未备案设施农用地")]
CLASS_ZH = {"legal": "合法用地", "unchanged": "实地未变化", "agri_adjust": "农业结构调整", "illegal": "违法用地"}
FIRST_ROW = 5  # tables.py: title, subtitle, two header rows


def x(k: int, dx: float = 0.0) -> float:
    """Western edge of township k (1..3), plus dx."""
    return 496000.0 + 1000.0 * (k - 1) + 100.0 + dx


def build_county(root: Path) -> Path:
    c = CountyBuilder(root, code=CODE, name=NAME)
    for i, (code, name) in enumerate(TOWNS):
        c.add_township(code, name, rect(496000 + 1000 * i, Y0, 497000 + 1000 * i, Y1))

    def poly(k, dx, w, h, dy=0.0):
        return rect(x(k, dx), BY + dy, x(k, dx) + w, BY + dy + h)

    def dry(p):  # 旱地 under the whole polygon
        x0, y0, x1, y1 = p.bounds
        c.add_landuse("0103", rect(x0 - 3, y0 - 3, x1 + 3, y1 + 3), 0.0, "旱地")

    # 2023 (HSX 2023-06-30): 未报即用 on 旱地, legal on 旱地, 未批先建 (permit after HSX)
    p = poly(1, 0, 20.0, 33.47)
    dry(p)
    c.add_change("2023", "140824202300001", p, "2023-06-30", "建设用地")
    p = poly(1, 100, 30.0, 40.0)
    dry(p)
    c.add_approval("农用地转用", "2023-03-01", rect(*(v + d for v, d in zip(p.bounds, (-2, -2, 2, 2)))))
    c.add_change("2023", "140824202300002", p, "2023-06-30", "建设用地")
    p = poly(2, 0, 25.0, 26.75)
    c.add_approval("农用地转用", "2023-09-01", rect(*(v + d for v, d in zip(p.bounds, (-2, -2, 2, 2)))))
    c.add_change("2023", "140824202300003", p, "2023-06-30", "建设用地")

    # 2024Q1 (HSX 2024-03-20): 临时用地超期 on 永久基本农田, 未备案设施农用地, agri, straddling
    p = poly(2, 100, 22.0, 30.35)
    dry(p)
    c.add_farmland(rect(*(v + d for v, d in zip(p.bounds, (-3, -3, 3, 3)))))
    c.add_approval("临时用地", "2023-01-01", rect(*(v + d for v, d in zip(p.bounds, (-2, -2, 2, 2)))),
                   yxqz="2024-01-01")
    c.add_change("2024Q1", "140824202410001", p, "2024-03-20", "建设用地")
    p = poly(3, 0, 18.0, 37.11)
    dry(p)
    c.add_change("2024Q1", "140824202410002", p, "2024-03-20", "设施农用地")
    c.add_change("2024Q1", "140824202410003", poly(3, 100, 30, 30), "2024-03-20", "农用地")
    straddle = rect(497960.0, BY + 200, 498040.0 + 13.7, BY + 220)  # more in 翟店镇
    dry(straddle)
    c.add_change("2024Q1", "140824202410004", straddle, "2024-03-20", "推填土")

    # 2024Q2 (HSX 2024-06-30): unchanged, field checks, outside, half outside
    p = poly(1, 200, 30, 30)
    c.add_landuse("0702", rect(*(v + d for v, d in zip(p.bounds, (-3, -3, 3, 3)))), 0.0, "农村宅基地")
    c.add_change("2024Q2", "140824202420001", p, "2024-06-30", "建设用地")
    c.add_change("2024Q2", "140824202420002", poly(1, 300, 21, 31.9), "2024-06-30", "建设用地")
    c.add_change("2024Q2", "140824202420003", poly(3, 200, 20, 20), "2024-06-30", "建设用地")
    p = poly(2, 200, 19.0, 35.3)
    dry(p)
    c.add_change("2024Q2", "140824202420004", p, "2024-06-30", "建设用地")
    c.add_change("2024Q2", "140824202420005", rect(497000, 3941000, 497021, 3941032.2), "2024-06-30", "建设用地")
    c.add_change("2024Q2", "140824202420006", rect(x(3, 300), Y1 - 10, x(3, 300) + 23.3, Y1 + 17.0),
                 "2024-06-30", "建设用地")
    c.add_field_checks("WYHC_2024Q2.csv", [
        {"JCBH": "140824202420001", "SFBH": "是"},                  # confirms unchanged
        {"JCBH": "140824202420002", "SFBH": "是", "PDLX": "合法用地"},  # illegal → legal
        {"JCBH": "140824202420003", "SFBH": "否"},                  # illegal → unchanged
        {"JCBH": "140824202420004", "SFBH": "是"},                  # confirms illegal
    ], batch="2024Q2")
    toml = c.write()
    plan = gpd.GeoDataFrame({"GKLX": ["城镇开发边界", "生态保护红线"]},
                            geometry=[rect(496000, Y0, 496150, Y1), rect(498000, Y0, 498150, Y1)],
                            crs="EPSG:4546")
    plan.to_file(root / "GHGK.gpkg", layer="GHGK", engine="pyogrio")
    with open(toml, "a", encoding="utf-8") as f:
        f.write('\n[[layers]]\nkind = "plan"\npath = "GHGK.gpkg"\nlayer = "GHGK"\n')
    return toml


@dataclass
class Report:
    out: Path
    label: str
    batches: list[str]
    stderr: str


@dataclass
class Case:
    url: str
    toml: Path
    runs: dict[str, Report]


@pytest.fixture(scope="module")
def case(pg_cluster, migrated_template, tmp_path_factory) -> Case:
    root = tmp_path_factory.mktemp("reports")
    toml = build_county(root / "in")
    name = f"reports_{uuid.uuid4().hex[:8]}"
    url = pg_cluster.create_database(name, template=migrated_template)
    runs = {}
    try:
        for key, cmd, spec, label, batches in [
            ("range", "run", "2023-2024", "2023—2024", ["2023", "2024Q1", "2024Q2"]),
            ("batch", "report", "2024Q2", "2024Q2", ["2024Q2"]),
            ("year", "report", "2024", "2024", ["2024Q1", "2024Q2"]),
            ("again", "report", "2024Q2", "2024Q2", ["2024Q2"]),  # the same selection, another folder
            ("plain", "report", "2023", "2023", ["2023"]),  # no field check, nothing outside
        ]:
            out = root / f"out_{key}"
            proc = run_pipeline(url, cmd, str(toml), "--batch", spec, "--out", str(out))
            runs[key] = Report(out, label, batches, proc.stderr)
        yield Case(url, toml, runs)
    finally:
        pg_cluster.drop_database(name)


@pytest.fixture(scope="module")
def rng(case) -> Report:
    return case.runs["range"]


# ------------------------------------------------------------------ the database's answers


def mu2(m2: float | None) -> Decimal:
    """m² → 亩 with 2 decimals, as PostgreSQL rounds ``(m2 * 0.0015)::numeric`` (15 digits, half up)."""
    return Decimal(f"{(m2 or 0.0) * 0.0015:.15g}").quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def query(url: str, sql: str, *params) -> list[dict]:
    with psycopg.connect(url) as conn:
        cur = conn.execute(sql, params)
        cols = [d.name for d in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]


def results(url: str, batches: list[str]) -> list[dict]:
    return query(url, "SELECT * FROM weipian.change_result WHERE county_code = %s AND batch = ANY(%s) "
                      "ORDER BY batch, jcbh", CODE, batches)


def pieces_by_unit(url: str, batches: list[str]) -> dict[tuple, dict]:
    """(xzqdm or None, class, subtype) → unrounded sums of the pieces."""
    rows = query(url, """SELECT xzqdm, class, subtype, sum(area_m2) AS area, sum(cultivated_m2) AS cult,
                                sum(farmland_m2) AS farm
                         FROM weipian.change_piece WHERE county_code = %s AND batch = ANY(%s)
                         GROUP BY 1, 2, 3""", CODE, batches)
    return {(r["xzqdm"], r["class"], r["subtype"]): r for r in rows}


def town_stats(url: str, label: str) -> dict[str, dict]:
    rows = query(url, "SELECT * FROM weipian.township_stat WHERE county_code = %s AND selection = %s", CODE, label)
    return {r["xzqdm"]: r for r in rows}


def main_subtype(r: dict) -> str:
    areas = [(r[f"{s}_m2"], -i, s) for i, (s, _) in enumerate(SUBTYPES)]
    return max(areas)[2]


def near(got, exact_m2: float) -> bool:
    """A displayed 亩 value (2 decimals) against an unrounded sum of m²."""
    return abs(Decimal(str(got)) - Decimal(exact_m2 * 0.0015)) <= Decimal("0.0051")


# ------------------------------------------------------------------ reading tables.xlsx


def sheet(out: Path, name: str) -> tuple[list[str], list[list], list[list], list[str]]:
    """(column labels 'group·title', data rows, total rows, notes) of one sheet."""
    ws = openpyxl.load_workbook(out / "tables.xlsx")[name]
    top = [c.value for c in ws[3]]
    bottom = [c.value for c in ws[4]]
    labels, group = [], None
    for t, b in zip(top, bottom):
        if t is not None:
            group = t
        labels.append(f"{group}·{b}" if b else t)
    rows, totals, notes = [], [], []
    for r in ws.iter_rows(min_row=FIRST_ROW, values_only=True):
        if isinstance(r[0], str) and r[0].startswith("注："):
            notes.append(r[0])
        elif any(isinstance(v, str) and (v.startswith("合计") or v.endswith("合计") or v == "总计") for v in r[:3]):
            totals.append(list(r))
        else:
            rows.append(list(r))
    return labels, rows, totals, notes


def col(labels: list[str], name: str) -> int:
    return labels.index(name)


# ------------------------------------------------------------------ files and selections


def test_every_file_is_written(rng: Report):
    for f in ["polygons.csv", "township_stats.csv", "report.md", "report.pdf", "tables.xlsx", "classified.gpkg",
              "county_map.png", "township_chart.png", "classified.shp", "classified.shx", "classified.dbf",
              "classified.prj", "classified.cpg", "classified_shp_fields.csv"]:
        assert (rng.out / f).is_file(), f
    assert (rng.out / "classified.gdb").is_dir()
    assert not [p.name for p in rng.out.iterdir() if p.name.startswith(".") and not p.name.endswith(".json")], \
        "no temporary file or folder is left behind"


def test_runs_report_no_missing_glyph(case: Case):
    for key, r in case.runs.items():
        assert "glyph" not in r.stderr.lower() and "字形" not in r.stderr, f"{key}: {r.stderr}"


@pytest.mark.parametrize("key", ["range", "batch", "year", "plain"])
def test_selection_is_what_every_file_covers(case: Case, key: str):
    """One batch, a year (the batches of that year), a range: the polygon sheet, the
    narrative label and the totals all cover exactly the selected batches."""
    r = case.runs[key]
    labels, rows, totals, _ = sheet(r.out, "变化图斑情况统计表")
    db = results(case.url, r.batches)
    assert [(row[col(labels, "批次")], row[col(labels, "监测编号")]) for row in rows] == \
        [(p["batch"], p["jcbh"]) for p in db]
    md = (r.out / "report.md").read_text(encoding="utf-8")
    assert f"{r.label} 年全县土地卫片执法共发现各类违法用地" in md
    stats = town_stats(case.url, r.label)[CODE]
    _, srows, stotals, _ = sheet(r.out, "执法检查数据汇总表")
    assert stotals[0][2] == stats["n_total"] == len(db)


def test_selections_differ(case: Case):
    """Guard of the design: the selections hold different polygons."""
    sizes = {k: len(results(case.url, r.batches)) for k, r in case.runs.items()}
    assert sizes["batch"] < sizes["year"] < sizes["range"]


def test_rerun_writes_the_same_bytes(case: Case):
    """No date or time in the report: the same data give the same files."""
    a, b = case.runs["batch"].out, case.runs["again"].out
    for f in ["report.md", "report.pdf", "county_map.png", "township_chart.png", "classified_shp_fields.csv"]:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f


def test_selection_without_field_checks_or_outside(case: Case):
    r = case.runs["plain"]
    labels, rows, totals, notes = sheet(r.out, "内外业对比表")
    assert rows == [] and totals == [] and any("没有外业核查记录" in n for n in notes)
    for name in SHEETS[1:4]:
        assert "乡镇界外" not in [row[col(sheet(r.out, name)[0], "乡镇名称")] for row in sheet(r.out, name)[1]]
    md = (r.out / "report.md").read_text(encoding="utf-8")
    assert "本次统计范围内没有外业核查记录" in md and "附表4  违法用地图斑清单" in md
    assert "glyph" not in r.stderr.lower()


# ------------------------------------------------------------------ tables.xlsx


def test_workbook_layout(rng: Report):
    wb = openpyxl.load_workbook(rng.out / "tables.xlsx")
    assert wb.sheetnames == SHEETS
    for ws in wb:
        assert ws["A1"].value == ws.title
        assert ws.freeze_panes and ws.freeze_panes.endswith(str(FIRST_ROW)), ws.title
        assert ws.print_title_rows == "$3:$4", ws.title
        assert ws.page_setup.orientation == "landscape" and int(ws.page_setup.paperSize) == int(ws.PAPERSIZE_A4)
        assert ws.sheet_properties.pageSetUpPr.fitToPage and ws.page_setup.fitToWidth == 1
        for i in range(1, ws.max_column + 1):
            width = ws.column_dimensions[openpyxl.utils.get_column_letter(i)].width
            assert 5 <= width <= 20, f"{ws.title} column {i}: width {width}"


def test_numbers_are_numbers_with_formats(rng: Report):
    """Counts, 亩 and ratios are stored as numbers (never text), each column with one
    number format: 0 for counts, 0.00 for 亩, 0.00% for ratios."""
    want = {("变化图斑情况统计表", "面积（亩）·图斑面积"): "0.00", ("执法检查数据汇总表", "监测图斑·宗数"): "0",
            ("违法用地数据汇总表", "违法用地·面积"): "0.00", ("违法用地数据汇总表", "违法占用耕地比例"): "0.00%",
            ("违法用地分类统计表", "未报即用·耕地"): "0.00", ("内外业对比表", "一致率"): "0.00%"}
    wb = openpyxl.load_workbook(rng.out / "tables.xlsx")
    for ws in wb:
        labels = sheet(rng.out, ws.title)[0]
        formats: dict[int, set] = {}
        for row in ws.iter_rows(min_row=FIRST_ROW):
            if isinstance(row[0].value, str) and row[0].value.startswith("注："):
                continue
            for cell in row:
                v = cell.value
                if isinstance(v, str):
                    assert not re.fullmatch(r"-?\d+\.\d+%?", v), f"{ws.title}!{cell.coordinate}: number as text {v!r}"
                elif isinstance(v, (int, float)):
                    formats.setdefault(cell.column - 1, set()).add(cell.number_format)
        for i, fmts in formats.items():
            assert len(fmts) == 1 and fmts <= {"0", "0.00", "0.00%"}, f"{ws.title} {labels[i]}: {fmts}"
        for (name, label), fmt in want.items():
            if name == ws.title:
                assert formats[labels.index(label)] == {fmt}, (name, label)


def test_polygon_sheet_matches_database(case: Case, rng: Report):
    labels, rows, totals, notes = sheet(rng.out, "变化图斑情况统计表")
    db = results(case.url, rng.batches)
    assert len(rows) == len(db)
    area_cols = {"面积（亩）·图斑面积": "area_m2", "面积（亩）·合法用地": "legal_m2",
                 "面积（亩）·实地未变化": "unchanged_m2", "面积（亩）·农业结构调整": "agri_m2",
                 "面积（亩）·违法用地": "illegal_m2", "面积（亩）·耕地": "cultivated_m2",
                 "面积（亩）·永久基本农田": "farmland_m2", "违法用地中（亩）·耕地": "illegal_cultivated_m2",
                 "违法用地中（亩）·永久基本农田": "illegal_farmland_m2",
                 "违法用地中（亩）·城镇开发边界外": "illegal_outside_ubg_m2",
                 "违法用地中（亩）·生态保护红线内": "illegal_in_eco_m2",
                 "合法用地中（亩）·本年批准本年建设": "bnpbj_m2", "合法用地中（亩）·往年批准本年建设": "wnpbj_m2",
                 **{f"违法用地中（亩）·{zh}": f"{s}_m2" for s, zh in SUBTYPES}}
    for row, p in zip(rows, db):
        where = f"变化图斑情况统计表 {p['jcbh']}"
        assert row[col(labels, "监测编号")] == p["jcbh"], where
        assert row[col(labels, "乡镇名称")] == (p["xzqmc"] or "乡镇界外"), where
        assert row[col(labels, "判定·内业判定")] == CLASS_ZH[p["auto_class"]], where
        assert row[col(labels, "判定·最终认定")] == CLASS_ZH[p["class"]], where
        assert (row[col(labels, "判定·外业核查认定")] or None) == (CLASS_ZH[p["pdlx"]] if p["pdlx"] else None), where
        assert (row[col(labels, "判定·外业核查是否变化")] or None) == p["sfbh"], where
        want_sub = dict(SUBTYPES)[main_subtype(p)] if p["class"] == "illegal" else None
        assert (row[col(labels, "判定·违法类型")] or None) == want_sub, where
        assert row[col(labels, "后时相")].date() == p["hsx"], where
        for label, column in area_cols.items():
            got = row[col(labels, label)]
            if p[column] is None:  # no plan layer value
                assert got is None, f"{where} {label}"
            else:
                assert Decimal(str(got)) == mu2(p[column]), f"{where} {label}"


def test_enforcement_summary_matches_database(case: Case, rng: Report):
    labels, rows, totals, _ = sheet(rng.out, "执法检查数据汇总表")
    stats = town_stats(case.url, rng.label)
    pieces = pieces_by_unit(case.url, rng.batches)
    db = results(case.url, rng.batches)
    by_code = {r[0]: r for r in rows}
    assert [r[0] for r in rows] == [code for code, _ in TOWNS] + [None], "townships in code order, then 乡镇界外"
    for code, name in TOWNS + [(None, "乡镇界外")]:
        row = by_code[code]
        assert row[1] == name
        mine = [p for p in db if p["xzqdm"] == code]
        for cls, zh in [(None, "监测图斑")] + list(CLASS_ZH.items()):
            n = sum(1 for p in mine if cls is None or p["class"] == cls)
            area = sum(v["area"] for (t, c, _), v in pieces.items() if t == code and (cls is None or c == cls))
            assert row[col(labels, f"{zh}·宗数")] == n, f"{name} {zh} 宗数"
            assert near(row[col(labels, f"{zh}·面积")], area), f"{name} {zh} 面积"
            if code:
                key = {None: "area_mu", "legal": "legal_mu", "unchanged": "unchanged_mu", "agri_adjust": "agri_mu",
                       "illegal": "illegal_mu"}[cls]
                assert Decimal(str(row[col(labels, f"{zh}·面积")])) == stats[code][key]


def test_illegal_summary_matches_database(case: Case, rng: Report):
    labels, rows, totals, _ = sheet(rng.out, "违法用地数据汇总表")
    stats = town_stats(case.url, rng.label)
    pieces = pieces_by_unit(case.url, rng.batches)
    by_code = {r[col(labels, "乡镇代码")]: r for r in rows}
    for code, name in TOWNS + [(None, "乡镇界外")]:
        row = by_code[code]
        if code:
            s = stats[code]
            assert row[col(labels, "排名")] == s["rank"]
            assert row[col(labels, "违法用地·宗数")] == s["n_illegal"]
            assert row[col(labels, "其中·涉及耕地宗数")] == s["n_illegal_cultivated"]
            for label, key in [("违法用地·面积", "illegal_mu"), ("其中·耕地面积", "illegal_cultivated_mu"),
                               ("其中·永久基本农田面积", "illegal_farmland_mu"),
                               ("新增建设用地·占用耕地", "new_cultivated_mu")]:
                assert Decimal(str(row[col(labels, label)])) == s[key], f"{name} {label}"
            ratio = s["illegal_cultivated_ratio"]
            got = row[col(labels, "违法占用耕地比例")]
            assert (got is None and ratio is None) or Decimal(str(got)) == ratio, name
            assert (row[col(labels, "达到15%问责线")] == "是") == (ratio is not None and ratio >= Decimal("0.15"))
        for s_id, zh in SUBTYPES:
            area = sum(v["area"] for (t, c, st), v in pieces.items() if t == code and c == "illegal" and st == s_id)
            assert near(row[col(labels, f"违法类型（面积）·{zh}")], area), f"{name} {zh}"
    c = stats[CODE]
    assert Decimal(str(totals[0][col(labels, "违法占用耕地比例")])) == c["illegal_cultivated_ratio"]


def test_illegal_by_subtype_matches_database(case: Case, rng: Report):
    labels, rows, totals, _ = sheet(rng.out, "违法用地分类统计表")
    db = results(case.url, rng.batches)
    pieces = pieces_by_unit(case.url, rng.batches)
    by_code = {r[0]: r for r in rows}
    seen = set()
    for code, name in TOWNS + [(None, "乡镇界外")]:
        row = by_code[code]
        for s_id, zh in SUBTYPES:
            n = sum(1 for p in db if p["xzqdm"] == code and p["class"] == "illegal" and main_subtype(p) == s_id)
            sel = [v for (t, c, st), v in pieces.items() if t == code and c == "illegal" and st == s_id]
            assert row[col(labels, f"{zh}·宗数")] == n, f"{name} {zh}"
            assert near(row[col(labels, f"{zh}·面积")], sum(v["area"] for v in sel)), f"{name} {zh}"
            assert near(row[col(labels, f"{zh}·耕地")], sum(v["cult"] for v in sel)), f"{name} {zh}"
            if n:
                seen.add(s_id)
        assert row[col(labels, "合计·宗数")] == sum(1 for p in db if p["xzqdm"] == code and p["class"] == "illegal")
    assert seen == {s for s, _ in SUBTYPES}, "the county has a polygon of every illegal sub-type"


def test_field_check_sheet_matches_database(case: Case, rng: Report):
    labels, rows, totals, notes = sheet(rng.out, "内外业对比表")
    db = [p for p in results(case.url, rng.batches) if p["sfbh"] is not None or p["pdlx"] is not None]
    assert len(db) == 4
    for r in rows + totals[:-1]:
        code, desk = r[0], r[2]
        desk_id = {v: k for k, v in CLASS_ZH.items()}[desk]
        for fin, zh in CLASS_ZH.items():
            want = sum(1 for p in db if p["auto_class"] == desk_id and p["class"] == fin
                       and (code == CODE or p["xzqdm"] == code))
            assert r[col(labels, f"外业核查后认定·{zh}")] == want, f"{code} {desk}→{zh}"
    grand = totals[-1]
    assert grand[col(labels, "合计")] == 4
    assert grand[col(labels, "一致")] == sum(1 for p in db if p["auto_class"] == p["class"])


def _column_sums_hold(where: str, labels: list[str], body: list[list], total: list) -> None:
    for i, label in enumerate(labels):
        if label in ("序号", "排名", "一致率", "违法占用耕地比例"):
            continue
        values = [row[i] for row in body if isinstance(row[i], (int, float))]
        if not values or not isinstance(total[i], (int, float)):
            continue
        shown = sum(Decimal(f"{v:.2f}") for v in values)
        assert Decimal(f"{total[i]:.2f}") == shown, f"{where} {label}: total {total[i]} ≠ Σ rows {shown}"


def test_totals_are_sums_of_the_displayed_rows(case: Case):
    """Every 合计 row (and the 合计 columns) equals the sum of the cells as displayed."""
    for key, r in case.runs.items():
        for name in SHEETS:
            labels, rows, totals, _ = sheet(r.out, name)
            if name == "内外业对比表":
                if not rows:  # a selection without field checks: the sheet holds its note only
                    assert totals == []
                    continue
                # the county block sums the townships' rows of each desk class; 总计 sums the block
                for block_row in totals[:-1]:
                    same = [row for row in rows if row[2] == block_row[2]]
                    _column_sums_hold(f"{key} {name} {block_row[2]}", labels, same, block_row)
                _column_sums_hold(f"{key} {name} 总计", labels, totals[:-1], totals[-1])
                continue
            assert len(totals) == 1, f"{key} {name}: one 合计 row"
            _column_sums_hold(f"{key} {name}", labels, rows, totals[0])
            if name == "违法用地分类统计表":
                for row in rows + totals:
                    for part in ("宗数", "面积", "耕地"):
                        parts = sum(Decimal(f"{row[col(labels, f'{zh}·{part}')]:.2f}") for _, zh in SUBTYPES)
                        assert Decimal(f"{row[col(labels, f'合计·{part}')]:.2f}") == parts, (key, row[1], part)


def test_rounding_differences_are_noted(case: Case, rng: Report):
    """Where Σ displayed rows ≠ the county value (unrounded sum, rounded once), the sheet
    says so and gives the county value; the design guarantees at least one such cell."""
    stats = town_stats(case.url, rng.label)[CODE]
    labels, rows, totals, notes = sheet(rng.out, "执法检查数据汇总表")
    differs = 0
    for label, key in [("监测图斑·面积", "area_mu"), ("合法用地·面积", "legal_mu"), ("违法用地·面积", "illegal_mu"),
                       ("实地未变化·面积", "unchanged_mu"), ("农业结构调整·面积", "agri_mu")]:
        shown = Decimal(f"{totals[0][col(labels, label)]:.2f}")
        if shown != stats[key]:
            differs += 1
            assert any(f"{stats[key]:.2f} 亩（合计行 {shown:.2f} 亩）" in n for n in notes), (label, notes)
    _, _, p_totals, p_notes = sheet(rng.out, "变化图斑情况统计表")
    p_labels = sheet(rng.out, "变化图斑情况统计表")[0]
    shown = Decimal(f"{p_totals[0][col(p_labels, '面积（亩）·图斑面积')]:.2f}")
    if shown != stats["area_mu"]:
        differs += 1
        assert any(f"图斑面积 {stats['area_mu']:.2f} 亩" in n for n in p_notes)
    assert differs, "test design: some 合计 should differ from the county value by a rounding 尾差"


# ------------------------------------------------------------------ report.md


def narrative_from_database(url: str, label: str) -> list[str]:
    stats = town_stats(url, label)
    c = stats[CODE]
    lines = [f"{label} 年全县土地卫片执法共发现各类违法用地 {c['n_illegal']} 宗，总面积 {c['illegal_mu']:.2f} 亩"
             f"（其中：耕地 {c['n_illegal_cultivated']} 宗，面积 {c['illegal_cultivated_mu']:.2f} 亩）。"]
    ranked = sorted((s for s in stats.values() if s["rank"] is not None), key=lambda s: s["rank"])
    for s in ranked:
        if s["n_illegal"] == 0 and s["illegal_mu"] < Decimal("0.01"):
            continue
        tail = ("不涉及耕地" if s["n_illegal_cultivated"] == 0 and s["illegal_cultivated_mu"] == 0 else
                f"涉及耕地 {s['n_illegal_cultivated']} 宗，面积 {s['illegal_cultivated_mu']:.2f} 亩")
        lines.append(f"{len(lines)}. {s['xzqmc']}违法用地 {s['n_illegal']} 宗，总面积 {s['illegal_mu']:.2f} 亩，{tail}。")
    return lines


def squash(s: str) -> str:
    return re.sub(r"\s+", "", s)


def test_report_md_reads_like_the_county_report(case: Case, rng: Report):
    md = (rng.out / "report.md").read_text(encoding="utf-8")
    # numbers set off by spaces in the title as in the narrative ("2023—2024 年全县…")
    assert md.splitlines()[0] == f"# {NAME} {rng.label} 年土地卫片执法检查汇总分析报告"
    assert f"图1  {NAME} {rng.label} 年监测图斑认定类型分布图" in md
    want = narrative_from_database(case.url, rng.label)
    for line in want:
        assert line in md.splitlines(), line
    for heading in ["## 一、基本情况", "## 二、违法用地情况", "## 三、违法占用耕地比例", "## 四、内外业核查对比",
                    "### 附表1  执法检查数据汇总表", "### 附表2  违法用地数据汇总表", "### 附表3  违法用地分类统计表",
                    "### 附表4  内外业对比表", "### 附表5  违法用地图斑清单"]:
        assert heading in md
    for png in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        assert (rng.out / png).is_file(), png
    assert "county_map.png" in md and "township_chart.png" in md
    over = [s for s in town_stats(case.url, rng.label).values()
            if s["rank"] is not None and s["illegal_cultivated_ratio"] is not None
            and s["illegal_cultivated_ratio"] >= Decimal("0.15")]
    assert over, "test design: a township over the 15 % line"
    line = next(l for l in md.splitlines() if l.startswith("违法占用耕地比例达到 15% 问责线的乡镇有"))
    for s in over:
        assert f"{s['xzqmc']}（{s['illegal_cultivated_ratio'] * 100:.2f}%）" in line


def test_report_md_tables_agree_with_the_workbook(rng: Report):
    """The attached tables of report.md are the workbook's, cell for cell."""
    md = (rng.out / "report.md").read_text(encoding="utf-8")
    block = md.split("### 附表2  违法用地数据汇总表")[1].split("###")[0]
    md_rows = [l.strip("|").split("|") for l in block.splitlines() if l.startswith("| ") and "---" not in l][1:]
    labels, rows, totals, _ = sheet(rng.out, "违法用地数据汇总表")
    assert len(md_rows) == len(rows) + len(totals)
    for md_row, row in zip(md_rows, rows + totals):
        cells = [c.strip().strip("*") for c in md_row]
        i = col(labels, "违法用地·面积")
        assert cells[i] == f"{row[i]:.2f}"


# ------------------------------------------------------------------ report.pdf


def pdf_text(pdf: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout


def test_pdf_embeds_chinese_fonts(rng: Report):
    out = subprocess.run(["pdffonts", str(rng.out / "report.pdf")], capture_output=True, text=True,
                         check=True).stdout.splitlines()[2:]
    assert out, "pdffonts lists the fonts"
    for line in out:
        name, emb = line.split()[0], line.split()[-5]
        assert emb == "yes", f"font {name} is not embedded: {line}"
    assert any(("WenQuanYi" in l or "UMing" in l or "Hei" in l or "Song" in l) for l in out), out


def test_pdf_text_holds_the_narrative_intact(case: Case, rng: Report):
    text = squash(pdf_text(rng.out / "report.pdf"))
    for line in narrative_from_database(case.url, rng.label):
        assert squash(line) in text, line
    for title in SHEETS[1:] + ["违法用地图斑清单", "内外业核查对比", "违法占用耕地比例"]:
        assert title in text, title


def test_pdf_pages_render(rng: Report, tmp_path):
    info = subprocess.run(["pdfinfo", str(rng.out / "report.pdf")], capture_output=True, text=True, check=True).stdout
    pages = int(re.search(r"Pages:\s+(\d+)", info).group(1))
    assert pages >= 4
    subprocess.run(["pdftoppm", "-r", "30", "-png", str(rng.out / "report.pdf"), str(tmp_path / "p")], check=True)
    pngs = sorted(tmp_path.glob("p-*.png"))
    assert len(pngs) == pages
    assert all(p.stat().st_size > 1000 for p in pngs)
    sizes = subprocess.run(["pdfinfo", "-f", "1", "-l", str(pages), str(rng.out / "report.pdf")],
                           capture_output=True, text=True, check=True).stdout
    dims = re.findall(r"size:\s+([\d.]+) x ([\d.]+)", sizes)
    assert (float(dims[0][0]) < float(dims[0][1])), "the report starts on a portrait page"
    assert any(float(w) > float(h) for w, h in dims), "the attached tables are on landscape pages"


def test_figures_and_pdf_have_every_glyph(case: Case, tmp_path, monkeypatch):
    """Render the figures and the PDF in this process with matplotlib's warnings as errors:
    a 'Glyph ... missing' would fail here; the PDF's own check finds nothing missing."""
    from pipeline import figures, pdf, report, report_data, report_doc
    from pipeline.config import load_county
    from pipeline.stats import resolve

    county = load_county(case.toml)
    sel = resolve("2023-2024", county.batches)
    with psycopg.connect(case.url, autocommit=True) as conn:
        towns = report.township_rows(conn, county, sel)
        data = report_data.load(conn, county, sel, [dict(zip(report.TOWNSHIP_COLUMNS, t)) for t in towns], [])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert figures.render(data, tmp_path / report_doc.MAP_PNG, tmp_path / report_doc.CHART_PNG) == []
    blocks = report_doc.build(data, report.narrative(county, sel, towns))
    assert pdf.write(tmp_path / "r.pdf", blocks, tmp_path, "t") == set()


def test_a_missing_glyph_is_caught():
    """The checks above can fail: a character the fonts lack is reported by both."""
    import matplotlib.pyplot as plt
    from pipeline import fonts

    assert fonts.missing_glyphs(fonts.sans(), "稷山县\U0001F6A7") == {"\U0001F6A7"}
    fonts.use_in_matplotlib()
    fig, ax = plt.subplots()
    ax.text(0, 0, "稷山县\U0001F6A7")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig.savefig(Path("/dev/null"), format="png")
    plt.close(fig)
    assert any("missing" in str(w.message).lower() for w in caught)


def test_no_font_is_one_line(case: Case, tmp_path):
    env = pipeline_env(case.url)
    env["WEIPIAN_CJK_FONT"] = str(tmp_path / "no-such-font.ttf")
    proc = subprocess.run([*PYTHON, "report", str(case.toml), "--batch", "2024Q2", "--out", str(tmp_path / "o")],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert "WEIPIAN_CJK_FONT" in lines[-1] and "font" in lines[-1]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o" / "report.md").exists()


PYTHON = [__import__("sys").executable, "-m", "pipeline"]


# ------------------------------------------------------------------ Shapefile and File Geodatabase


def ogrinfo_summary(path: Path, layer: str) -> dict:
    """Feature count, CRS (WKT) and field names as the real ogrinfo reports them (text
    output: GDAL 3.6 has no -json)."""
    out = subprocess.run(["ogrinfo", "-ro", "-so", str(path), layer], capture_output=True, text=True,
                         check=True, encoding="utf-8").stdout
    wkt = out.split("Layer SRS WKT:\n")[1].split("\nData axis to CRS axis mapping")[0]
    fields = re.findall(r"^(\w+): (?:String|Real|Integer|Integer64|Date|DateTime)", out.split("Data axis")[1],
                        flags=re.M)
    return {"featureCount": int(re.search(r"Feature Count: (\d+)", out).group(1)), "wkt": wkt, "fields": fields}


def ogr_values(path: Path, layer: str, field: str) -> list[str]:
    out = subprocess.run(["ogrinfo", "-ro", "-al", "-q", str(path), layer], capture_output=True, text=True,
                         check=True, encoding="utf-8").stdout
    values = re.findall(rf"^\s+{field} \(String\) = (.*)$", out, flags=re.M)
    return [v for v in values if v != "(null)"]


def test_shapefile_opens_in_gdal_with_gbk_text(case: Case, rng: Report):
    shp = rng.out / "classified.shp"
    db = results(case.url, rng.batches)
    info = ogrinfo_summary(shp, "classified")
    assert info["featureCount"] == len(db)
    assert CRS.from_wkt(info["wkt"]).to_epsg() == 4546
    names = info["fields"]
    assert len(names) >= 20 and all(len(n) <= 10 for n in names), names
    assert (rng.out / "classified.cpg").read_text().strip() == "GBK"
    assert sorted(ogr_values(shp, "classified", "XZQMC")) == sorted(p["xzqmc"] for p in db if p["xzqmc"])
    assert sorted(ogr_values(shp, "classified", "RDLX")) == sorted(CLASS_ZH[p["class"]] for p in db)
    dbf = (rng.out / "classified.dbf").read_bytes()
    assert "稷峰镇".encode("gbk") in dbf and "稷峰镇".encode("utf-8") not in dbf, "attributes are GBK, not UTF-8"


def test_shapefile_field_map(rng: Report):
    with open(rng.out / "classified_shp_fields.csv", encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    shp = pyogrio.read_info(rng.out / "classified.shp")
    assert [r["shp_field"] for r in rows] == list(shp["fields"])
    gpkg = pyogrio.read_info(rng.out / "classified.gpkg", layer="change_class")
    assert [r["gpkg_column"] for r in rows] == list(gpkg["fields"])
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    for r in rows:
        assert f"`{r['shp_field']}`" in readme, f"README documents {r['shp_field']}"


def test_shapefile_round_trip_with_pyogrio(case: Case, rng: Report):
    df = pyogrio.read_dataframe(rng.out / "classified.shp")
    db = {(p["batch"], p["jcbh"]): p for p in results(case.url, rng.batches)}
    assert len(df) == len(db)
    for _, r in df.iterrows():
        p = db[(r["PC"], r["JCBH"])]
        assert r["RDLX"] == CLASS_ZH[p["class"]] and r["NYPD"] == CLASS_ZH[p["auto_class"]]
        assert (r["XZQMC"] if isinstance(r["XZQMC"], str) and r["XZQMC"] else None) == p["xzqmc"]
        assert abs(r["AREA_M2"] - p["area_m2"]) < 0.01 and abs(r["ILLEG_M2"] - p["illegal_m2"]) < 0.01


def test_file_geodatabase_opens_in_gdal(case: Case, rng: Report):
    gdb = rng.out / "classified.gdb"
    db = results(case.url, rng.batches)
    info = ogrinfo_summary(gdb, "change_class")
    assert info["featureCount"] == len(db)
    assert CRS.from_wkt(info["wkt"]).to_epsg() == 4546
    assert "xzqmc" in info["fields"] and "class_zh" in info["fields"]
    assert sorted(ogr_values(gdb, "change_class", "class_zh")) == sorted(CLASS_ZH[p["class"]] for p in db)
    df = pyogrio.read_dataframe(gdb, layer="change_class")
    got = {(r["batch"], r["jcbh"]): r for _, r in df.iterrows()}
    for p in db:
        r = got[(p["batch"], p["jcbh"])]
        assert (r["xzqmc"] if isinstance(r["xzqmc"], str) and r["xzqmc"] else None) == p["xzqmc"]
        assert r["class"] == p["class"]
        assert abs(r["area_m2"] - p["area_m2"]) < 0.01
        assert abs(r.geometry.area - p["area_m2"]) / p["area_m2"] < 0.01


# ------------------------------------------------------------------ the map


def test_the_map_draws_every_polygon(case: Case):
    """Each polygon as its shape (one collection per class) and as a marker."""
    import matplotlib.pyplot as plt

    from pipeline import figures, report, report_data
    from pipeline.config import load_county
    from pipeline.stats import resolve

    county = load_county(case.toml)
    sel = resolve("2023-2024", county.batches)
    with psycopg.connect(case.url, autocommit=True) as conn:
        towns = report.township_rows(conn, county, sel)
        data = report_data.load(conn, county, sel, [dict(zip(report.TOWNSHIP_COLUMNS, t)) for t in towns], [])
    fig = figures.county_map(data)
    try:
        ax = fig.axes[0]
        shapes = [c for c in ax.collections if c.get_zorder() == 3]
        markers = [c for c in ax.collections if c.get_zorder() > 3]
        assert len(shapes) == len({p["class"] for p in data.polygons})
        assert sum(len(c.get_paths()) for c in shapes) == len(data.polygons) == 13
        assert sum(len(c.get_offsets()) for c in markers) == len(data.polygons)
        assert len([a for a in ax.patches if a.get_zorder() < 3]) == len(TOWNS) + 1, \
            "the townships and the county outline"
    finally:
        plt.close(fig)


# ------------------------------------------------------------------ the report's processes


def _job_pid(path: str) -> None:
    Path(path).write_text(str(os.getpid()), encoding="utf-8")


def _job_raise(err: BaseException) -> None:
    raise err


def _job_slow_write(path: str) -> None:
    time.sleep(0.5)
    Path(path).write_text("done", encoding="utf-8")


def _job_die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def test_workbook_and_layers_are_written_beside_the_rest(tmp_path):
    from pipeline import report

    with report._beside((_job_pid, (str(tmp_path / "a"),)), (_job_pid, (str(tmp_path / "b"),))):
        here = os.getpid()
    pids = {int((tmp_path / n).read_text(encoding="utf-8")) for n in "ab"}
    if report._can_fork():
        assert here not in pids and len(pids) == 2
    else:  # no fork or one core: the jobs run in this process
        assert pids == {here}


def test_an_error_of_a_child_reaches_the_caller_as_it_was():
    """The CLI's exit status depends on the type: a full disk stays an OSError (5), a
    missing font a FontError (5), with the child's traceback chained for the log."""
    from pipeline import fonts, report

    with pytest.raises(OSError) as info:
        with report._beside((_job_raise, (OSError(errno.ENOSPC, "No space left on device", "t.xlsx"),))):
            pass
    assert info.value.errno == errno.ENOSPC and info.value.filename == "t.xlsx"
    with pytest.raises(fonts.FontError) as info:
        with report._beside((_job_pid, ("/dev/null",)), (_job_raise, (fonts.FontError("没有中文字体"),))):
            pass
    assert info.value.exit_code == 5 and str(info.value) == "没有中文字体"
    if report._can_fork():
        assert isinstance(info.value.__cause__, report.WorkerError)
        assert "_job_raise" in str(info.value.__cause__)


def test_children_are_waited_for_when_this_process_fails(tmp_path):
    from pipeline import report

    with pytest.raises(ValueError, match="body"):
        with report._beside((_job_slow_write, (str(tmp_path / "late"),))):
            raise ValueError("body")
    assert (tmp_path / "late").read_text(encoding="utf-8") == "done"


def test_a_killed_child_is_an_error():
    from pipeline import report

    if not report._can_fork():
        pytest.skip("no child processes here")
    with pytest.raises(RuntimeError, match="ended abnormally"):
        with report._beside((_job_die, ())):
            pass


def test_a_workbook_that_cannot_be_written_fails_the_report_cleanly(case: Case, tmp_path, monkeypatch):
    """The workbook is written in a child process: its full disk still fails write_outputs
    with the OSError, and its half-written temporary file is removed."""
    from pipeline import report, tables
    from pipeline.config import load_county
    from pipeline.stats import resolve

    def full_disk(path, *args):
        Path(path).write_bytes(b"PK\x03\x04")  # part of a file under the temporary name
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(tables, "write_workbook", full_disk)
    county = load_county(case.toml)
    sel = resolve("2024Q2", county.batches)
    out = tmp_path / "o"
    with psycopg.connect(case.url, autocommit=True) as conn:
        with pytest.raises(OSError) as info:
            report.write_outputs(conn, county, sel, out)
    assert info.value.errno == errno.ENOSPC
    assert not (out / "tables.xlsx").exists()
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")], "no temporary file left"
    assert (out / "report.pdf").is_file() and (out / "classified.gdb").is_dir(), "the other files are whole"


# ------------------------------------------------------------------ the notebook


def test_notebook_runs_against_the_database(case: Case, monkeypatch):
    from nbclient import NotebookClient

    path = PROJECT_ROOT / "notebooks" / "explore_county.ipynb"
    nb = nbformat.read(path, as_version=4)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "one cell tagged 'parameters'"
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "the notebook is stored clean"
    params[0].source = f'COUNTY_CODE = "{CODE}"\nSELECTION = "2023—2024"\n'
    monkeypatch.setenv("DATABASE_URL", case.url)
    monkeypatch.delenv("PGSERVICE", raising=False)
    NotebookClient(nb, kernel_name="python3", timeout=180,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    text = "\n".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
                     for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    images = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code"
                 for o in c.get("outputs", []))
    assert f"{NAME}（{CODE}），统计范围 2023—2024" in text
    for _, name in TOWNS:
        assert name in text
    assert images == 2, "the map and the ratio chart"
    assert "missing from" not in text and "Glyph" not in text
    assert "达到 15% 问责线的乡镇" in text


def test_output_files_are_readable_by_others(rng: Report):
    """Written through a private temporary file, but given the mode of any new file (umask)."""
    mask = os.umask(0)
    os.umask(mask)
    files = [p for p in rng.out.rglob("*") if p.is_file()]
    assert len(files) > 8
    modes = {p.relative_to(rng.out).as_posix(): oct(p.stat().st_mode & 0o777) for p in files}
    assert modes == {name: oct(0o666 & ~mask) for name in modes}
