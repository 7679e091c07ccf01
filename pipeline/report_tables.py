"""The ministry's tables (seed 002) as data: headers, rows and totals, as displayed.

One model feeds tables.xlsx, report.md and report.pdf, so a number reads the same
in all three. Cells hold what the reader sees: counts as int, 亩 as Decimal with 2
decimals (rounded once per cell in SQL), ratios as Decimal fractions with 4
decimals, text as str.

Totals rule: every 合计 row or column is the sum of the cells it totals **as
displayed** (rounded), so an auditor who adds up a column gets the printed
total. The county values of township_stat (unrounded areas added, then rounded)
can differ from such a sum by a few 0.01 亩; where they do, the table carries a
note giving the county value, which is also the one the narrative uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from pipeline.report_data import CLASSES, ILLEGAL_SUBTYPES, SUBTYPE_ZH, ReportData

CLASS_ZH = {"legal": "合法用地", "unchanged": "实地未变化", "agri_adjust": "农业结构调整", "illegal": "违法用地"}
#: class → its 亩 column in township_stat
CLASS_MU = {"legal": "legal_mu", "unchanged": "unchanged_mu", "agri_adjust": "agri_mu", "illegal": "illegal_mu"}
LINE = Decimal("0.15")  # 违法占用耕地比例 accountability line
OUTSIDE_LABEL = "乡镇界外"
TOTAL_LABEL = "合计"
SFBH_ZH = {"是": "是", "否": "否"}


@dataclass
class Column:
    title: str
    kind: str  # text | int | mu | ratio | flag | date
    group: str | None = None  # the upper header cell, spanning neighbours of the same group
    width: float = 9.0  # in characters, for the workbook


@dataclass
class Table:
    """A table as displayed; ``totals`` are its bottom rows (合计 and the like)."""

    name: str  # the sheet name (≤ 31 characters) and caption
    columns: list[Column]
    rows: list[list] = field(default_factory=list)
    totals: list[list] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    freeze_cols: int = 0  # columns kept in view when scrolling right
    #: leading columns that the report prints only where they change (blocks of rows
    #: of one township); the workbook repeats them on every row, for filtering
    block_cols: int = 0

    def column(self, title: str, group: str | None = None) -> int:
        """Index of the column with this title (and group); for tests and callers."""
        for i, c in enumerate(self.columns):
            if c.title == title and (group is None or c.group == group):
                return i
        raise KeyError(f"{self.name}: no column {group + '·' if group else ''}{title}")


def _mu(v) -> Decimal:
    return Decimal(0).quantize(Decimal("0.01")) if v is None else Decimal(v).quantize(Decimal("0.01"))


def sum_rows(columns: list[Column], rows: list[list], label_col: int, label: str = TOTAL_LABEL) -> list:
    """The 合计 row: counts and 亩 summed as displayed, text and ratios left blank."""
    total: list = [None] * len(columns)
    for i, c in enumerate(columns):
        if c.kind == "int":
            total[i] = sum(int(r[i] or 0) for r in rows)
        elif c.kind == "mu":
            total[i] = sum((_mu(r[i]) for r in rows), Decimal("0.00"))
    total[label_col] = label
    return total


def ratio_text(v: Decimal | None) -> str:
    return "" if v is None else f"{v * 100:.2f}%"


def flag(ratio: Decimal | None) -> str:
    return "是" if ratio is not None and ratio >= LINE else ""


def _official_notes(total: list, official: list[tuple[int, str, Decimal]]) -> list[str]:
    """Notes where a 合计 cell (column index, label) differs from the county value
    computed before rounding."""
    diffs = [f"{label} {value:.2f} 亩（合计行 {total[i]:.2f} 亩）"
             for i, label, value in official if _mu(value) != total[i]]
    if not diffs:
        return []
    return ["合计行为上列各行显示值之和；按各图斑未取整面积汇总后取整的全县数为：" + "；".join(diffs)
            + "。差额系四舍五入尾差，报告正文采用全县数。"]


def _units(data: ReportData) -> list[tuple[str | None, str, dict]]:
    """(code, name, township_stat-shaped row) of every township, then the outside row."""
    units = [(t["xzqdm"], t["xzqmc"], t) for t in data.township_rows]
    if data.has_outside:
        units.append((None, OUTSIDE_LABEL, data.outside))
    return units


# ------------------------------------------------------------------ 变化图斑情况统计表

def polygon_sheet(data: ReportData) -> Table:
    g1, g2, g3 = "面积（亩）", "违法用地中（亩）", "合法用地中（亩）"
    cols = [
        Column("序号", "int", width=6), Column("监测编号", "text", width=17), Column("批次", "text", width=8),
        Column("乡镇代码", "text", width=11), Column("乡镇名称", "text", width=10),
        Column("变化类型", "text", width=10), Column("后时相", "date", width=11),
        Column("内业判定", "text", "判定", 12), Column("外业核查是否变化", "text", "判定", 9),
        Column("外业核查认定", "text", "判定", 12), Column("最终认定", "text", "判定", 12),
        Column("违法类型", "text", "判定", 15),
        Column("图斑面积", "mu", g1), Column("合法用地", "mu", g1), Column("实地未变化", "mu", g1),
        Column("农业结构调整", "mu", g1), Column("违法用地", "mu", g1), Column("耕地", "mu", g1),
        Column("永久基本农田", "mu", g1),
        Column("耕地", "mu", g2), Column("永久基本农田", "mu", g2),
        *(Column(SUBTYPE_ZH[s], "mu", g2) for s in ILLEGAL_SUBTYPES),
    ]
    keys = ["area_mu", "legal_mu", "unchanged_mu", "agri_mu", "illegal_mu", "cultivated_mu", "farmland_mu",
            "illegal_cultivated_mu", "illegal_farmland_mu", *(f"{s}_mu" for s in ILLEGAL_SUBTYPES)]
    if data.has_plan:
        cols += [Column("城镇开发边界外", "mu", g2), Column("生态保护红线内", "mu", g2)]
        keys += ["illegal_outside_ubg_mu", "illegal_in_eco_mu"]
    cols += [Column(SUBTYPE_ZH["bnpbj"], "mu", g3), Column(SUBTYPE_ZH["wnpbj"], "mu", g3)]
    keys += ["bnpbj_mu", "wnpbj_mu"]
    for c in cols:
        if c.kind == "mu":
            c.width = 10
    rows = []
    for i, p in enumerate(data.polygons, 1):
        rows.append([i, p["jcbh"], p["batch"], p["xzqdm"] or "", p["xzqmc"] or OUTSIDE_LABEL, p["bhlx"] or "",
                     p["hsx"], p["auto_class_zh"], SFBH_ZH.get(p["sfbh"] or "", p["sfbh"] or ""),
                     p["pdlx_zh"] or "", p["class_zh"], p["main_subtype_zh"] or "",
                     *(None if p[k] is None else _mu(p[k]) for k in keys)])
    t = Table("变化图斑情况统计表", cols, rows, freeze_cols=3)
    total = sum_rows(cols, rows, label_col=1)
    total[0] = None
    total[1] = f"{TOTAL_LABEL}（{len(rows)} 个图斑）"
    t.totals = [total]
    c = data.county_row
    official = [(t.column("图斑面积"), "图斑面积", c["area_mu"])]
    official += [(t.column(CLASS_ZH[k], g1), f"{CLASS_ZH[k]}面积", c[CLASS_MU[k]]) for k in CLASSES]
    t.notes = ["面积单位：亩（1 亩 = 666.667 平方米，CGCS2000 椭球面积）；耕地已扣除田坎。"
               "每个图斑的各类面积为该图斑全部面积（不分乡镇）。"] + _official_notes(total, official)
    return t


# ------------------------------------------------------------------ 执法检查数据汇总表

def enforcement_summary(data: ReportData) -> Table:
    cols = [Column("乡镇代码", "text", width=11), Column("乡镇名称", "text", width=10)]
    for label in ["监测图斑"] + [CLASS_ZH[c] for c in CLASSES]:
        cols += [Column("宗数", "int", label, 7), Column("面积", "mu", label, 10)]
    cols += [Column("面积", "mu", "新增建设用地", 10), Column("其中耕地", "mu", "新增建设用地", 10)]
    keys = [("n_total", "area_mu"), ("n_legal", "legal_mu"), ("n_unchanged", "unchanged_mu"),
            ("n_agri", "agri_mu"), ("n_illegal", "illegal_mu")]
    rows = []
    for code, name, r in _units(data):
        row = [code or "", name]
        for n, a in keys:
            row += [r[n], _mu(r[a])]
        rows.append(row + [_mu(r["new_construction_mu"]), _mu(r["new_cultivated_mu"])])
    t = Table("执法检查数据汇总表", cols, rows, freeze_cols=2)
    total = sum_rows(cols, rows, label_col=1)
    t.totals = [total]
    c = data.county_row
    official = [(t.column("面积", label), f"{label}面积", c[a])
                for label, (_, a) in zip(["监测图斑"] + [CLASS_ZH[x] for x in CLASSES], keys)]
    official += [(t.column("面积", "新增建设用地"), "新增建设用地面积", c["new_construction_mu"]),
                 (t.column("其中耕地", "新增建设用地"), "新增建设用地占用耕地", c["new_cultivated_mu"])]
    t.notes = ["宗数按图斑最终认定类型计入其面积占比最大的乡镇；面积按图斑各部分的认定类型计入其所在乡镇。"
               "新增建设用地 = 合法用地 + 违法用地。"] + _official_notes(total, official)
    return t


# ------------------------------------------------------------------ 违法用地数据汇总表

def illegal_summary(data: ReportData) -> Table:
    gi, gq, gs, gn = "违法用地", "其中", "违法类型（面积）", "新增建设用地"
    cols = [Column("排名", "int", width=6), Column("乡镇代码", "text", width=11), Column("乡镇名称", "text", width=10),
            Column("宗数", "int", gi, 7), Column("面积", "mu", gi, 10),
            Column("涉及耕地宗数", "int", gq, 9), Column("耕地面积", "mu", gq, 10),
            Column("永久基本农田面积", "mu", gq, 11),
            *(Column(SUBTYPE_ZH[s], "mu", gs, 11) for s in ILLEGAL_SUBTYPES),
            Column("面积", "mu", gn, 10), Column("占用耕地", "mu", gn, 10),
            Column("违法占用耕地比例", "ratio", width=11), Column("达到15%问责线", "flag", width=9)]
    rows = []
    for code, name, r in _units(data):
        unit = "township" if code else "outside"
        rows.append([r.get("rank"), code or "", name, r["n_illegal"], _mu(r["illegal_mu"]),
                     r["n_illegal_cultivated"], _mu(r["illegal_cultivated_mu"]), _mu(r["illegal_farmland_mu"]),
                     *(_mu(data.subtypes[(unit, code, s)]["area_mu"]) for s in ILLEGAL_SUBTYPES),
                     _mu(r["new_construction_mu"]), _mu(r["new_cultivated_mu"]),
                     r["illegal_cultivated_ratio"], flag(r["illegal_cultivated_ratio"])])
    t = Table("违法用地数据汇总表", cols, rows, freeze_cols=3)
    total = sum_rows(cols, rows, label_col=2)
    total[0] = None
    c = data.county_row
    total[t.column("违法占用耕地比例")] = c["illegal_cultivated_ratio"]
    total[t.column("达到15%问责线")] = flag(c["illegal_cultivated_ratio"])
    t.totals = [total]
    official = [(t.column("面积", gi), "违法用地面积", c["illegal_mu"]),
                (t.column("耕地面积"), "违法占用耕地面积", c["illegal_cultivated_mu"]),
                (t.column("永久基本农田面积"), "违法占用永久基本农田面积", c["illegal_farmland_mu"])]
    official += [(t.column(SUBTYPE_ZH[s]), f"{SUBTYPE_ZH[s]}面积", data.subtypes[("county", None, s)]["area_mu"])
                 for s in ILLEGAL_SUBTYPES]
    official += [(t.column("面积", gn), "新增建设用地面积", c["new_construction_mu"]),
                 (t.column("占用耕地"), "新增建设用地占用耕地", c["new_cultivated_mu"])]
    t.notes = ["违法占用耕地比例 = 违法占用耕地面积 ÷ 新增建设用地占用耕地面积，达到 15% 为问责线；"
               "合计行的比例按全县未取整面积计算。排名按违法占用耕地面积、再按违法用地面积从大到小。"
               "涉及耕地宗数：最终认定为违法用地且违法占用耕地不少于 0.005 亩的图斑。"] \
        + _official_notes(total, official)
    return t


# ------------------------------------------------------------------ 违法用地分类统计表

def illegal_by_subtype(data: ReportData) -> Table:
    cols = [Column("乡镇代码", "text", width=11), Column("乡镇名称", "text", width=10)]
    for label in [TOTAL_LABEL] + [SUBTYPE_ZH[s] for s in ILLEGAL_SUBTYPES]:
        cols += [Column("宗数", "int", label, 7), Column("面积", "mu", label, 10),
                 Column("耕地", "mu", label, 10)]
    rows = []
    for code, name, _ in _units(data):
        unit = "township" if code else "outside"
        cells = []
        for s in ILLEGAL_SUBTYPES:
            v = data.subtypes[(unit, code, s)]
            cells += [v["n"], _mu(v["area_mu"]), _mu(v["cultivated_mu"])]
        row_total = [sum(cells[0::3]), sum(cells[1::3], Decimal("0.00")), sum(cells[2::3], Decimal("0.00"))]
        rows.append([code or "", name, *row_total, *cells])
    t = Table("违法用地分类统计表", cols, rows, freeze_cols=2)
    total = sum_rows(cols, rows, label_col=1)
    t.totals = [total]
    official = []
    for s in ILLEGAL_SUBTYPES:
        v = data.subtypes[("county", None, s)]
        official += [(t.column("面积", SUBTYPE_ZH[s]), f"{SUBTYPE_ZH[s]}面积", v["area_mu"]),
                     (t.column("耕地", SUBTYPE_ZH[s]), f"{SUBTYPE_ZH[s]}耕地", v["cultivated_mu"])]
    t.notes = ["每宗违法用地按其面积最大的违法类型计 1 宗（计入图斑所属乡镇）；面积为各违法类型部分的面积"
               "（计入所在乡镇，含合法、未变化图斑中的少量违法部分）。合计列为各类型显示值之和。"] \
        + _official_notes(total, official)
    return t


# ------------------------------------------------------------------ 内外业对比表

def field_check_matrix(data: ReportData) -> Table:
    g = "外业核查后认定"
    cols = [Column("乡镇代码", "text", width=11), Column("乡镇名称", "text", width=10),
            Column("内业判定", "text", width=13),
            *(Column(CLASS_ZH[c], "int", g, 11) for c in CLASSES),
            Column("合计", "int", width=7), Column("一致", "int", width=7), Column("一致率", "ratio", width=9)]
    t = Table("内外业对比表", cols, freeze_cols=3, block_cols=2)
    cells: dict[tuple, int] = {}
    for r in data.checks:
        key = ("county",) if r["is_county"] else ("unit", r["xzqdm"])
        cells[key + (r["auto_class"], r["class"])] = r["n"]
    names = {code: name for code, (name, _) in data.township_shapes.items()}
    units = sorted({r["xzqdm"] for r in data.checks if not r["is_county"]}, key=lambda c: (c is None, c or ""))

    def block(key: tuple, code: str, name: str) -> list[list]:
        out = []
        for desk in CLASSES:
            counts = [cells.get(key + (desk, fin), 0) for fin in CLASSES]
            n, agree = sum(counts), counts[CLASSES.index(desk)]
            out.append([code, name, CLASS_ZH[desk], *counts, n, agree, _share(agree, n)])
        return out

    for code in units:
        t.rows += block(("unit", code), code or "", names.get(code, OUTSIDE_LABEL) if code else OUTSIDE_LABEL)
    county = block(("county",), data.county.code, f"{data.county.name}{TOTAL_LABEL}")
    grand = sum_rows(cols, county, label_col=2, label="总计")
    grand[0], grand[1] = data.county.code, f"{data.county.name}{TOTAL_LABEL}"
    grand[-1] = _share(grand[-2], grand[-3])
    t.totals = county + [grand] if t.rows else []
    t.notes = (["只统计有外业核查记录（是否变化或核查认定类型）的图斑；行为内业判定，列为外业核查后的最终认定，"
                "对角线为内外业一致。全县合计各行为上列各乡镇同一内业判定行之和。"] if t.rows
               else ["本次统计范围内没有外业核查记录。"])
    return t


def _share(part: int, whole: int) -> Decimal | None:
    return None if not whole else (Decimal(part) / Decimal(whole)).quantize(Decimal("0.0001"))


# ------------------------------------------------------------------ report-only tables

def illegal_list(data: ReportData) -> Table:
    """违法用地图斑清单: the illegal polygons, for the 整改 ledger (report attachment)."""
    g = "面积（亩）"
    cols = [Column("序号", "int", width=5), Column("监测编号", "text", width=17), Column("批次", "text", width=8),
            Column("乡镇名称", "text", width=10), Column("变化类型", "text", width=10),
            Column("后时相", "date", width=11), Column("违法类型", "text", width=15),
            Column("图斑面积", "mu", g, 10), Column("违法用地", "mu", g, 10), Column("占用耕地", "mu", g, 10),
            Column("占用永久基本农田", "mu", g, 10)]
    # by township, as the 整改 ledger is kept
    illegal = sorted((p for p in data.polygons if p["class"] == "illegal"),
                     key=lambda p: (p["xzqdm"] is None, p["xzqdm"] or "", p["batch"], p["jcbh"]))
    rows = [[i, p["jcbh"], p["batch"], p["xzqmc"] or OUTSIDE_LABEL, p["bhlx"] or "", p["hsx"],
             p["main_subtype_zh"] or "", _mu(p["area_mu"]), _mu(p["illegal_mu"]),
             _mu(p["illegal_cultivated_mu"]), _mu(p["illegal_farmland_mu"])]
            for i, p in enumerate(illegal, 1)]
    t = Table("违法用地图斑清单", cols, rows)
    if rows:
        total = sum_rows(cols, rows, label_col=1)
        total[0] = None
        t.totals = [total]
    t.notes = ["最终认定为违法用地的图斑（合法、未变化图斑中的少量违法部分不列入）；逐图斑全部信息见 tables.xlsx。"]
    return t


def over_line_table(data: ReportData) -> Table:
    """Townships at or over the 15 % line, highest ratio first."""
    cols = [Column("乡镇名称", "text", width=12), Column("违法占用耕地（亩）", "mu", width=12),
            Column("新增建设用地占用耕地（亩）", "mu", width=14), Column("违法占用耕地比例", "ratio", width=12)]
    rows = [[t["xzqmc"], _mu(t["illegal_cultivated_mu"]), _mu(t["new_cultivated_mu"]), t["illegal_cultivated_ratio"]]
            for t in data.over_line()]
    return Table("违法占用耕地比例达到15%的乡镇", cols, rows)


def township_accuracy(data: ReportData) -> Table:
    """Per township: checked polygons, agreement, and the changes of judgement (desk → final)."""
    cols = [Column("乡镇名称", "text", width=12), Column("核查图斑", "int", width=7),
            Column("内外业一致", "int", width=7), Column("一致率", "ratio", width=7),
            Column("改判情况（内业→外业）", "text", width=34)]
    by_unit: dict = {}
    for r in data.checks:
        key = "county" if r["is_county"] else r["xzqdm"]
        by_unit.setdefault(key, []).append(r)
    names = {code: name for code, (name, _) in data.township_shapes.items()}
    rows = []
    for key in sorted(by_unit, key=lambda k: (k == "county", k is None, k or "")):
        rs = by_unit[key]
        n = sum(r["n"] for r in rs)
        agree = sum(r["n"] for r in rs if r["auto_class"] == r["class"])
        changes = "；".join(f"{CLASS_ZH[r['auto_class']]}→{CLASS_ZH[r['class']]} {r['n']}"
                           for r in sorted(rs, key=lambda r: (-r["n"], r["auto_class"], r["class"]))
                           if r["auto_class"] != r["class"])
        name = f"{data.county.name}（全县）" if key == "county" else (names.get(key, OUTSIDE_LABEL) if key else OUTSIDE_LABEL)
        rows.append([name, n, agree, _share(agree, n), changes or "无"])
    return Table("各乡镇内外业一致情况", cols, rows)


def county_matrix(data: ReportData) -> Table:
    """The county's confusion matrix only (the report body)."""
    full = field_check_matrix(data)
    t = Table("全县内外业判定对比（宗）", full.columns[2:], [r[2:] for r in full.totals[:4]])
    if full.totals:
        t.totals = [full.totals[-1][2:]]
        t.totals[0][0] = TOTAL_LABEL
    return t


def workbook_tables(data: ReportData) -> list[Table]:
    """The sheets of tables.xlsx, in order."""
    return [polygon_sheet(data), enforcement_summary(data), illegal_summary(data),
            illegal_by_subtype(data), field_check_matrix(data)]
