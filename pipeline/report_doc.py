"""The 汇总分析报告 as a sequence of blocks, rendered twice: report.md and report.pdf.

Writing the content once keeps the two files saying the same thing; the
renderers (:mod:`pipeline.report_md`, :mod:`pipeline.pdf`) only decide how a
heading, a paragraph, a table or a figure looks. The narrative lines are the
seed-004 lines of :func:`pipeline.report.narrative`, unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from pipeline import report_tables as rt
from pipeline.report_data import ILLEGAL_SUBTYPES, SUBTYPE_ZH, ReportData


@dataclass
class Title:
    text: str
    subtitle: str
    #: where a title too long for one line breaks: after "<county><label> 年"
    lines: tuple[str, ...] = ()


@dataclass
class Heading:
    text: str


@dataclass
class Para:
    text: str
    indent: bool = True  # first-line indent of two characters, as Chinese body text


@dataclass
class Bullet:
    text: str


@dataclass
class TableBlock:
    table: rt.Table
    caption: str
    landscape: bool = False  # an attachment page of its own, A4 landscape, in the PDF


@dataclass
class Figure:
    path: Path  # a PNG beside report.md
    caption: str


LAYER_ZH = {"township": "乡镇界", "landuse": "地类图斑", "farmland": "永久基本农田", "approval": "用地审批",
            "change": "监测图斑", "plan": "规划管控", "field_check": "外业核查"}
MAP_PNG = "county_map.png"
CHART_PNG = "township_chart.png"


def _mu(v) -> str:
    return f"{(v or Decimal(0)):.2f}"


def _pct(part, whole) -> str:
    return "—" if not whole else f"{Decimal(part) / Decimal(whole) * 100:.1f}%"


def build(data: ReportData, narrative: list[str]) -> list:
    """The blocks of the report for one selection."""
    county, sel, c = data.county, data.selection, data.county_row
    label = sel.label
    checked = sum(r["n"] for r in data.checks if r["is_county"])
    agree = sum(r["n"] for r in data.checks if r["is_county"] and r["auto_class"] == r["class"])
    changed = sum(1 for p in data.polygons if p["auto_class_zh"] != p["class_zh"])
    blocks: list = [Title(f"{county.name} {label} 年土地卫片执法检查汇总分析报告",
                          f"县级行政区划代码：{county.code}；监测批次：{'、'.join(sel.batches)}；"
                          f"图斑 {len(data.polygons)} 个。",
                          (f"{county.name} {label} 年", "土地卫片执法检查汇总分析报告"))]

    blocks += [Heading("一、基本情况"), Para(
        f"{label} 年本县共有监测图斑 {c['n_total']} 个，面积 {_mu(c['area_mu'])} 亩。经内业比对和外业核查，"
        f"认定合法用地 {c['n_legal']} 宗、实地未变化 {c['n_unchanged']} 宗、农业结构调整 {c['n_agri']} 宗、"
        f"违法用地 {c['n_illegal']} 宗；按面积，合法用地 {_mu(c['legal_mu'])} 亩，实地未变化 "
        f"{_mu(c['unchanged_mu'])} 亩，农业结构调整 {_mu(c['agri_mu'])} 亩，违法用地 {_mu(c['illegal_mu'])} 亩。"
        f"新增建设用地 {_mu(c['new_construction_mu'])} 亩，其中占用耕地 {_mu(c['new_cultivated_mu'])} 亩。"),
        Figure(Path(MAP_PNG), f"图1  {county.name} {label} 年监测图斑认定类型分布图")]

    blocks += [Heading("二、违法用地情况"), Para(narrative[0])]
    if len(narrative) > 1:
        blocks.append(Para("各乡镇违法占用耕地面积从大到小依次排名如下。"))
        blocks += [Para(line) for line in narrative[1:]]
    blocks.append(Figure(Path(CHART_PNG), "图2  各乡镇违法用地面积及占用耕地面积（亩）"))
    if c["n_illegal"] or c["illegal_mu"]:
        parts = []
        for s in ILLEGAL_SUBTYPES:
            v = data.subtypes[("county", None, s)]
            if v["n"] or v["area_mu"]:
                parts.append(f"{SUBTYPE_ZH[s]} {v['n']} 宗、面积 {_mu(v['area_mu'])} 亩，分别占违法用地宗数和面积的 "
                             f"{_pct(v['n'], c['n_illegal'])} 和 {_pct(v['area_mu'], c['illegal_mu'])}")
        blocks.append(Para("按违法类型分：" + "；".join(parts) + "。"))
        if data.has_plan:
            ubg = sum((p["illegal_outside_ubg_mu"] or 0 for p in data.polygons), Decimal("0.00"))
            eco = sum((p["illegal_in_eco_mu"] or 0 for p in data.polygons), Decimal("0.00"))
            blocks.append(Para(f"违法用地中位于城镇开发边界外 {_mu(ubg)} 亩，位于生态保护红线内 {_mu(eco)} 亩。"))

    blocks.append(Heading("三、违法占用耕地比例"))
    ratio = c["illegal_cultivated_ratio"]
    if ratio is None:
        blocks.append(Para("本期新增建设用地未占用耕地，不计算违法占用耕地比例。"))
    else:
        reach = "达到" if ratio >= rt.LINE else "未达到"
        blocks.append(Para(f"全县新增建设用地占用耕地 {_mu(c['new_cultivated_mu'])} 亩，其中违法占用耕地 "
                           f"{_mu(c['illegal_cultivated_mu'])} 亩，违法占用耕地比例为 {rt.ratio_text(ratio)}，"
                           f"{reach} 15% 的问责线。"))
    over = data.over_line()
    if over:
        names = "、".join(f"{t['xzqmc']}（{rt.ratio_text(t['illegal_cultivated_ratio'])}）" for t in over)
        blocks += [Para(f"违法占用耕地比例达到 15% 问责线的乡镇有 {len(over)} 个：{names}。"),
                   TableBlock(rt.over_line_table(data), "表1  违法占用耕地比例达到 15% 的乡镇")]
    elif ratio is not None:
        blocks.append(Para("各乡镇违法占用耕地比例均未达到 15%。"))

    blocks.append(Heading("四、内外业核查对比"))
    if checked:
        blocks += [Para(f"有外业核查记录的图斑 {checked} 个，内外业判定一致 {agree} 个，一致率 {_pct(agree, checked)}；"
                        f"外业核查改变内业判定的图斑 {changed} 个（统计均按最终认定类型）。"
                        "下表行为内业判定、列为外业核查后的最终认定，供调整内业判定规则参考。"),
                   TableBlock(rt.county_matrix(data), "表2  全县内外业判定对比（宗）"),
                   TableBlock(rt.township_accuracy(data), "表3  各乡镇内外业一致情况")]
    else:
        blocks.append(Para(f"本次统计范围内没有外业核查记录；外业核查改变内业判定的图斑 {changed} 个"
                           "（统计均按最终认定类型）。"))

    blocks += [Heading("五、数据说明"),
               Bullet("面积为 CGCS2000 椭球面积，1 亩 = 666.667 平方米；耕地面积已扣除田坎（KCXS）。"),
               Bullet("各乡镇面积按图斑落在该乡镇内的部分计算，宗数计入面积占比最大的乡镇。"),
               Bullet("统计表的合计为各行显示值（保留两位小数）之和；与按未取整面积汇总的全县数有尾差时，"
                      "表下注明，正文采用全县数。"),
               Bullet("附表及逐图斑明细见同一目录下的 tables.xlsx；图斑图层见 classified.gpkg、"
                      "classified.shp（GBK 编码）和 classified.gdb。")]
    if data.quarantined:
        blocks.append(Bullet("以下数据源有要素被隔离（未参与计算），详见数据库表 weipian.quarantine："
                             + "；".join(f"{Path(path).name}（{LAYER_ZH.get(kind, kind)}）{n} 个"
                                       for kind, path, n in data.quarantined) + "。"))

    attachments = [rt.enforcement_summary(data), rt.illegal_summary(data), rt.illegal_by_subtype(data)]
    if checked:
        attachments.append(rt.field_check_matrix(data))
    attachments.append(rt.illegal_list(data))
    for i, t in enumerate(attachments, 1):
        blocks.append(TableBlock(t, f"附表{i}  {t.name}", landscape=True))
    return blocks
