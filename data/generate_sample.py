#!/usr/bin/env python3
"""Generate the synthetic sample county 稷山县 (140824) for weipian.

    python data/generate_sample.py [--out data/sample] [--seed 1]

Everything here is synthetic: no real parcel, permit or person is reproduced.
The same seed gives the same files (fixed random streams, fixed file-header
dates, reproducible File Geodatabase UUIDs, XLSX with fixed zip timestamps).

How the county is built (all geometry in EPSG:4546 metres, then written in the
CRS each delivery uses):

1.  **Outline.** A star-shaped polygon (ellipse with low-frequency wobble)
    scaled to about 25 km x 16 km around x = 500 000, y = 3 943 500.
2.  **Landscape.** Fixed sine curves give the 汾河 (river), a northern ridge
    (吕梁山 foothills: forest, grass, terraced 旱地) and a southern loess
    tableland; settlements are the county seat, six township seats, an
    industrial park and ~48 villages.
3.  **Cells.** ~3 600 random seeds (four times denser inside settlements) give
    Voronoi cells.  Each cell gets a 三调 class from the mix of its zone
    (settlement core, settlement fringe, mountain, plain, riverside, tableland)
    and a township label (the nearest of ~90 sub-seeds, each labelled with its
    nearest township seed; this gives ragged township borders along parcel
    edges).
4.  **Linear features.** River 1101, highways 1003, canal 1107 and rural roads
    1006 are buffered lines.  All cell edges, the outline and the buffer rings
    are noded together and polygonised, so the faces form an exact coverage.
    Road/river faces are grouped in ~900 m chunks per township; every other
    face is one parcel; slivers below 150 m² are merged into a neighbour of
    the same township, and township exclaves go to the neighbour sharing the
    longest border.  Townships are the coverage union of their parcels, so
    they partition the county exactly.
5.  **Farmland** (永久基本农田) covers most cultivated parcels, plus two
    deliberate overlaps.
6.  **Cases.**  Deliberate change polygons (JCTB) with their approvals and field
    checks exercise every rule and Decision of domain.md (see data/README.md);
    ordinary polygons (legal, illegal, unchanged, greenhouse, farming change)
    fill each batch; further approvals with no change polygon are noise.
    Every case reserves a padded box, so cases never touch each other.
7.  **Reference judgement.**  A small shapely implementation of the rules of
    domain.md (the "oracle") judges every polygon; it chooses which
    field-check rows confirm the desk class, and writes
    ``expected_polygons.csv`` / ``expected_cases.md`` (reference values to
    cross-check the pipeline, approximate: ellipsoidal areas by pyproj.Geod).
8.  **Files** are written in the formats real deliveries use (Shapefile GBK
    without .cpg, GeoPackage, File Geodatabase, EPSG:4490 and EPSG:4525
    sources, CSV and XLSX field checks) and described by ``county.toml``.
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import math
import re
import shutil
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import openpyxl
import pandas as pd
import pyogrio
import shapely
from pyproj import Geod, Transformer
from shapely.geometry import LineString, MultiPoint, Point, Polygon

# --------------------------------------------------------------------------
# constants
# --------------------------------------------------------------------------
COUNTY_CODE = "140824"
COUNTY_NAME = "稷山县"
WORK_EPSG = 4546          # CGCS2000 3-degree GK CM 111E, no zone prefix
GEO_EPSG = 4490           # CGCS2000 geographic (farmland delivery)
ZONE_EPSG = 4525          # CGCS2000 3-degree GK zone 37 (征收 delivery)
COUNTY_BOX = (487_500.0, 3_935_500.0, 512_500.0, 3_951_500.0)
FILE_DATE = "2024-01-01"  # written in file headers instead of today's date
XLSX_TIME = dt.datetime(2024, 1, 1, 0, 0, 0)
MIN_PART_M2 = 10.0

# code, name, seed point (also the township seat)
TOWNSHIPS = [
    ("140824100", "稷峰镇", (499_000.0, 3_944_300.0)),
    ("140824101", "化峪镇", (495_000.0, 3_947_700.0)),
    ("140824102", "翟店镇", (507_500.0, 3_940_300.0)),
    ("140824103", "清河镇", (493_300.0, 3_939_400.0)),
    ("140824104", "西社镇", (505_600.0, 3_947_900.0)),
    ("140824200", "太阳乡", (490_400.0, 3_944_100.0)),
    ("140824201", "蔡村乡", (500_200.0, 3_938_100.0)),
]
INDUSTRY = ("稷山经济技术开发区", (503_900.0, 3_944_400.0), 650.0)
SEAT_RADIUS = {"county": 1_100.0, "镇": 450.0, "乡": 360.0}

N_CELL_SEEDS = 3_600
DENSE_FACTOR = 4.0
N_VILLAGES = 48
N_SUBSEEDS = 90
SMALL_PARCEL_M2 = 150.0
LINEAR_CHUNK_M = 900.0

# land-class mixes per zone (code, weight)
MIX = {
    "county": [("0701", 30), ("05H1", 16), ("0702", 8), ("08H1", 7), ("08H2", 10),
               ("1004", 10), ("0601", 6), ("0809", 4), ("0810", 3), ("09", 2),
               ("1201", 2), ("0508", 2)],
    "town": [("0702", 45), ("0701", 12), ("05H1", 10), ("08H2", 8), ("08H1", 5),
             ("1004", 10), ("0601", 6), ("1201", 4)],
    "village": [("0702", 82), ("08H2", 4), ("1004", 6), ("1201", 4), ("05H1", 2), ("0809", 2)],
    "industry": [("0601", 70), ("0508", 10), ("1004", 10), ("05H1", 5), ("0809", 5)],
    "fringe": [("0102", 38), ("0103", 14), ("0201", 16), ("1202", 8), ("1104", 4),
               ("0702", 6), ("0404", 5), ("0307", 3), ("1201", 2), ("0601", 4)],
    "mountain": [("0301", 18), ("0305", 22), ("0307", 5), ("0404", 25), ("0103", 18),
                 ("0201", 6), ("1206", 3), ("1203", 2), ("0602", 1)],
    "plain": [("0102", 58), ("0103", 12), ("0201", 16), ("1202", 2), ("0404", 3),
              ("1104", 2), ("0307", 3), ("1107", 1), ("0601", 1), ("09", 1), ("1109", 1)],
    "riverside": [("0102", 40), ("0101", 12), ("1104", 8), ("0404", 10), ("0307", 8),
                  ("0201", 6), ("1107", 3), ("1109", 1), ("0103", 6)],
    "tableland": [("0103", 52), ("0201", 20), ("0404", 12), ("0305", 6), ("0102", 8),
                  ("1203", 2)],
}
DLMC = {
    "0101": "水田", "0102": "水浇地", "0103": "旱地", "0201": "果园", "0301": "乔木林地",
    "0305": "灌木林地", "0307": "其他林地", "0404": "其他草地", "0508": "物流仓储用地",
    "05H1": "商业服务业设施用地", "0601": "工业用地", "0602": "采矿用地",
    "0701": "城镇住宅用地", "0702": "农村宅基地", "08H1": "机关团体新闻出版用地",
    "08H2": "科教文卫用地", "0809": "公用设施用地", "0810": "公园与绿地", "09": "特殊用地",
    "1003": "公路用地", "1004": "城镇村道路用地", "1006": "农村道路", "1101": "河流水面",
    "1104": "坑塘水面", "1107": "沟渠", "1109": "水工建筑用地", "1201": "空闲地",
    "1202": "设施农用地", "1203": "田坎", "1206": "裸土地",
}
# domain.md, land classes (the pipeline reads these from its table; the oracle needs them too)
CULTIVATED = ("0101", "0102", "0103")
CONSTRUCTION = ("05", "0601", "0602", "0603", "07", "08", "09", "1001", "1002", "1003",
                "1004", "1005", "1007", "1008", "1009", "1109", "1201")
AGRICULTURAL = ("01", "02", "03", "0401", "0403", "1006", "1103", "1104", "1107", "1202", "1203")

BATCHES = {
    "2021": dict(year=2021, qsx=(dt.date(2021, 1, 6), dt.date(2021, 3, 28)),
                 hsx=[dt.date(2021, 9, 17), dt.date(2021, 10, 6), dt.date(2021, 10, 25),
                      dt.date(2021, 11, 13)], n_total=125),
    "2022": dict(year=2022, qsx=(dt.date(2022, 1, 9), dt.date(2022, 3, 30)),
                 hsx=[dt.date(2022, 9, 21), dt.date(2022, 10, 9), dt.date(2022, 10, 18),
                      dt.date(2022, 11, 6)], n_total=170),
    "2023Q2": dict(year=2023, qsx=(dt.date(2023, 3, 2), dt.date(2023, 3, 30)),
                   hsx=[dt.date(2023, 6, 8), dt.date(2023, 6, 21), dt.date(2023, 6, 29)],
                   n_total=40),
}
APPROVAL_FIRST, APPROVAL_LAST = dt.date(2015, 1, 1), dt.date(2023, 12, 28)

# ordinary polygons: scenario, weight
ORDINARY_MIX = [("legal_this", 22), ("legal_prev", 13), ("illegal", 22), ("wpxj", 4),
                ("unchanged", 12), ("ssny_ok", 7), ("ssny_no", 4), ("agri", 10),
                ("temp_ok", 4), ("temp_expired", 2)]

SURNAMES = "王李张刘杨赵陈薛卫宁史孙郭畅柴姚梁贾吉段"
GIVEN = ["建国", "红梅", "志强", "晓燕", "国栋", "丽娟", "海涛", "春生", "玉兰", "文斌",
         "小军", "秀英", "鹏飞", "俊峰", "雪芳", "永胜", "建华", "亚楠", "振华", "金花"]
VILLAGE_HEAD = ["东", "西", "南", "北", "上", "下", "前", "后", "大", "小", "新", "杨", "王",
                "张", "李", "薛", "史", "卫", "高", "马", "段", "吴", "姚", "柴", "郭", "范",
                "陈", "刘", "平", "苏", "宁", "朱"]
VILLAGE_TAIL = ["庄", "村", "堡", "坡", "院", "家庄", "王", "头", "峪", "沟", "营", "寨", "杜", "社"]
PROJECTS = ["标准化厂房项目", "年产5万吨红枣深加工项目", "新型建材生产线项目", "物流仓储中心项目",
            "农产品冷链物流园项目", "光伏发电项目升压站", "污水处理厂扩建工程", "第二中学教学楼扩建工程",
            "乡镇卫生院迁建项目", "110千伏输变电工程", "城区集中供热管网工程", "汽车检测站项目",
            "粮食储备库项目", "文化活动中心项目", "加油站项目", "农机合作社仓库"]
TEMP_PROJECTS = ["G108线稷山段改线工程取土场", "城区供热管网施工营地", "运城至河津高速公路施工便道",
                 "220千伏输电线路塔基施工场地", "汾河治理工程堆料场", "光伏项目施工营地"]
FACILITIES = ["蔬菜大棚", "食用菌大棚", "养殖场", "育苗温室", "果品储藏库", "农机具棚"]


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------
def norm_dlbm(code):
    """domain.md Decision 12: spaces removed, upper case, 3 digits zero-padded."""
    s = re.sub(r"\s+", "", str(code or "")).upper()
    return "0" + s if re.fullmatch(r"\d{3}", s) else s


def land_group(code):
    c = norm_dlbm(code)
    if c[:4] in CULTIVATED:
        return "cultivated"
    if any(c.startswith(p) for p in CONSTRUCTION):
        return "construction"
    if any(c.startswith(p) for p in AGRICULTURAL):
        return "agricultural"
    return "unused"


def weighted(rng, items):
    w = np.array([x[1] for x in items], float)
    return items[int(rng.choice(len(items), p=w / w.sum()))][0]


def rand_date(rng, lo, hi):
    lo, hi = min(lo, hi), max(lo, hi)
    return lo + dt.timedelta(days=int(rng.integers(0, (hi - lo).days + 1)))


def person(rng):
    return SURNAMES[int(rng.integers(len(SURNAMES)))] + GIVEN[int(rng.integers(len(GIVEN)))]


def polygonal(g):
    """Keep the polygonal part of g as a (Multi)Polygon."""
    if g is None or g.is_empty:
        return Polygon()
    if g.geom_type in ("Polygon", "MultiPolygon"):
        return g
    parts = [p for p in shapely.get_parts(g) if p.geom_type in ("Polygon", "MultiPolygon")]
    return shapely.union_all(parts) if parts else Polygon()


_TO_GEO = Transformer.from_crs(WORK_EPSG, GEO_EPSG, always_xy=True)
_GEOD = Geod(ellps="GRS80")  # == CGCS2000 ellipsoid (a = 6378137, 1/f = 298.257222101)


def to_geo(g):
    return shapely.transform(g, lambda xy: np.column_stack(_TO_GEO.transform(xy[:, 0], xy[:, 1])))


def ell_area(g):
    """Geodesic area (m²) on the CGCS2000 ellipsoid, as ST_Area(geography)."""
    g = polygonal(g)
    if g.is_empty:
        return 0.0
    return abs(_GEOD.geometry_area_perimeter(to_geo(g))[0])


@dataclass
class Frame:
    """A local frame: origin, unit vector u along s, normal n = left of u along t."""
    cx: float
    cy: float
    ux: float
    uy: float

    def pt(self, s, t):
        return (round(self.cx + s * self.ux - t * self.uy, 3),
                round(self.cy + s * self.uy + t * self.ux, 3))

    def rect(self, s0, s1, t0, t1):
        return Polygon([self.pt(s0, t0), self.pt(s1, t0), self.pt(s1, t1), self.pt(s0, t1)])

    def bowtie(self, s0, s1, t0, t1):
        return Polygon([self.pt(s0, t0), self.pt(s1, t1), self.pt(s1, t0), self.pt(s0, t1)])

    def blob(self, rng, w, h):
        """A jittered rectangle / pentagon, as digitised building footprints look."""
        pts = [(-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)]
        if rng.random() < 0.35:  # cut a corner
            c = int(rng.integers(4))
            (s, t), k = pts[c], rng.uniform(0.15, 0.35)
            a, b = (s, t * (1 - 2 * k)), (s * (1 - 2 * k), t)  # on the s-edge, on the t-edge
            pts[c:c + 1] = [a, b] if c % 2 == 0 else [b, a]
        j = 0.06 * min(w, h)
        return Polygon([self.pt(s + rng.uniform(-j, j), t + rng.uniform(-j, j)) for s, t in pts])


# --------------------------------------------------------------------------
# data records
# --------------------------------------------------------------------------
@dataclass
class Approval:
    kind: str                   # 农用地转用 | 征收 | 供地 | 临时用地 | 设施农用地 | 宅基地
    geom: Polygon
    pzrq: dt.date | None
    xmmc: str = ""
    yxqz: dt.date | None = None
    pzlx: str | None = None     # value written in the PZLX column (defaults to kind)
    raw_pzrq: str | None = None  # unreadable text date (quarantine case)
    pzwh: str = ""
    batch_land: str | None = None  # "城镇"/"村庄" for 农转 批次 (XMMC filled when numbered)
    twin_of: "Approval | None" = None

    @property
    def year(self):
        return self.pzrq.year if self.pzrq else int(self.raw_pzrq[:4])


@dataclass
class Change:
    batch: str
    geom: Polygon
    bhlx: str
    hsx: dt.date
    qsx: dt.date
    case: str = ""          # deliberate case id (D.., E.., F..) or ""
    desc: str = ""
    jcbh: str = ""
    xzqdm_attr: str | None = None  # override of the province's XZQDM attribute
    jcbh_from: "Change | None" = None  # re-issued polygon keeping an older JCBH


@dataclass
class FieldRow:
    change: Change
    sfbh: str
    pdlx: str
    hcr: str
    hcrq: dt.date
    bz: str
    tail: bool = False      # appended at the end of the file (a later re-check)


# --------------------------------------------------------------------------
# the landscape
# --------------------------------------------------------------------------
class Landscape:
    """Fixed curves of the county: river, ridge, tableland."""

    def __init__(self, rng):
        self.p = rng.uniform(0, 2 * np.pi, 6)

    def river_y(self, x):
        return (3_942_100 + 420 * np.sin(2 * np.pi * (x - 487_500) / 11_000 + self.p[0])
                + 140 * np.sin(2 * np.pi * x / 3_700 + self.p[1]))

    def ridge_y(self, x):
        return 3_947_400 + 450 * np.sin(2 * np.pi * x / 9_000 + self.p[2]) + 120 * np.sin(x / 700 + self.p[3])

    def table_y(self, x):
        return 3_937_700 + 300 * np.sin(2 * np.pi * x / 7_000 + self.p[4])

    def zone(self, x, y):
        if y > self.ridge_y(x):
            return "mountain"
        if y < self.table_y(x):
            return "tableland"
        if abs(y - self.river_y(x)) < 650:
            return "riverside"
        return "plain"


def county_outline(rng):
    n = 240
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = np.ones(n)
    for k in range(2, 16):  # decaying harmonics: lobes, bays and a ragged edge
        r += rng.uniform(0.03, 0.08) * (2 / k) ** 0.8 * np.sin(k * t + rng.uniform(0, 2 * np.pi))
    xy = np.column_stack([r * np.cos(t), r * np.sin(t)])
    x0, y0, x1, y1 = COUNTY_BOX
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    xy = (xy - lo) / (hi - lo) * [x1 - x0, y1 - y0] + [x0, y0]
    return Polygon(np.round(xy, 3))


@dataclass
class Settlement:
    name: str
    kind: str  # county | town | village | industry
    x: float
    y: float
    r: float
    xzqdm: str = ""
    cun: str = ""  # 3-digit village code


def make_settlements(rng, outline, land):
    out = []
    for code, name, (x, y) in TOWNSHIPS:
        kind = "county" if code.endswith("100") else "town"
        r = SEAT_RADIUS["county"] if kind == "county" else SEAT_RADIUS[name[-1]]
        out.append(Settlement(name.replace("镇", "镇区").replace("乡", "乡集镇"), kind, x, y, r))
    out.append(Settlement(INDUSTRY[0], "industry", *INDUSTRY[1], INDUSTRY[2]))
    inner = outline.buffer(-600)
    names = set()
    tries = 0
    while sum(s.kind == "village" for s in out) < N_VILLAGES and tries < 20_000:
        tries += 1
        x, y = rng.uniform(COUNTY_BOX[0], COUNTY_BOX[2]), rng.uniform(COUNTY_BOX[1], COUNTY_BOX[3])
        if not inner.contains(Point(x, y)) or abs(y - land.river_y(x)) < 300:
            continue
        if land.zone(x, y) == "mountain" and rng.random() > 0.35:
            continue
        if any(math.hypot(x - s.x, y - s.y) < (1_000 if s.kind == "village" else 900 + s.r)
               for s in out):
            continue
        while True:
            nm = VILLAGE_HEAD[int(rng.integers(len(VILLAGE_HEAD)))] + \
                VILLAGE_TAIL[int(rng.integers(len(VILLAGE_TAIL)))]
            nm = nm if nm.endswith("村") else nm + "村"
            if nm not in names:
                names.add(nm)
                break
        out.append(Settlement(nm, "village", round(x, 1), round(y, 1), float(rng.uniform(170, 320))))
    return out


def cell_seeds(rng, outline, settlements):
    x0, y0, x1, y1 = COUNTY_BOX
    cand = rng.uniform([x0 - 600, y0 - 600], [x1 + 600, y1 + 600], size=(60_000, 2))
    w = np.ones(len(cand))
    for s in settlements:
        near = np.hypot(cand[:, 0] - s.x, cand[:, 1] - s.y) < 1.3 * s.r
        w[near] = DENSE_FACTOR
    keep = rng.random(len(cand)) < w / DENSE_FACTOR
    keep &= shapely.contains_xy(outline.buffer(400), cand[:, 0], cand[:, 1])
    return np.round(cand[keep][:N_CELL_SEEDS], 3)


def cell_classes(rng, seeds, settlements, land):
    sx = np.array([s.x for s in settlements])
    sy = np.array([s.y for s in settlements])
    sr = np.array([s.r for s in settlements])
    codes, zones = [], []
    for x, y in seeds:
        d = np.hypot(sx - x, sy - y) / sr
        i = int(np.argmin(d))
        if d[i] < 1.0:
            zone = settlements[i].kind
        elif d[i] < 1.7:
            zone = "fringe"
        else:
            zone = land.zone(x, y)
        zones.append(zone)
        codes.append(weighted(rng, MIX[zone]))
    return codes, zones


def township_labels(rng, seeds, outline):
    """Label each cell with a township via ~90 sub-seeds (ragged borders)."""
    sub = []
    while len(sub) < N_SUBSEEDS:
        x, y = rng.uniform(COUNTY_BOX[0], COUNTY_BOX[2]), rng.uniform(COUNTY_BOX[1], COUNTY_BOX[3])
        if outline.buffer(1_500).contains(Point(x, y)):
            sub.append((x, y))
    sub = np.array(sub)
    tx = np.array([t[2] for t in TOWNSHIPS])
    sub_lab = np.argmin(np.hypot(sub[:, None, 0] - tx[None, :, 0], sub[:, None, 1] - tx[None, :, 1]), axis=1)
    # township seats always label their own neighbourhood
    sub = np.vstack([sub, tx])
    sub_lab = np.concatenate([sub_lab, np.arange(len(TOWNSHIPS))])
    near = np.argmin(np.hypot(seeds[:, None, 0] - sub[None, :, 0], seeds[:, None, 1] - sub[None, :, 1]), axis=1)
    return sub_lab[near]


@dataclass
class Linear:
    name: str
    code: str
    line: LineString
    width: float
    priority: int

    @property
    def poly(self):
        return self.line.buffer(self.width / 2, cap_style="flat", join_style="round", quad_segs=2)


def linear_features(rng, land, settlements):
    x0, y0, x1, y1 = COUNTY_BOX
    xs = np.arange(x0 - 1_000, x1 + 1_001, 400.0)
    feats = [Linear("汾河", "1101", LineString(np.column_stack([xs, land.river_y(xs)]).round(3)), 140, 0)]
    g108 = 3_944_900 + 160 * np.sin(xs / 3_000)
    feats.append(Linear("G108", "1003", LineString(np.column_stack([xs, g108]).round(3)), 26, 1))
    ys = np.arange(y0 - 1_000, y1 + 1_001, 400.0)
    xnorth = 499_350 + 220 * np.sin(ys / 2_500)
    feats.append(Linear("S237", "1003", LineString(np.column_stack([xnorth, ys]).round(3)), 18, 1))
    feats.append(Linear("X452", "1003", LineString([(x0 - 800, 3_937_400), (497_000, 3_940_600),
                                                    (505_000, 3_946_500), (x1 + 800, 3_950_800)]), 14, 1))
    xc = np.arange(489_000, 511_001, 400.0)
    feats.append(Linear("南干渠", "1107", LineString(np.column_stack([xc, land.river_y(xc) - 950]).round(3)), 8, 2))
    vill = [s for s in settlements if s.kind in ("village", "town")]
    pairs = set()
    for i, s in enumerate(vill):
        d = [(math.hypot(s.x - t.x, s.y - t.y), j) for j, t in enumerate(vill) if j != i]
        for _, j in sorted(d)[:1 + int(rng.integers(2))]:
            pairs.add((min(i, j), max(i, j)))
    for k, (i, j) in enumerate(sorted(pairs)):
        a, b = vill[i], vill[j]
        if math.hypot(a.x - b.x, a.y - b.y) > 2_600:
            continue
        mx, my = (a.x + b.x) / 2 + rng.uniform(-120, 120), (a.y + b.y) / 2 + rng.uniform(-120, 120)
        feats.append(Linear(f"农村道路{k}", "1006", LineString([(a.x, a.y), (mx, my), (b.x, b.y)]), 5, 3))
    return feats


# --------------------------------------------------------------------------
# parcels (DLTB) and townships (XZQ)
# --------------------------------------------------------------------------
@dataclass
class World:
    outline: Polygon
    land: Landscape
    settlements: list
    parcels: gpd.GeoDataFrame = None
    townships: gpd.GeoDataFrame = None
    farmland: gpd.GeoDataFrame = None
    plan: gpd.GeoDataFrame = None


def build_faces(outline, cells, linears):
    lines = [outline.exterior]
    lines += [c.boundary for c in cells if c.intersects(outline)]
    for lf in linears:
        p = lf.poly
        lines += [p.exterior, *p.interiors]
    noded = shapely.union_all(lines)
    faces = np.array(shapely.get_parts(shapely.polygonize(shapely.get_parts(noded))))
    rep = shapely.point_on_surface(faces)
    keep = shapely.contains(outline, rep)
    return faces[keep], rep[keep]


def build_parcels(rng, outline, land, settlements):
    seeds = cell_seeds(rng, outline, settlements)
    env = outline.buffer(3_000).envelope
    cells = list(shapely.voronoi_polygons(MultiPoint(seeds), extend_to=env, ordered=True).geoms)
    codes, zones = cell_classes(rng, seeds, settlements, land)
    labels = township_labels(rng, seeds, outline)
    linears = linear_features(rng, land, settlements)
    faces, rep = build_faces(outline, cells, linears)

    cell_tree = shapely.STRtree(cells)
    pi, ci = cell_tree.query(rep, predicate="within")
    face_cell = np.full(len(faces), -1)
    face_cell[pi] = ci
    assert (face_cell >= 0).all()
    lin_polys = [lf.poly for lf in linears]
    lin_tree = shapely.STRtree(lin_polys)
    face_lin = np.full(len(faces), -1)
    for f, li in zip(*lin_tree.query(rep, predicate="within")):
        if face_lin[f] < 0 or linears[li].priority < linears[face_lin[f]].priority:
            face_lin[f] = li

    groups = {}
    for f in range(len(faces)):
        c, li = face_cell[f], face_lin[f]
        twp = int(labels[c])
        if li >= 0:
            chunk = int(linears[li].line.project(rep[f]) // LINEAR_CHUNK_M)
            key = ("L", int(li), twp, chunk)
            attrs = (linears[li].code, linears[li].name, twp, "linear")
        else:
            key = ("C", f)
            attrs = (codes[c], "", twp, zones[c])
        groups.setdefault(key, [attrs, []])[1].append(faces[f])
    rows = []
    for key in sorted(groups, key=lambda k: tuple(str(x) for x in k)):
        (code, lname, twp, zone), fs = groups[key]
        geom = shapely.coverage_union_all(fs) if len(fs) > 1 else fs[0]
        for part in shapely.get_parts(geom):
            rows.append(dict(code=code, lname=lname, twp=twp, zone=zone, geometry=part))
    parcels = gpd.GeoDataFrame(rows, geometry="geometry", crs=WORK_EPSG)
    parcels = merge_slivers(parcels)
    return contiguous_townships(parcels)


def contiguous_townships(parcels):
    """Give the parcels of a township's minor parts (exclaves) to the neighbour sharing the longest border."""
    geoms = np.array(parcels.geometry.values)
    twp = parcels.twp.values.copy()
    for _ in range(10):
        changed = False
        for t in range(len(TOWNSHIPS)):
            idx = np.flatnonzero(twp == t)
            parts = sorted(shapely.get_parts(shapely.coverage_union_all(geoms[idx])), key=lambda g: -g.area)
            for part in parts[1:]:
                inside = idx[shapely.within(geoms[idx], part.buffer(0.01))]
                border = part.boundary
                best, best_len = t, 0.0
                for u in range(len(TOWNSHIPS)):
                    if u == t:
                        continue
                    other = shapely.coverage_union_all(geoms[twp == u])
                    shared = shapely.intersection(border, other.boundary).length
                    if shared > best_len:
                        best, best_len = u, shared
                twp[inside] = best
                changed = changed or best != t
        if not changed:
            break
    parcels = parcels.copy()
    parcels["twp"] = twp
    return parcels


def merge_slivers(parcels):
    """Merge parcels under SMALL_PARCEL_M2 into the same-township neighbour with the longest shared edge."""
    geoms = list(parcels.geometry)
    alive = [True] * len(geoms)
    twp = list(parcels.twp)
    areas = shapely.area(np.array(geoms))
    for i in np.argsort(areas, kind="stable"):
        if areas[i] >= SMALL_PARCEL_M2:
            break
        if not alive[i] or geoms[i].area >= SMALL_PARCEL_M2:
            continue
        tree = shapely.STRtree(geoms)
        best, best_len = -1, 0.0
        for j in tree.query(geoms[i], predicate="intersects"):
            if j == i or not alive[j] or twp[j] != twp[i]:
                continue
            shared = shapely.intersection(geoms[i].boundary, geoms[j].boundary).length
            if shared > best_len:
                best, best_len = int(j), shared
        if best >= 0:
            geoms[best] = shapely.coverage_union_all([geoms[best], geoms[i]])
            geoms[i] = Polygon()
            alive[i] = False
    parcels = parcels.copy()
    parcels["geometry"] = geoms
    parcels = parcels[alive].reset_index(drop=True)
    return parcels.set_crs(WORK_EPSG, allow_override=True)


def village_names(settlements, parcels):
    """Attach township codes to settlements and village codes to parcels (ZLDWDM, ZLDWMC)."""
    tree = shapely.STRtree(np.array(parcels.geometry.values))
    for s in settlements:
        hits = tree.query(Point(s.x, s.y), predicate="within")
        s.xzqdm = TOWNSHIPS[int(parcels.twp.values[hits[0]]) if len(hits) else 0][0]
    for code, _, _ in TOWNSHIPS:
        mine = sorted([s for s in settlements if s.xzqdm == code and s.kind == "village"],
                      key=lambda s: (-s.y, s.x))
        for k, s in enumerate(mine):
            s.cun = f"{201 + k:03d}"
        for s in settlements:
            if s.xzqdm == code and s.kind != "village":
                s.cun = "001" if s.kind != "industry" else "002"
    rep = shapely.point_on_surface(np.array(parcels.geometry))
    zldwdm, zldwmc = [], []
    for p, t in zip(rep, parcels.twp):
        code, tname, _ = TOWNSHIPS[t]
        cands = [s for s in settlements if s.xzqdm == code] or settlements
        s = min(cands, key=lambda s: math.hypot(s.x - p.x, s.y - p.y))
        zldwdm.append(f"{code}{s.cun}0000000")
        cun_name = s.name if s.kind == "village" else ("城关社区" if s.kind == "county" else
                                                        ("开发区社区" if s.kind == "industry" else "集镇社区"))
        zldwmc.append(tname + cun_name)
    return zldwdm, zldwmc


def assign_landuse_attrs(rng, parcels, settlements):
    """DLBM (with the deliberate odd spellings), DLMC, areas and KCXS."""
    p = parcels
    p["DLBM"] = p["code"]
    p["dlbm_n"] = p["code"]
    p["group"] = [land_group(c) for c in p["code"]]
    p["TBMJ"] = [round(ell_area(g), 2) for g in p.geometry]
    kcxs = np.zeros(len(p))
    for i, (c, z) in enumerate(zip(p.code, p.zone)):
        if c == "0102":
            kcxs[i] = weighted(rng, [(0.0, 50), (0.02, 35), (0.03, 15)])
        elif c == "0103":
            opts = {"mountain": [0.08, 0.12, 0.15], "tableland": [0.04, 0.06, 0.08]}.get(z, [0.02, 0.03, 0.05])
            kcxs[i] = opts[int(rng.integers(3))]
    p["kcxs_frac"] = kcxs
    p["KCXS"] = kcxs.copy()
    p["special"] = ""
    p["inradius"] = shapely.length(shapely.maximum_inscribed_circle(np.array(p.geometry.values), 1.0))
    zldwdm, zldwmc = village_names(settlements, p)
    p["ZLDWDM"], p["ZLDWMC"] = zldwdm, zldwmc
    return p


def roomy(parcels, mask, radius):
    """Indices under mask whose parcel holds a disc of the given radius."""
    return np.flatnonzero(np.asarray(mask) & (parcels.inradius.values > radius + 1))


def mark_specials(rng, p):
    """Odd DLBM spellings and KCXS forms that the pipeline must normalise (Decision 12)."""
    def pick(mask, n, label):
        idx = roomy(p, mask & (p.special == ""), 45)
        chosen = rng.choice(idx, size=n, replace=False)
        p.loc[chosen, "special"] = label
        return chosen

    cult = p.code.isin(CULTIVATED)
    for i in pick(p.code == "0103", 3, "dlbm_3digit"):
        p.loc[i, "DLBM"] = "103"
    for i in pick(p.code == "0201", 4, "dlbm_suffix"):
        p.loc[i, "DLBM"] = "0201K"
    for i, v in zip(pick(p.code == "0102", 2, "dlbm_spaces"), [" 0102", "01 02 "]):
        p.loc[i, "DLBM"] = v
    for i in pick(p.code == "08H2", 1, "dlbm_lower"):
        p.loc[i, "DLBM"] = "08h2"
    for i in pick(p.code == "1104", 2, "dlbm_1104A"):
        p.loc[i, "DLBM"] = "1104A"
    for i, pct in zip(pick(cult & (p.code != "0101"), 5, "kcxs_percent"), [8.5, 6.0, 12.0, 3.5, 15.0]):
        p.loc[i, "KCXS"], p.loc[i, "kcxs_frac"] = pct, pct / 100
    for i in pick(cult & (p.code != "0101"), 4, "kcxs_null"):
        p.loc[i, "KCXS"], p.loc[i, "kcxs_frac"] = np.nan, 0.0


def finish_landuse(p):
    p["DLMC"] = [DLMC[c] for c in p.code]
    kc = np.round(p.TBMJ.values * p.kcxs_frac.values, 2)
    p["KCMJ"] = np.where(p.KCXS.isna(), np.nan, kc)
    p["TBDLMJ"] = np.round(p.TBMJ.values - np.nan_to_num(p.KCMJ.values), 2)
    order = np.lexsort((shapely.get_x(shapely.centroid(p.geometry.values)),
                        -shapely.get_y(shapely.centroid(p.geometry.values)), p.twp.values))
    p = p.iloc[order].reset_index(drop=True)
    p["BSM"] = [f"{COUNTY_CODE}2110{i + 1:08d}" for i in range(len(p))]
    return p


def build_townships(parcels):
    rows = []
    for t, (code, name, _) in enumerate(TOWNSHIPS):
        g = shapely.coverage_union_all(np.array(parcels.geometry[parcels.twp == t]))
        rows.append(dict(XZQDM=code, XZQMC=name, geometry=g))
    return gpd.GeoDataFrame(rows, crs=WORK_EPSG)


def build_farmland(rng, p):
    """YJJBNTTB: most cultivated parcels (geometry copied), plus two deliberate overlaps."""
    share = {"plain": 0.85, "riverside": 0.9, "tableland": 0.7, "mountain": 0.4, "fringe": 0.5}
    cult = p.code.isin(CULTIVATED).values
    farm = cult & (rng.random(len(p)) < np.array([share.get(z, 0.6) for z in p.zone]))
    farm &= ~p.special.isin(["dlbm_spaces", "kcxs_null"]).values  # these host non-farmland cases
    p["farm"] = farm
    rows = [dict(DLBM=p.code[i], geometry=p.geometry[i], src=int(i)) for i in np.flatnonzero(farm)]
    return p, rows


# --------------------------------------------------------------------------
# case construction context
# --------------------------------------------------------------------------
class Context:
    def __init__(self, world, rng):
        self.w = world
        self.rng = rng
        self.changes: list[Change] = []
        self.approvals: list[Approval] = []
        self.field_rows: dict[str, list[FieldRow]] = {"WYHC_2021.csv": [], "WYHC_2022.xlsx": [],
                                                      "WYHC_BC.csv": []}
        self.extra_farmland: list[Polygon] = []
        self._boxes = np.empty((0, 4))
        p = world.parcels
        self.geoms = np.array(p.geometry.values)
        self.tree = shapely.STRtree(self.geoms)
        self.mask = {
            "cult": p.code.isin(CULTIVATED).values & (p.special == "").values,
            "cult_farm": (p.code.isin(CULTIVATED) & p.farm).values & (p.special == "").values,
            "cult_nofarm": (p.code.isin(CULTIVATED) & ~p.farm).values & (p.special == "").values,
            "constr": (p.group == "construction").values & (p.zone != "linear").values,
            "village": (p.code == "0702").values,
            "grass": (p.code == "0404").values,
            "agri": p.group.isin(["cultivated", "agricultural"]).values & (p.zone != "linear").values
            & (p.special == "").values,
            "fringe": (p.zone == "fringe").values & p.group.isin(["cultivated", "agricultural"]).values
            & (p.special == "").values,
            "eco_wild": p.code.isin(["0301", "0305", "0404"]).values & shapely.within(
                self.geoms, world.plan.geometry[world.plan.GKLX == "生态保护红线"].union_all()),
        }
        for s in p.special.unique():
            if s:
                self.mask[s] = (p.special == s).values

    # ---- reservation -----------------------------------------------------
    def free(self, bounds):
        b = self._boxes
        if not len(b):
            return True
        x0, y0, x1, y1 = bounds
        return not np.any((b[:, 0] < x1) & (b[:, 2] > x0) & (b[:, 1] < y1) & (b[:, 3] > y0))

    def reserve(self, geom, pad):
        x0, y0, x1, y1 = geom.bounds
        self._boxes = np.vstack([self._boxes, [x0 - pad, y0 - pad, x1 + pad, y1 + pad]])

    # ---- spots ------------------------------------------------------------
    def inside(self, where, w, h, pad=90.0, tries=150):
        """A frame at a random point of a parcel under `where`, a w x h rectangle fitting inside."""
        radius = math.hypot(w, h) / 2 + 2
        mask = self.mask[where] if isinstance(where, str) else where
        idx = roomy(self.w.parcels, mask, radius)
        for i in self.rng.permutation(idx)[:tries]:
            inner = self.geoms[i].buffer(-radius)
            if inner.is_empty:  # the inscribed-circle estimate is only good to 1 m
                continue
            x0, y0, x1, y1 = inner.bounds
            for _ in range(8):
                x, y = self.rng.uniform(x0, x1), self.rng.uniform(y0, y1)
                if inner.contains(Point(x, y)) and self.free((x - radius - pad, y - radius - pad,
                                                             x + radius + pad, y + radius + pad)):
                    a = self.rng.uniform(0, np.pi)
                    self.reserve(Point(x, y).buffer(radius), pad)
                    return Frame(round(x, 3), round(y, 3), math.cos(a), math.sin(a))
        raise RuntimeError(f"no room for a case on {where}")

    def edge(self, mask_a, ok_pair, w, da, db, pad=90.0, tries=3000):
        """A frame on a straight shared edge between parcel a (mask_a) and b (ok_pair(a, b)):
        origin at the edge, u along it, n pointing into b; the rectangle
        [-w/2, w/2] x [-da, db] must lie in a ∪ b."""
        geoms = self.geoms
        for a in self.rng.permutation(np.flatnonzero(mask_a))[:tries]:
            for b in self.tree.query(geoms[a], predicate="intersects"):
                if b == a or not ok_pair(a, b):
                    continue
                shared = shapely.intersection(geoms[a].boundary, geoms[b].boundary)
                for line in shapely.get_parts(shapely.line_merge(polygonal_lines(shared))):
                    c = np.asarray(line.coords)
                    for k in range(len(c) - 1):
                        seg = c[k + 1] - c[k]
                        L = math.hypot(*seg)
                        if L < w + 40:
                            continue
                        u = seg / L
                        mid = c[k] + seg / 2
                        f = Frame(round(mid[0], 3), round(mid[1], 3), u[0], u[1])
                        if not geoms[b].contains(Point(f.pt(0, 2))):
                            f = Frame(f.cx, f.cy, -u[0], -u[1])
                        r = f.rect(-w / 2, w / 2, -da, db)
                        if shapely.union(geoms[a], geoms[b]).buffer(0.01).contains(r) and \
                                self.free(r.buffer(pad).bounds):
                            self.reserve(r, pad)
                            return f, int(a), int(b)
        raise RuntimeError("no shared edge found")

    def outline_edge(self, w, da, db, pad=90.0):
        """A frame on a straight outline segment, n pointing outwards, inside part on one cultivated parcel."""
        c = np.asarray(self.w.outline.exterior.coords)
        for k in self.rng.permutation(len(c) - 1):
            seg = c[k + 1] - c[k]
            L = math.hypot(*seg)
            if L < w + 40:
                continue
            u = seg / L
            mid = c[k] + seg / 2
            f = Frame(round(mid[0], 3), round(mid[1], 3), u[0], u[1])
            if self.w.outline.contains(Point(f.pt(0, 2))):
                f = Frame(f.cx, f.cy, -u[0], -u[1])
            r = f.rect(-w / 2, w / 2, -da, db)
            inside = r.intersection(self.w.outline)
            hits = self.tree.query(inside, predicate="intersects")
            if len(hits) == 1 and self.mask["cult"][hits[0]] and \
                    self.geoms[hits[0]].buffer(0.01).contains(inside) and self.free(r.buffer(pad).bounds):
                self.reserve(r, pad)
                return f
        raise RuntimeError("no outline segment found")

    # ---- records ----------------------------------------------------------
    def hsx(self, batch):
        d = BATCHES[batch]["hsx"]
        return d[int(self.rng.integers(len(d)))]

    def change(self, batch, geom, bhlx, case="", desc="", hsx=None, **kw):
        cfg = BATCHES[batch]
        hsx = hsx or self.hsx(batch)
        qsx = rand_date(self.rng, *cfg["qsx"])
        ch = Change(batch, geom, bhlx, hsx, qsx, case, desc, **kw)
        self.changes.append(ch)
        return ch

    def appr(self, kind, geom, pzrq, **kw):
        a = Approval(kind, geom, pzrq, **kw)
        self.approvals.append(a)
        if kind == "农用地转用" and kw.get("batch_land") and self.rng.random() < 0.7:
            self.approvals.append(Approval("征收", geom, pzrq, twin_of=a))
        return a

    def field(self, fname, ch, sfbh, pdlx, bz, tail=False):
        days = self.rng.integers(75, 100) if tail else self.rng.integers(15, 70)  # a re-check comes later
        hcrq = ch.hsx + dt.timedelta(days=int(days))
        hcr = f"{person(self.rng)}、{person(self.rng)}"
        self.field_rows[fname].append(FieldRow(ch, sfbh, pdlx, hcr, hcrq, bz, tail))

    # ---- dates ------------------------------------------------------------
    def d_this(self, hsx, min_gap=20):
        return rand_date(self.rng, dt.date(hsx.year, 1, 8), hsx - dt.timedelta(days=min_gap))

    def d_prev(self, year):
        return rand_date(self.rng, dt.date(2015, 3, 1), dt.date(year - 1, 12, 20))

    def d_after(self, hsx):
        return min(rand_date(self.rng, hsx + dt.timedelta(days=25), hsx + dt.timedelta(days=220)),
                   APPROVAL_LAST)


def polygonal_lines(g):
    parts = [p for p in shapely.get_parts(g) if p.geom_type in ("LineString", "MultiLineString")]
    return shapely.union_all(parts) if parts else LineString()


def cover(f, w, h, m=15.0):
    """An approval rectangle covering the case rectangle [-w/2,w/2]x[-h/2,h/2] with margin m."""
    return f.rect(-w / 2 - m, w / 2 + m, -h / 2 - m, h / 2 + m)


# --------------------------------------------------------------------------
# deliberate cases
# --------------------------------------------------------------------------
def cases_2022(ctx: Context):
    B, fx, fb = "2022", "WYHC_2022.xlsx", "WYHC_BC.csv"
    r, c = ctx.rng, ctx.change
    Y = 2022
    out = {}

    def std(where="cult", w=60.0, h=40.0):
        return ctx.inside(where, w, h), w, h

    # D01 本年批准本年建设
    f, w, h = std()
    ch = c(B, f.rect(-w / 2, w / 2, -h / 2, h / 2), "建设用地", "D01",
           "本年批准本年建设: inside a 农用地转用 (+征收) dated earlier in the HSX year")
    ctx.appr("农用地转用", cover(f, w, h, 25), ctx.d_this(ch.hsx), batch_land="城镇")
    # D02 往年批准本年建设 (供地 GPKG with mapped field names)
    f, w, h = std()
    ch = c(B, f.rect(-w / 2, w / 2, -h / 2, h / 2), "建设用地", "D02",
           "往年批准本年建设: inside a 供地 (GeoPackage, mapped field names) dated 2019")
    ctx.appr("供地", cover(f, w, h, 12), rand_date(r, dt.date(2019, 2, 1), dt.date(2019, 11, 30)),
             xmmc="稷山县" + PROJECTS[0])
    # D03 PZRQ == HSX
    f, w, h = std()
    ch = c(B, f.rect(-w / 2, w / 2, -h / 2, h / 2), "建设用地", "D03",
           "PZRQ = HSX exactly (Decision 4: counts as approved); 农用地转用 text date vs HSX date field",
           hsx=dt.date(2022, 10, 18))
    a = ctx.appr("农用地转用", cover(f, w, h, 20), ch.hsx, batch_land="村庄")
    # D04 5 % overbuild, field check confirms 违法用地
    f, w, h = std()
    ch = c(B, f.rect(-w / 2, w / 2, -h / 2, h / 2), "建设用地", "D04",
           "5 % overbuild beyond a 农用地转用 of the HSX year; field PDLX 违法用地 confirms (stays 5 %)")
    ctx.appr("农用地转用", f.rect(-w / 2 - 25, -w / 2 + 0.95 * w, -h / 2 - 25, h / 2 + 25),
             ctx.d_this(ch.hsx), batch_land="城镇")
    ctx.field(fx, ch, "是", "违法用地", "超出批准范围建设厂房")
    out["D04"] = ch
    # D05 illegal on cultivated (no farmland)
    f, w, h = std("cult_nofarm", 50, 36)
    c(B, f.blob(r, w, h), "建设用地", "D05", "entirely illegal on cultivated land (not farmland): 未报即用")
    # D06 illegal on basic farmland
    f, w, h = std("cult_farm", 55, 38)
    c(B, f.blob(r, w, h), "推填土", "D06", "entirely illegal 推填土 on 永久基本农田: 未报即用, farmland = area")
    # D07 on existing construction
    f, w, h = std("village", 30, 22)
    c(B, f.blob(r, w, h), "建设用地", "D07", "rebuilt house inside 0702 农村宅基地: unchanged (P ∩ C)")
    # D08 未批先建 (宅基地 approved after HSX)
    f, w, h = std("fringe", 18, 14)
    ch = c(B, f.rect(-w / 2, w / 2, -h / 2, h / 2), "建设用地", "D08",
           "未批先建: 宅基地 approval dated after HSX (L)")
    ctx.appr("宅基地", cover(f, w, h, 4), ctx.d_after(ch.hsx))
    # D09 临时用地超期
    f, w, h = std("cult", 70, 45)
    ch = c(B, f.rect(-w / 2, w / 2, -h / 2, h / 2), "推填土", "D09",
           "临时用地超期: 临时用地 YXQZ before HSX (expired)")
    ctx.appr("临时用地", cover(f, w, h, 20), dt.date(2020, 5, 12), yxqz=dt.date(2022, 5, 11),
             xmmc=TEMP_PROJECTS[0])
    # D10 临时用地 YXQZ == HSX
    f, w, h = std("cult", 65, 40)
    ch = c(B, f.rect(-w / 2, w / 2, -h / 2, h / 2), "推填土", "D10",
           "临时用地 YXQZ = HSX: still valid (Decision 4), approved 2021 → 往年批准本年建设",
           hsx=dt.date(2022, 10, 9))
    ctx.appr("临时用地", cover(f, w, h, 20), dt.date(2021, 10, 10), yxqz=ch.hsx, xmmc=TEMP_PROJECTS[1])
    # D11 临时用地 without YXQZ
    f, w, h = std("agri", 60, 40)
    ch = c(B, f.rect(-w / 2, w / 2, -h / 2, h / 2), "推填土", "D11",
           "临时用地 without YXQZ never expires (Decision 4): legal, 本年批准本年建设")
    ctx.appr("临时用地", cover(f, w, h, 20), ctx.d_this(ch.hsx), xmmc=TEMP_PROJECTS[2])
    # D12 greenhouse filed
    f, w, h = std("cult", 80, 30)
    ch = c(B, f.rect(-w / 2, w / 2, -h / 2, h / 2), "设施农用地", "D12",
           "greenhouse with 设施农用地 filing before HSX: agri_adjust")
    ctx.appr("设施农用地", cover(f, w, h, 10), ctx.d_this(ch.hsx), xmmc="蔬菜大棚")
    # D13 greenhouse without filing
    f, w, h = std("cult", 80, 30)
    c(B, f.rect(-w / 2, w / 2, -h / 2, h / 2), "设施农用地", "D13",
      "greenhouse without filing: illegal 未备案设施农用地")
    # D14 greenhouse 60 % filed
    f, w, h = std("cult", 80, 30)
    ch = c(B, f.rect(-w / 2, w / 2, -h / 2, h / 2), "设施农用地", "D14",
           "greenhouse 60 % filed: agri 60 %, illegal 40 % 未备案设施农用地 → class illegal")
    ctx.appr("设施农用地", f.rect(-w / 2 - 10, -w / 2 + 0.6 * w, -h / 2 - 10, h / 2 + 10),
             ctx.d_this(ch.hsx), xmmc="食用菌大棚")
    # D15 greenhouse filed only after HSX
    f, w, h = std("cult", 70, 30)
    ch = c(B, f.rect(-w / 2, w / 2, -h / 2, h / 2), "设施农用地", "D15",
           "greenhouse whose filing is dated after HSX: F needs PZRQ ≤ HSX → illegal 未备案设施农用地")
    ctx.appr("设施农用地", cover(f, w, h, 10), ctx.d_after(ch.hsx), xmmc="育苗温室")
    # D16 greenhouse under a construction permit only
    f, w, h = std("cult", 70, 30)
    ch = c(B, f.rect(-w / 2, w / 2, -h / 2, h / 2), "设施农用地", "D16",
           "greenhouse under a 农用地转用 only (V is no filing): illegal 未备案设施农用地")
    ctx.appr("农用地转用", cover(f, w, h, 20), ctx.d_this(ch.hsx), batch_land="村庄")
    # D17 building on a facility-farm filing (大棚房)
    f, w, h = std("cult", 40, 30)
    ch = c(B, f.rect(-w / 2, w / 2, -h / 2, h / 2), "建设用地", "D17",
           "建设用地 under a 设施农用地 filing dated before HSX (F is not V): illegal 未报即用")
    ctx.appr("设施农用地", cover(f, w, h, 15), ctx.d_this(ch.hsx), xmmc="养殖场")
    # D18 building on a facility-farm filing dated after HSX → L
    f, w, h = std("cult", 40, 30)
    ch = c(B, f.rect(-w / 2, w / 2, -h / 2, h / 2), "建设用地", "D18",
           "建设用地 under a 设施农用地 filing dated after HSX: L takes any type → 未批先建")
    ctx.appr("设施农用地", cover(f, w, h, 15), ctx.d_after(ch.hsx), xmmc="果品储藏库")
    # D19 expired temp + later 供地 → 未批先建 first
    f, w, h = std("cult", 60, 40)
    ch = c(B, f.rect(-w / 2, w / 2, -h / 2, h / 2), "建设用地", "D19",
           "expired 临时用地 and a 供地 dated after HSX: 未批先建 wins over 临时用地超期")
    ctx.appr("临时用地", cover(f, w, h, 20), dt.date(2019, 8, 2), yxqz=dt.date(2021, 8, 1),
             xmmc=TEMP_PROJECTS[3])
    ctx.appr("供地", cover(f, w, h, 10), ctx.d_after(ch.hsx), xmmc="稷山县" + PROJECTS[4])
    # D20 straddling two townships, illegal; XZQDM attribute names the minority township
    tw = ctx.w.parcels.twp.values
    f, a, b = ctx.edge(ctx.mask["cult"], lambda a, b: ctx.mask["cult"][b] and tw[a] != tw[b], 60, 26, 14)
    c(B, f.rect(-30, 30, -26, 14), "建设用地", "D20",
      "straddles two townships (≈65/35), illegal; its XZQDM attribute names the minority township "
      "(Decisions 5, 14)", xzqdm_attr=TOWNSHIPS[tw[b]][0])
    # D21 straddling two townships, legal
    f, a, b = ctx.edge(ctx.mask["cult"], lambda a, b: ctx.mask["cult"][b] and tw[a] != tw[b], 60, 24, 16)
    ch = c(B, f.rect(-30, 30, -24, 16), "建设用地", "D21", "straddles two townships, legal (本年)")
    ctx.appr("农用地转用", f.rect(-50, 50, -45, 40), ctx.d_this(ch.hsx), batch_land="城镇")
    # D22 partly outside the county
    f = ctx.outline_edge(60, 26, 14)
    c(B, f.rect(-30, 30, -26, 14), "建设用地", "D22",
      "≈35 % outside the county (outside every township): illegal; the outside part counts only in the county row")
    # D23 / D24 tiny illegal remnant below / above min_part_m2
    for cid, (ds, dt_), txt in (("D23", (3, 2), "6 m² illegal remnant (< min_part_m2): class legal"),
                                ("D24", (5, 3), "15 m² illegal remnant (≥ min_part_m2): class illegal")):
        f, w, h = std("cult", 60, 40)
        ch = c(B, f.rect(-w / 2, w / 2, -h / 2, h / 2), "建设用地", cid, txt)
        notch = f.rect(w / 2 - ds, w / 2 + 30, h / 2 - dt_, h / 2 + 30)
        ctx.appr("农用地转用", cover(f, w, h, 20).difference(notch), ctx.d_this(ch.hsx), batch_land="城镇")
    # D25 unknown BHLX
    f, w, h = std()
    ch = c(B, f.rect(-w / 2, w / 2, -h / 2, h / 2), "其他", "D25",
           "unknown BHLX 其他, under a 农用地转用: judged like 建设用地 → legal (warning)")
    ctx.appr("农用地转用", cover(f, w, h, 20), ctx.d_this(ch.hsx), batch_land="城镇")
    # D26 unknown PZLX
    f, w, h = std()
    ch = c(B, f.rect(-w / 2, w / 2, -h / 2, h / 2), "建设用地", "D26",
           "approval with unknown PZLX 增减挂钩: judged like a construction permit → legal (warning)")
    ctx.appr("农用地转用", cover(f, w, h, 25), dt.date(2021, 6, 17), pzlx="增减挂钩",
             xmmc="稷山县2021年城乡建设用地增减挂钩项目（第2批）", pzwh="晋自然资函〔2021〕88号")
    # D27 quarantined approval
    f, w, h = std("cult", 60, 40)
    ch = c(B, f.rect(-w / 2, w / 2, -h / 2, h / 2), "推填土", "D27",
           "only approval has PZRQ 2022/13/45 (unreadable → quarantine, not used): illegal 未报即用")
    ctx.appr("临时用地", cover(f, w, h, 20), None, raw_pzrq="2022/13/45", yxqz=dt.date(2024, 3, 1),
             xmmc=TEMP_PROJECTS[4])
    # D28 – D33 on parcels with odd DLBM / KCXS
    for cid, where, bhlx, txt in (
            ("D28", "kcxs_percent", "建设用地", "illegal on 耕地 whose KCXS is a percentage (>1): 耕地 = area × (1 − KCXS/100)"),
            ("D29", "dlbm_3digit", "建设用地", "illegal on DLBM '103' (→ 0103 旱地): counts as 耕地"),
            ("D30", "dlbm_spaces", "推填土", "illegal on DLBM with stray spaces (' 0102' / '01 02 '): counts as 耕地"),
            ("D31", "dlbm_suffix", "建设用地", "illegal on DLBM '0201K' (→ 0201 果园): no 耕地"),
            ("D32", "dlbm_lower", "建设用地", "on DLBM '08h2' (→ 08H2, construction): unchanged"),
            ("D33", "kcxs_null", "建设用地", "illegal on 耕地 with missing KCXS (→ 0): 耕地 = area")):
        f, w, h = std(where, 50, 34)
        c(B, f.blob(r, w, h), bhlx, cid, txt)
    # D34 over overlapping farmland polygons
    f, w, h = std("cult_farm", 60, 40)
    c(B, f.rect(-w / 2, w / 2, -h / 2, h / 2), "建设用地", "D34",
      "over two overlapping 永久基本农田 polygons: farmland counted once (= area)")
    ctx.extra_farmland.append(f.rect(-10, w / 2 + 20, -h / 2 - 15, h / 2 + 15).intersection(
        ctx.geoms[ctx.tree.query(Point(f.cx, f.cy), predicate="within")[0]]))
    # D35 mixed: existing construction + legal + illegal
    cult = ctx.mask["cult"]
    f, a, b = ctx.edge(ctx.mask["village"], lambda a, b: cult[b], 60, 15, 35)
    ch = c(B, f.rect(-30, 30, -15, 35), "建设用地", "D35",
           "mixed: 15 m on 0702 (unchanged), rest on 耕地 half under a 供地 (legal), half not (illegal)")
    ctx.appr("供地", f.rect(-60, 0, -30, 60), ctx.d_prev(Y), xmmc="稷山县" + PROJECTS[9])
    # D36 BHLX 农用地 over construction and an approval
    f, a, b = ctx.edge(ctx.mask["village"], lambda a, b: cult[b], 60, 15, 35)
    ch = c(B, f.rect(-30, 30, -15, 35), "农用地", "D36",
           "BHLX 农用地 over 0702 and a 农用地转用: all of P agri_adjust (no unchanged piece)")
    ctx.appr("农用地转用", f.rect(-50, 50, -30, 60), ctx.d_this(ch.hsx), batch_land="村庄")
    # D37 / D38 illegal 耕地 below / above 0.005 亩 (3.33 m²)
    zero_k = (ctx.w.parcels.code == "0102").values & (ctx.w.parcels.kcxs_frac == 0).values & cult
    for cid, strip, txt in (("D37", 0.2, "illegal on 0404 with 2 m² on 0102: illegal 耕地 < 0.005 亩 → not 涉及耕地"),
                            ("D38", 0.5, "illegal on 0404 with 5 m² on 0102: illegal 耕地 ≥ 0.005 亩 → 涉及耕地")):
        f, a, b = ctx.edge(ctx.mask["grass"], lambda a, b: zero_k[b] and tw[a] == tw[b], 10, 40, strip)
        c(B, f.rect(-5, 5, -40, strip), "建设用地", cid, txt)
    # D39 – D45 field-check overrides
    f, w, h = std("cult_nofarm", 45, 30)
    ch = c(B, f.blob(r, w, h), "建设用地", "D39", "field SFBH = 否 on a desk-illegal polygon → unchanged")
    ctx.field(fx, ch, "否", "", "实地为原有硬化场地，未发生变化")
    out["D39"] = ch
    f, w, h = std("cult_nofarm", 45, 30)
    ch = c(B, f.blob(r, w, h), "推填土", "D40",
           "field SFBH = 否 and PDLX 违法用地 on the same row: 否 wins → unchanged")
    ctx.field(fx, ch, "否", "违法用地", "影像误判")
    out["D40"] = ch
    f, w, h = std("cult", 60, 40)
    ch = c(B, f.rect(-w / 2, w / 2, -h / 2, h / 2), "建设用地", "D41",
           "desk illegal (half under a 2022 农用地转用); field 合法用地 → legal: 本年 on the covered half, "
           "往年 on the rest (Decision 2)")
    ctx.appr("农用地转用", f.rect(-w / 2 - 20, 0, -h / 2 - 20, h / 2 + 20), ctx.d_this(ch.hsx), batch_land="城镇")
    ctx.field(fx, ch, "是", "合法用地", "已补办用地手续")
    f, w, h = std("cult", 60, 40)
    ch = c(B, f.rect(-w / 2, w / 2, -h / 2, h / 2), "建设用地", "D42",
           "desk legal (农用地转用 2022 covers all; an expired 临时用地 covers 30 %); field 违法用地 → "
           "illegal: 临时用地超期 30 %, 未报即用 70 % (Decision 2)")
    ctx.appr("农用地转用", cover(f, w, h, 20), ctx.d_this(ch.hsx), batch_land="城镇")
    ctx.appr("临时用地", f.rect(-w / 2 - 20, -w / 2 + 0.3 * w, -h / 2 - 20, h / 2 + 20), dt.date(2020, 3, 3),
             yxqz=dt.date(2021, 3, 2), xmmc=TEMP_PROJECTS[5])
    ctx.field(fx, ch, "是", "违法用地", "实际建设项目与批准用途不符")
    f, w, h = std("cult", 60, 40)
    ch = c(B, f.blob(r, w, h), "推填土", "D43", "desk illegal 推填土; field 农业结构调整 → agri_adjust")
    ctx.field(fx, ch, "是", "农业结构调整", "实为挖塘养鱼")
    f, w, h = std("cult", 45, 30)
    ch = c(B, f.blob(r, w, h), "建设用地", "D44", "field SFBH = 是 with empty PDLX: changes nothing (illegal)")
    ctx.field(fx, ch, "是", "", "")
    out["D44"] = ch
    f, w, h = std("cult", 45, 30)
    ch = c(B, f.blob(r, w, h), "建设用地", "D45",
           "two rows for this JCBH: 合法用地 then 违法用地 (at the end of the sheet); the later wins → illegal")
    ctx.field(fx, ch, "是", "合法用地", "初次核查")
    ctx.field(fx, ch, "是", "违法用地", "复核：无用地手续", tail=True)
    f, w, h = std("cult", 60, 40)
    ch = c(B, f.blob(r, w, h), "推填土", "D46",
           "WYHC_2022 says 违法用地; the later layer WYHC_BC (no batch) says 农业结构调整 → agri_adjust")
    ctx.field(fx, ch, "是", "违法用地", "推土未复垦")
    ctx.field(fb, ch, "是", "农业结构调整", "补充核查：平整土地种植果树")
    # D47 ecological red line
    f, w, h = std("eco_wild", 50, 40)
    c(B, f.blob(r, w, h), "推填土", "D47", "illegal 推填土 inside 生态保护红线 (plan layer)")
    # D48 re-issued in 2023Q2 under the same JCBH; WYHC_BC (no batch) says 否 → unchanged in both batches
    f, w, h = std("cult", 45, 30)
    ch = c(B, f.blob(r, w, h), "建设用地", "D48",
           "same JCBH re-issued in batch 2023Q2 (F04); WYHC_BC row SFBH = 否 applies in every batch → unchanged")
    out["D48"] = ch
    ctx.field(fb, ch, "否", "", "补充核查：两期影像均为临时堆放物，已清理")
    return out


def cases_2021(ctx: Context):
    B, fc, fb = "2021", "WYHC_2021.csv", "WYHC_BC.csv"
    r, c = ctx.rng, ctx.change

    def std(where="cult", w=60.0, h=40.0):
        return ctx.inside(where, w, h), w, h

    f, w, h = std()
    ch = c(B, f.rect(-w / 2, w / 2, -h / 2, h / 2), "建设用地", "E01", "本年批准本年建设 (农用地转用 2021)")
    ctx.appr("农用地转用", cover(f, w, h, 20), ctx.d_this(ch.hsx), batch_land="城镇")
    f, w, h = std()
    ch = c(B, f.rect(-w / 2, w / 2, -h / 2, h / 2), "建设用地", "E02",
           "往年批准本年建设 (征收 only, EPSG:4525 file, dated 2016)")
    ctx.appr("征收", cover(f, w, h, 20), rand_date(r, dt.date(2016, 3, 1), dt.date(2016, 12, 1)),
             xmmc="稷山县2016年度第2批次城镇建设用地")
    f, w, h = std("cult_farm", 50, 36)
    c(B, f.blob(r, w, h), "建设用地", "E03", "illegal on 永久基本农田: 未报即用")
    f, w, h = std("cult", 60, 40)
    c(B, f.bowtie(-w / 2, w / 2, -h / 2, h / 2), "推填土", "E04",
      "invalid bow-tie ring: MakeValid gives two triangles (half the rectangle), illegal")
    tw = ctx.w.parcels.twp.values
    f, a, b = ctx.edge(ctx.mask["cult"], lambda a, b: ctx.mask["cult"][b] and tw[a] != tw[b], 50, 22, 18)
    c(B, f.rect(-25, 25, -22, 18), "推填土", "E05", "straddles two townships (≈55/45), illegal")
    f, w, h = std("cult", 70, 45)
    ch = c(B, f.rect(-w / 2, w / 2, -h / 2, h / 2), "推填土", "E06", "临时用地超期 (YXQZ 2021-06-30 < HSX)")
    ctx.appr("临时用地", cover(f, w, h, 20), dt.date(2019, 7, 1), yxqz=dt.date(2021, 6, 30), xmmc=TEMP_PROJECTS[0])
    f, w, h = std("cult", 80, 30)
    ch = c(B, f.rect(-w / 2, w / 2, -h / 2, h / 2), "设施农用地", "E07", "greenhouse with filing: agri_adjust")
    ctx.appr("设施农用地", cover(f, w, h, 10), ctx.d_this(ch.hsx), xmmc="蔬菜大棚")
    f, w, h = std("cult_nofarm", 45, 30)
    ch = c(B, f.blob(r, w, h), "建设用地", "E08", "CSV field check SFBH = 否 → unchanged")
    ctx.field(fc, ch, "否", "", "实地未见新增建筑")
    f, w, h = std("cult", 45, 30)
    ch = c(B, f.blob(r, w, h), "建设用地", "E09",
           "two CSV rows: 合法用地 then (appended) 违法用地 → later wins, stays illegal")
    ctx.field(fc, ch, "是", "合法用地", "初次核查")
    ctx.field(fc, ch, "是", "违法用地", "复核：无审批手续", tail=True)
    f, w, h = std("cult", 70, 30)
    ch = c(B, f.rect(-w / 2, w / 2, -h / 2, h / 2), "设施农用地", "E10",
           "greenhouse without filing; CSV PDLX given as English id 'agri_adjust' → agri_adjust")
    ctx.field(fc, ch, "是", "agri_adjust", "已补办设施农用地备案")
    f, w, h = std("cult", 45, 30)
    ch = c(B, f.blob(r, w, h), "建设用地", "E11",
           "desk illegal; only WYHC_BC (no batch) has a row: 合法用地 → legal, all 往年批准本年建设 (no V in 2021)")
    ctx.field(fb, ch, "是", "合法用地", "补充核查：已取得批准文件")
    f, w, h = std("cult", 55, 40)
    ch = c(B, f.rect(-w / 2, w / 2, -h / 2, h / 2), "建设用地", "E12",
           "未批先建: built by 2021 HSX, 农用地转用 granted 2022-03")
    ctx.appr("农用地转用", cover(f, w, h, 20), rand_date(r, dt.date(2022, 2, 10), dt.date(2022, 3, 30)),
             batch_land="城镇")
    f, w, h = std("constr", 40, 30)
    ch = c(B, f.blob(r, w, h), "建设用地", "E13",
           "desk unchanged (on construction land); CSV PDLX 实地未变化 confirms")
    ctx.field(fc, ch, "是", "实地未变化", "原有建设用地翻建")


def cases_2023q2(ctx: Context, d48: Change):
    B = "2023Q2"
    r, c = ctx.rng, ctx.change

    def std(where="cult", w=60.0, h=40.0):
        return ctx.inside(where, w, h), w, h

    f, w, h = std()
    ch = c(B, f.rect(-w / 2, w / 2, -h / 2, h / 2), "建设用地", "F01",
           "Y = year of HSX (2023), not the label 2023Q2: 农用地转用 2023-03 → 本年批准本年建设 (Decision 3)")
    ctx.appr("农用地转用", cover(f, w, h, 20), rand_date(r, dt.date(2023, 2, 1), dt.date(2023, 4, 30)),
             batch_land="城镇")
    f, w, h = std()
    ch = c(B, f.rect(-w / 2, w / 2, -h / 2, h / 2), "建设用地", "F02", "往年批准本年建设 (供地 2022-11)")
    ctx.appr("供地", cover(f, w, h, 15), rand_date(r, dt.date(2022, 11, 1), dt.date(2022, 11, 30)),
             xmmc="稷山县" + PROJECTS[2])
    f, w, h = std("cult", 50, 35)
    c(B, f.blob(r, w, h), "推填土", "F03", "illegal on 耕地: 未报即用")
    c(B, d48.geom, d48.bhlx, "F04", "re-issued D48 with the same JCBH; WYHC_BC SFBH = 否 → unchanged",
      jcbh_from=d48)
    f, w, h = std("cult", 70, 40)
    ch = c(B, f.rect(-w / 2, w / 2, -h / 2, h / 2), "推填土", "F05", "临时用地超期 (YXQZ 2023-05-31 < HSX)")
    ctx.appr("临时用地", cover(f, w, h, 20), dt.date(2021, 6, 1), yxqz=dt.date(2023, 5, 31), xmmc=TEMP_PROJECTS[2])
    f, w, h = std("cult", 80, 30)
    c(B, f.rect(-w / 2, w / 2, -h / 2, h / 2), "设施农用地", "F06", "greenhouse without filing: 未备案设施农用地")


# --------------------------------------------------------------------------
# ordinary polygons and noise approvals
# --------------------------------------------------------------------------
def ordinary(ctx: Context, batch, n):
    r = ctx.rng
    for _ in range(n):
        kind = weighted(r, ORDINARY_MIX)
        if kind in ("legal_this", "legal_prev", "wpxj"):
            small = r.random() < 0.25  # a house on a 宅基地 permit
            area = r.uniform(150, 380) if small else math.exp(r.uniform(math.log(800), math.log(15000)))
            where = "fringe" if small or r.random() < 0.6 else "agri"
        elif kind in ("illegal",):
            small, area, where = False, math.exp(r.uniform(math.log(200), math.log(6000))), \
                ("fringe" if r.random() < 0.5 else "agri")
        elif kind == "unchanged":
            small, area, where = False, r.uniform(300, 2500), "constr"
        elif kind in ("ssny_ok", "ssny_no"):
            small, area, where = False, r.uniform(1000, 9000), "cult"
        elif kind == "agri":
            small, area, where = False, r.uniform(2000, 16000), "agri"
        else:  # temporary land
            small, area, where = False, r.uniform(2000, 12000), "agri"
        aspect = r.uniform(1.0, 2.4)
        w, h = math.sqrt(area * aspect), math.sqrt(area / aspect)
        try:
            f = ctx.inside(where, w, h, pad=60)
        except RuntimeError:
            try:
                f = ctx.inside(where, min(w, 60), min(h, 40), pad=60 + 0.5 * w)
            except RuntimeError:
                continue
        geom = f.blob(r, w, h)
        bhlx = {"ssny_ok": "设施农用地", "ssny_no": "设施农用地", "agri": "农用地",
                "temp_ok": "推填土", "temp_expired": "推填土"}.get(kind, "建设用地")
        if kind in ("illegal", "legal_this", "legal_prev", "wpxj") and r.random() < 0.2:
            bhlx = "推填土"
        ch = ctx.change(batch, geom, bhlx, desc=f"ordinary {kind}")
        m = float(r.uniform(5, 30))
        appr_geom = geom.buffer(m, join_style="mitre")
        if kind in ("legal_this", "legal_prev", "wpxj"):
            date = {"legal_this": lambda: ctx.d_this(ch.hsx), "legal_prev": lambda: ctx.d_prev(ch.hsx.year),
                    "wpxj": lambda: ctx.d_after(ch.hsx)}[kind]()
            if small:
                ctx.appr("宅基地", geom.buffer(2, join_style="mitre"), date)
            else:
                pk = weighted(r, [("农用地转用", 55), ("供地", 30), ("征收", 15)])
                extra = {"batch_land": weighted(r, [("城镇", 60), ("村庄", 40)])} if pk != "供地" else \
                    {"xmmc": "稷山县" + PROJECTS[int(r.integers(len(PROJECTS)))]}
                ctx.appr(pk, appr_geom, date, **extra)
        elif kind == "ssny_ok":
            ctx.appr("设施农用地", appr_geom, ctx.d_this(ch.hsx, 10) if r.random() < 0.6 else ctx.d_prev(ch.hsx.year),
                     xmmc=FACILITIES[int(r.integers(len(FACILITIES)))])
        elif kind == "temp_ok":
            start = ctx.d_this(ch.hsx) if r.random() < 0.5 else ctx.d_prev(ch.hsx.year)
            ctx.appr("临时用地", appr_geom, start, yxqz=max(start + dt.timedelta(days=730), ch.hsx + dt.timedelta(days=30)),
                     xmmc=TEMP_PROJECTS[int(r.integers(len(TEMP_PROJECTS)))])
        elif kind == "temp_expired":
            end = rand_date(r, ch.hsx - dt.timedelta(days=300), ch.hsx - dt.timedelta(days=20))
            ctx.appr("临时用地", appr_geom, end - dt.timedelta(days=700), yxqz=end,
                     xmmc=TEMP_PROJECTS[int(r.integers(len(TEMP_PROJECTS)))])


def noise_approvals(ctx: Context):
    """Approvals that cover no change polygon (most permits in a county's files)."""
    r = ctx.rng
    plan = [("农用地转用", 30, (5_000, 60_000), "fringe"), ("供地", 18, (3_000, 30_000), "fringe"),
            ("临时用地", 8, (3_000, 20_000), "agri"), ("设施农用地", 14, (1_500, 10_000), "cult"),
            ("宅基地", 60, (150, 350), "fringe")]
    for kind, n, (lo, hi), where in plan:
        for _ in range(n):
            area = math.exp(r.uniform(math.log(lo), math.log(hi)))
            aspect = r.uniform(1.0, 2.0)
            w, h = math.sqrt(area * aspect), math.sqrt(area / aspect)
            try:
                f = ctx.inside(where, min(w, 60), min(h, 40), pad=40 + 0.5 * w)
            except RuntimeError:
                continue
            date = rand_date(r, APPROVAL_FIRST, dt.date(2023, 11, 30))
            geom = f.blob(r, w, h)
            if kind == "农用地转用":
                ctx.appr(kind, geom, date, batch_land=weighted(r, [("城镇", 60), ("村庄", 40)]))
            elif kind == "供地":
                ctx.appr(kind, geom, date, xmmc="稷山县" + PROJECTS[int(r.integers(len(PROJECTS)))])
            elif kind == "临时用地":
                ctx.appr(kind, geom, date, yxqz=date + dt.timedelta(days=int(r.choice([365, 730]))),
                         xmmc=TEMP_PROJECTS[int(r.integers(len(TEMP_PROJECTS)))])
            elif kind == "设施农用地":
                ctx.appr(kind, geom, date, xmmc=FACILITIES[int(r.integers(len(FACILITIES)))])
            else:
                ctx.appr(kind, geom, date)


def number_approvals(ctx: Context):
    """PZWH / XMMC in the style of each issuing office, numbered by date within a year."""
    r = ctx.rng
    fmt = {"农用地转用": "晋政地字〔{y}〕{n}号", "征收": "晋政地字〔{y}〕{n}号", "供地": "稷自然资供〔{y}〕{n}号",
           "临时用地": "稷自然资临〔{y}〕{n}号", "设施农用地": "稷设农备〔{y}〕{n:02d}号", "宅基地": "{t}宅批〔{y}〕{n}号"}
    for kinds in (("农用地转用", "征收"), ("供地",), ("临时用地",), ("设施农用地",), ("宅基地",)):
        items = [a for a in ctx.approvals if a.kind in kinds and a.twin_of is None and not a.pzwh]
        items.sort(key=lambda a: (a.pzrq or dt.date(a.year, 12, 31), a.geom.centroid.x))
        counter, lots = {}, {}
        for a in items:
            y = a.year
            counter[y] = counter.get(y, int(r.integers(3, 40))) + int(r.integers(1, 6))
            twp = township_of(ctx, a.geom)
            kind = a.kind
            a.pzwh = fmt[kind].format(y=y, n=counter[y], t=TOWNSHIPS[twp][1][:2])
            if a.batch_land:
                lots[y] = lots.get(y, 0) + 1
                a.xmmc = f"稷山县{y}年度第{lots[y]}批次{a.batch_land}建设用地"
            elif kind == "宅基地":
                a.xmmc = f"{person(r)}宅基地"
            elif kind == "设施农用地" and not a.xmmc.startswith(TOWNSHIPS[twp][1]):
                a.xmmc = f"{TOWNSHIPS[twp][1]}{a.xmmc}"
    for a in ctx.approvals:
        if a.twin_of is not None:
            a.pzwh, a.xmmc = a.twin_of.pzwh, a.twin_of.xmmc


def township_of(ctx, geom):
    """Township index holding the centroid (the nearest one for a centroid outside the county)."""
    c = geom.centroid
    hits = ctx.tree.query(c, predicate="within")
    if len(hits):
        return int(ctx.w.parcels.twp.values[hits[0]])
    return int(ctx.w.parcels.twp.values[ctx.tree.nearest(c)])


def number_changes(ctx: Context):
    """JCBH: county code + year (+ quarter digit) + serial, numbered by township, north to south."""
    for batch, cfg in BATCHES.items():
        chs = [c for c in ctx.changes if c.batch == batch]
        chs.sort(key=lambda c: (township_of(ctx, c.geom), -round(c.geom.centroid.y), round(c.geom.centroid.x)))
        q = batch[5:] if "Q" in batch else ""
        for k, ch in enumerate(chs, start=1):
            ch.jcbh = f"{COUNTY_CODE}{cfg['year']}{q}{k:03d}" if q else f"{COUNTY_CODE}{cfg['year']}{k:04d}"
    for ch in ctx.changes:
        if ch.jcbh_from is not None:
            ch.jcbh = ch.jcbh_from.jcbh


# --------------------------------------------------------------------------
# reference judgement (oracle) – domain.md rules in shapely
# --------------------------------------------------------------------------
PDLX_CLASS = {"合法用地": "legal", "实地未变化": "unchanged", "农业结构调整": "agri_adjust", "违法用地": "illegal",
              "legal": "legal", "unchanged": "unchanged", "agri_adjust": "agri_adjust", "illegal": "illegal"}
CLASS_ORDER = ("illegal", "legal", "agri_adjust", "unchanged")
SUBTYPES = ("bnpbj", "wnpbj", "wpxj", "lsyd_cq", "wbjy", "ssny_wba")


class Oracle:
    def __init__(self, world: World, approvals, farmland_geoms):
        p = world.parcels
        self.pg = np.array(p.geometry.values)
        self.ptree = shapely.STRtree(self.pg)
        groups = [land_group(c) for c in p.DLBM]  # from the DLBM as written (normalised)
        self.constr = np.array([g == "construction" for g in groups])
        self.cult = np.array([g == "cultivated" for g in groups])
        self.ptwp = p.twp.values
        self.kfrac = p.kcxs_frac.values
        self.fg = np.array(farmland_geoms)
        self.ftree = shapely.STRtree(self.fg)
        self.appr = [a for a in approvals if a.pzrq is not None]
        self.ag = np.array([a.geom for a in self.appr])
        self.atree = shapely.STRtree(self.ag)
        self.tw = world.townships
        self.udb = world.plan.geometry[world.plan.GKLX == "城镇开发边界"].union_all()
        self.eco = world.plan.geometry[world.plan.GKLX == "生态保护红线"].union_all()

    def _union(self, geoms):
        return shapely.union_all(geoms) if len(geoms) else Polygon()

    def cultivated(self, g):
        tot = 0.0
        for i in self.ptree.query(g, predicate="intersects"):
            if self.cult[i]:
                tot += ell_area(g.intersection(self.pg[i])) * (1 - self.kfrac[i])
        return tot

    def farmland(self, g):
        idx = self.ftree.query(g, predicate="intersects")
        return ell_area(g.intersection(self._union(self.fg[idx]))) if len(idx) else 0.0

    def sets(self, P, hsx):
        V, VY, F, L, E = [], [], [], [], []
        for i in self.atree.query(P, predicate="intersects"):
            a = self.appr[i]
            if a.pzrq > hsx:
                L.append(a.geom)
                continue
            if a.kind == "设施农用地":
                F.append(a.geom)
            elif a.kind == "临时用地" and a.yxqz is not None and a.yxqz < hsx:
                E.append(a.geom)
            else:
                V.append(a.geom)
                if a.pzrq.year == hsx.year:
                    VY.append(a.geom)
        return [self._union(x) for x in (V, VY, F, L, E)]

    def judge(self, ch: Change, frow: FieldRow | None):
        P = polygonal(shapely.make_valid(ch.geom))
        V, VY, F, L, E = self.sets(P, ch.hsx)
        cidx = [i for i in self.ptree.query(P, predicate="intersects") if self.constr[i]]
        C = polygonal(P.intersection(self._union(self.pg[cidx])))
        R = polygonal(P.difference(C))
        bhlx = ch.bhlx if ch.bhlx in ("建设用地", "推填土", "设施农用地", "农用地") else "建设用地"
        pieces = {k: Polygon() for k in CLASS_ORDER}
        sub = {k: Polygon() for k in SUBTYPES}
        if bhlx == "农用地":
            pieces["agri_adjust"] = P
        elif bhlx == "设施农用地":
            pieces["unchanged"], pieces["agri_adjust"] = C, polygonal(R.intersection(F))
            pieces["illegal"] = sub["ssny_wba"] = polygonal(R.difference(F))
        else:
            pieces["unchanged"] = C
            pieces["legal"], pieces["illegal"] = polygonal(R.intersection(V)), polygonal(R.difference(V))
            sub.update(self._legal_sub(pieces["legal"], VY))
            sub.update(self._illegal_sub(pieces["illegal"], L, E))
        areas = {k: ell_area(g) for k, g in pieces.items()}
        auto = self.pick_class(areas)
        final = auto
        if frow is not None:
            pd_ = PDLX_CLASS.get(frow.pdlx.strip(), "") if frow.pdlx else ""
            if frow.sfbh == "否":
                final = "unchanged"
            elif pd_ and pd_ != auto:
                final = pd_
        # override (or SFBH = 否, even on a desk-unchanged polygon): all of P in the
        # final class (Decision 2 for sub-types)
        if final != auto or (frow is not None and frow.sfbh == "否"):
            pieces = {k: (P if k == final else Polygon()) for k in CLASS_ORDER}
            sub = {k: Polygon() for k in SUBTYPES}
            if final == "legal":
                sub.update(self._legal_sub(P, VY))
            elif final == "illegal":
                if bhlx == "设施农用地":
                    sub["ssny_wba"] = P
                else:
                    sub.update(self._illegal_sub(P, L, E))
            areas = {k: ell_area(g) for k, g in pieces.items()}
        return self.row(ch, P, pieces, sub, areas, auto, final)

    @staticmethod
    def _legal_sub(legal, VY):
        bn = polygonal(legal.intersection(VY))
        return {"bnpbj": bn, "wnpbj": polygonal(legal.difference(VY))}

    @staticmethod
    def _illegal_sub(illegal, L, E):
        wpxj = polygonal(illegal.intersection(L))
        rest = polygonal(illegal.difference(L))
        cq = polygonal(rest.intersection(E))
        return {"wpxj": wpxj, "lsyd_cq": cq, "wbjy": polygonal(rest.difference(E))}

    @staticmethod
    def pick_class(areas):
        for k in CLASS_ORDER:
            if areas[k] >= MIN_PART_M2:
                return k
        return max(CLASS_ORDER, key=lambda k: (areas[k], -CLASS_ORDER.index(k)))

    def row(self, ch, P, pieces, sub, areas, auto, final):
        shares = [0.0] * len(self.tw)
        for i in self.ptree.query(P, predicate="intersects"):  # parcels partition the townships
            shares[self.ptwp[i]] += ell_area(P.intersection(self.pg[i]))
        best = max(range(len(shares)), key=lambda i: (round(shares[i], 6), -int(self.tw.XZQDM[i])))
        row = dict(jcbh=ch.jcbh, batch=ch.batch, xzqdm=self.tw.XZQDM[best], xzqmc=self.tw.XZQMC[best],
                   **{"class": final}, auto_class=auto, area_m2=ell_area(P),
                   legal_m2=areas["legal"], unchanged_m2=areas["unchanged"], agri_m2=areas["agri_adjust"],
                   illegal_m2=areas["illegal"], cultivated_m2=self.cultivated(P), farmland_m2=self.farmland(P),
                   legal_cultivated_m2=self.cultivated(pieces["legal"]),
                   illegal_cultivated_m2=self.cultivated(pieces["illegal"]),
                   illegal_farmland_m2=self.farmland(pieces["illegal"]))
        for k in SUBTYPES:
            row[f"{k}_m2"] = ell_area(sub[k])
        row["illegal_outside_kfbj_m2"] = ell_area(pieces["illegal"].difference(self.udb))
        row["illegal_in_stbh_m2"] = ell_area(pieces["illegal"].intersection(self.eco))
        row["outside_county_m2"] = ell_area(P) - sum(shares)
        row["township_split"] = " / ".join(f"{self.tw.XZQMC[i]} {a:.0f}" for i, a in enumerate(shares) if a >= 0.5)
        row["case"] = ch.case
        row["scenario"] = ch.desc if not ch.case else ""
        return row


def merged_field_rows(ctx: Context, layer_order):
    """(batch, JCBH) → the row that wins (later rows and later layers replace earlier ones)."""
    batches_of = {}
    for ch in ctx.changes:
        batches_of.setdefault(ch.jcbh, []).append(ch.batch)
    out = {}
    for fname, batch in layer_order:
        for row in ordered_rows(ctx.field_rows[fname]):
            for b in ([batch] if batch else batches_of.get(row.change.jcbh, [])):
                out[(b, row.change.jcbh)] = row
    return out


def ordered_rows(rows):
    head = sorted([x for x in rows if not x.tail], key=lambda x: x.change.jcbh)
    return head + [x for x in rows if x.tail]


# --------------------------------------------------------------------------
# routine field checks (confirming the desk class where it is robust)
# --------------------------------------------------------------------------
BZ_BY_CLASS = {"legal": ["已办理用地手续", "手续齐全", "按批准范围建设"],
               "illegal": ["无用地手续", "未批先占", "已下发停止违法行为通知书"],
               "unchanged": ["原有建设用地", "实地未变化", "原址翻建"],
               "agri_adjust": ["种植果树", "挖塘养鱼", "设施农业"]}
CLASS_PDLX = {"legal": "合法用地", "unchanged": "实地未变化", "agri_adjust": "农业结构调整", "illegal": "违法用地"}


def routine_field_rows(ctx: Context, desk):
    for fname, batch in (("WYHC_2021.csv", "2021"), ("WYHC_2022.xlsx", "2022")):
        done = {x.change.jcbh for x in ctx.field_rows[fname]}
        for ch in sorted([c for c in ctx.changes if c.batch == batch], key=lambda c: c.jcbh):
            if ch.jcbh in done or ch.case in ("D48", "E11") or ctx.rng.random() < 0.04:
                continue  # a few polygons not yet visited
            row = desk[(batch, ch.jcbh)]
            cls = row["auto_class"]
            parts = [row[k] for k in ("legal_m2", "unchanged_m2", "agri_m2", "illegal_m2")]
            robust = all(a < 3 or a > 30 for a in parts)
            pdlx = CLASS_PDLX[cls] if robust else ""
            bz = BZ_BY_CLASS[cls][int(ctx.rng.integers(3))]
            ctx.field(fname, ch, "是", pdlx, bz)


# --------------------------------------------------------------------------
# plan layer (城镇开发边界 / 生态保护红线)
# --------------------------------------------------------------------------
def build_plan(world: World):
    rows = []
    for s in world.settlements:
        if s.kind in ("county", "town", "industry"):
            g = Point(s.x, s.y).buffer(s.r * 1.3, quad_segs=8).intersection(world.outline)
            rows.append(dict(GKLX="城镇开发边界", MC=f"{s.name}城镇开发边界", geometry=g))
    udb = shapely.union_all([r["geometry"] for r in rows])
    rows = [dict(GKLX="城镇开发边界", MC="稷山县城镇开发边界", geometry=udb)]
    xs = np.arange(COUNTY_BOX[0] - 500, COUNTY_BOX[2] + 501, 250.0)
    north = np.column_stack([xs, world.land.ridge_y(xs) + 900])
    ring = np.vstack([north, [[xs[-1], COUNTY_BOX[3] + 1000], [xs[0], COUNTY_BOX[3] + 1000]]])
    eco = Polygon(ring.round(3)).intersection(world.outline.buffer(-150)).difference(udb)
    rows.append(dict(GKLX="生态保护红线", MC="吕梁山水源涵养生态保护红线", geometry=eco))
    return gpd.GeoDataFrame(rows, crs=WORK_EPSG)


# --------------------------------------------------------------------------
# writers
# --------------------------------------------------------------------------
def ymd(d):
    return d.strftime("%Y%m%d") if d else ""


def ymd_dash(d):
    return d.isoformat() if d else ""


def ymd_slash(d):
    return f"{d.year}/{d.month}/{d.day}" if d else ""


def write_shp(gdf, path, encoding="UTF-8", date_fields=(), keep_cpg=True):
    """Shapefile with a fixed DBF date; date_fields hold YYYYMMDD text and become DBF 'D' fields."""
    gdf.to_file(path, engine="pyogrio", encoding=encoding,
                layer_options={"DBF_DATE_LAST_UPDATE": FILE_DATE, "RESIZE": "YES"})
    if date_fields:
        patch_dbf_dates(path.with_suffix(".dbf"), date_fields)
    if not keep_cpg:
        path.with_suffix(".cpg").unlink(missing_ok=True)


def patch_dbf_dates(dbf, names):
    """Turn 8-character text fields into DBF date fields (type 'D', YYYYMMDD)."""
    b = bytearray(dbf.read_bytes())
    pos = 32
    while b[pos] != 0x0D:
        name = bytes(b[pos:pos + 11]).split(b"\0")[0].decode("ascii")
        if name in names:
            assert b[pos + 16] == 8, (name, b[pos + 16])
            b[pos + 11] = ord("D")
        pos += 32
    dbf.write_bytes(bytes(b))


def write_gpkg(gdf, path, layer):
    gdf.to_file(path, engine="pyogrio", layer=layer, driver="GPKG")


def deterministic_zip(data: bytes) -> bytes:
    """Rewrite an XLSX with fixed entry timestamps and fixed core-property dates."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    stamp = XLSX_TIME.strftime("%Y-%m-%dT%H:%M:%SZ")
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                body = re.sub(rb"(<dcterms:(created|modified)[^>]*>)[^<]*", lambda m: m.group(1) + stamp.encode(), body)
            zi = zipfile.ZipInfo(info.filename, date_time=(2024, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(zi, body)
    return out.getvalue()


def write_xlsx(rows, path, sheet):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = sheet
    ws.append(["JCBH", "SFBH", "PDLX", "HCR", "HCRQ", "BZ"])
    for x in rows:
        ws.append([x.change.jcbh, x.sfbh, x.pdlx or None, x.hcr, dt.datetime.combine(x.hcrq, dt.time()),
                   x.bz or None])
        ws.cell(ws.max_row, 5).number_format = "yyyy-mm-dd"
    for col, width in zip("ABCDEF", (18, 6, 14, 16, 12, 36)):
        ws.column_dimensions[col].width = width
    wb.properties.creator = "weipian sample generator"
    wb.properties.created = XLSX_TIME
    buf = io.BytesIO()
    wb.save(buf)
    path.write_bytes(deterministic_zip(buf.getvalue()))


def write_csv(rows, path, bom, date_fmt):
    with open(path, "w", encoding="utf-8-sig" if bom else "utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["JCBH", "SFBH", "PDLX", "HCR", "HCRQ", "BZ"])
        for x in rows:
            w.writerow([x.change.jcbh, x.sfbh, x.pdlx, x.hcr, date_fmt(x.hcrq), x.bz])


def approvals_frame(items, cols):
    rows = [{k: f(a) for k, f in cols.items()} | {"geometry": a.geom} for a in items]
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=WORK_EPSG)


def write_approvals(ctx: Context, out: Path):
    by = lambda k: sorted([a for a in ctx.approvals if a.kind == k], key=lambda a: (a.pzwh, a.geom.centroid.x))
    mj = lambda a: round(a.geom.area, 2)
    # 农用地转用: Shapefile EPSG:4546, PZRQ text 20220315, has PZLX (one unknown value)
    g = approvals_frame(by("农用地转用"), {"PZWH": lambda a: a.pzwh, "PZRQ": lambda a: ymd(a.pzrq),
                                        "PZLX": lambda a: a.pzlx or a.kind, "XMMC": lambda a: a.xmmc, "PZMJ": mj})
    write_shp(g, out / "SP_NYDZY.shp")
    # 征收: Shapefile in EPSG:4525 (zone-prefixed easting), PZRQ a DBF date field
    g = approvals_frame(by("征收"), {"PZWH": lambda a: a.pzwh, "PZRQ": lambda a: ymd(a.pzrq),
                                   "PZLX": lambda a: a.kind, "XMMC": lambda a: a.xmmc, "PZMJ": mj})
    write_shp(g.to_crs(ZONE_EPSG), out / "SP_ZS.shp", date_fields=("PZRQ",))
    # 供地: GeoPackage, other field names (WH, PZSJ, YDLX), dates 2022-03-15
    g = approvals_frame(by("供地"), {"WH": lambda a: a.pzwh, "PZSJ": lambda a: ymd_dash(a.pzrq),
                                   "YDLX": lambda a: a.kind, "XMMC": lambda a: a.xmmc,
                                   "GDFS": lambda a: "划拨" if "学" in a.xmmc or "卫生院" in a.xmmc else "出让",
                                   "GDMJ": mj})
    write_gpkg(g, out / "SP_GD.gpkg", "GDXX")
    # 临时用地: Shapefile, no PZLX field, dates 2022/3/15, YXQZ (one empty), one unreadable PZRQ
    g = approvals_frame(by("临时用地"), {"PZWH": lambda a: a.pzwh,
                                     "PZRQ": lambda a: a.raw_pzrq or ymd_slash(a.pzrq),
                                     "YXQZ": lambda a: ymd_slash(a.yxqz), "XMMC": lambda a: a.xmmc, "PZMJ": mj})
    write_shp(g, out / "SP_LSYD.shp")
    # 设施农用地: Shapefile, no PZLX field, PZRQ a DBF date field
    g = approvals_frame(by("设施农用地"), {"PZWH": lambda a: a.pzwh, "PZRQ": lambda a: ymd(a.pzrq),
                                      "XMMC": lambda a: a.xmmc, "YDMJ": mj})
    write_shp(g, out / "SP_SSNYD.shp", date_fields=("PZRQ",))
    # 宅基地: Shapefile, GBK without .cpg, mixed-case field names
    g = approvals_frame(by("宅基地"), {"Pzwh": lambda a: a.pzwh, "pzrq": lambda a: ymd(a.pzrq),
                                    "PzLx": lambda a: a.kind, "Xmmc": lambda a: a.xmmc, "Pzmj": mj})
    write_shp(g, out / "SP_ZJD.shp", encoding="GBK", keep_cpg=False)


def changes_frame(ctx, batch, names, date_fmt):
    rows = []
    for ch in sorted([c for c in ctx.changes if c.batch == batch], key=lambda c: c.jcbh):
        attr_twp = ch.xzqdm_attr or TOWNSHIPS[township_of(ctx, ch.geom)][0]
        rows.append({names[0]: ch.jcbh, names[1]: attr_twp, names[2]: date_fmt(ch.qsx),
                     names[3]: date_fmt(ch.hsx), names[4]: round(ch.geom.area, 2), names[5]: ch.bhlx,
                     "geometry": ch.geom})
    return gpd.GeoDataFrame(rows, geometry="geometry", crs=WORK_EPSG)


def write_changes(ctx: Context, out: Path):
    std = ("JCBH", "XZQDM", "QSX", "HSX", "JCMJ", "BHLX")
    g = changes_frame(ctx, "2021", std, ymd)
    write_shp(g, out / "JCTB_2021.shp", date_fields=("QSX", "HSX"))
    g = changes_frame(ctx, "2022", std, lambda d: pd.Timestamp(d))
    g["QSX"] = pd.to_datetime(g["QSX"]).astype("datetime64[ms]")
    g["HSX"] = pd.to_datetime(g["HSX"]).astype("datetime64[ms]")
    g.to_file(out / "JCTB_2022.gdb", engine="pyogrio", driver="OpenFileGDB", layer="JCTB")
    g = changes_frame(ctx, "2023Q2", ("Jcbh", "xzqdm", "Qsx", "Hsx", "JcMj", "bhlx"), ymd)
    write_gpkg(g, out / "JCTB_2023Q2.gpkg", "JCTB")


def write_base(world: World, farmland_rows, out: Path):
    tw = world.townships.copy()
    tw.insert(0, "BSM", [f"{i + 1:08d}" for i in range(len(tw))])
    write_shp(tw, out / "XZQ.shp", encoding="GBK", keep_cpg=False)
    p = world.parcels
    cols = ["BSM", "DLBM", "DLMC", "ZLDWDM", "ZLDWMC", "TBMJ", "KCXS", "KCMJ", "TBDLMJ", "geometry"]
    write_gpkg(gpd.GeoDataFrame(p[cols], geometry="geometry", crs=WORK_EPSG), out / "DLTB.gpkg", "DLTB")
    fl = gpd.GeoDataFrame(farmland_rows, geometry="geometry", crs=WORK_EPSG)
    fl.insert(0, "BSM", [f"{COUNTY_CODE}1500{i + 1:06d}" for i in range(len(fl))])
    write_shp(fl[["BSM", "DLBM", "ZLDWMC", "geometry"]].to_crs(GEO_EPSG), out / "YJJBNTTB.shp")
    write_shp(world.plan, out / "GHGK.shp")


COUNTY_TOML = '''\
# Sample county for weipian (synthetic data, see data/README.md).
# Regenerate with: python data/generate_sample.py --out data/sample --seed {seed}

[county]
code = "{code}"
name = "{name}"
crs  = "EPSG:{epsg}"

[settings]
min_part_m2 = 10

[[layers]]
kind = "township"
path = "XZQ.shp"
encoding = "GBK"              # DBF in GBK, no .cpg

[[layers]]
kind = "landuse"
path = "DLTB.gpkg"
layer = "DLTB"

[[layers]]
kind = "farmland"
path = "YJJBNTTB.shp"         # EPSG:4490 (geographic), UTF-8 .cpg

[[layers]]
kind = "plan"
path = "GHGK.shp"             # GKLX: 城镇开发边界 / 生态保护红线

[[layers]]
kind = "approval"
path = "SP_NYDZY.shp"         # 农用地转用; PZRQ text 20220315

[[layers]]
kind = "approval"
path = "SP_ZS.shp"            # 征收; EPSG:4525 (zone 37 prefix); PZRQ a date field

[[layers]]
kind = "approval"
path = "SP_GD.gpkg"           # 供地; PZRQ text 2022-03-15
layer = "GDXX"
fields = {{ PZWH = "WH", PZRQ = "PZSJ", PZLX = "YDLX" }}

[[layers]]
kind = "approval"
path = "SP_LSYD.shp"          # no PZLX field; PZRQ/YXQZ text 2022/3/15; one unreadable PZRQ
pzlx = "临时用地"

[[layers]]
kind = "approval"
path = "SP_SSNYD.shp"         # 设施农用地备案; no PZLX field; PZRQ a date field
pzlx = "设施农用地"

[[layers]]
kind = "approval"
path = "SP_ZJD.shp"           # 宅基地; GBK without .cpg; mixed-case field names
encoding = "GBK"

[[layers]]
kind = "change"
path = "JCTB_2021.shp"        # QSX/HSX date fields
batch = "2021"

[[layers]]
kind = "change"
path = "JCTB_2022.gdb"        # File Geodatabase
layer = "JCTB"
batch = "2022"

[[layers]]
kind = "change"
path = "JCTB_2023Q2.gpkg"     # mixed-case field names; dates text 20230621
layer = "JCTB"
batch = "2023Q2"

[[layers]]
kind = "field_check"
path = "WYHC_2021.csv"        # UTF-8 with BOM
batch = "2021"

[[layers]]
kind = "field_check"
path = "WYHC_2022.xlsx"
batch = "2022"

[[layers]]
kind = "field_check"
path = "WYHC_BC.csv"          # 补充核查: no batch, applies in every batch; listed last, so it wins
'''
FIELD_LAYERS = [("WYHC_2021.csv", "2021"), ("WYHC_2022.xlsx", "2022"), ("WYHC_BC.csv", None)]


def write_field_checks(ctx: Context, out: Path):
    write_csv(ordered_rows(ctx.field_rows["WYHC_2021.csv"]), out / "WYHC_2021.csv", True, ymd_dash)
    write_xlsx(ordered_rows(ctx.field_rows["WYHC_2022.xlsx"]), out / "WYHC_2022.xlsx", "外业核查成果")
    write_csv(ordered_rows(ctx.field_rows["WYHC_BC.csv"]), out / "WYHC_BC.csv", False, ymd_slash)


EXPECTED_COLS = ["jcbh", "batch", "xzqdm", "xzqmc", "class", "auto_class", "area_m2", "legal_m2",
                 "unchanged_m2", "agri_m2", "illegal_m2", "cultivated_m2", "farmland_m2",
                 "legal_cultivated_m2", "illegal_cultivated_m2", "illegal_farmland_m2", "bnpbj_m2",
                 "wnpbj_m2", "wpxj_m2", "lsyd_cq_m2", "wbjy_m2", "ssny_wba_m2",
                 "illegal_outside_kfbj_m2", "illegal_in_stbh_m2", "outside_county_m2", "township_split",
                 "case", "scenario"]
SUB_CN = {"bnpbj_m2": "本年", "wnpbj_m2": "往年", "wpxj_m2": "未批先建", "lsyd_cq_m2": "临时用地超期",
          "wbjy_m2": "未报即用", "ssny_wba_m2": "未备案设施农用地"}


def fmt_m2(x):
    return "0" if x < 0.05 else (f"{x:.1f}" if x < 20 else f"{x:.0f}")


def write_expected(ctx, rows, out: Path):
    df = pd.DataFrame(rows)[EXPECTED_COLS]
    df = df.sort_values(["batch", "jcbh"]).reset_index(drop=True)
    num = df.select_dtypes("number").columns
    df[num] = df[num].round(2)
    df.to_csv(out / "expected_polygons.csv", index=False, encoding="utf-8-sig")
    desc = {c.case: c.desc for c in ctx.changes if c.case}
    lines = ["| case | JCBH | what it exercises | township (m²) | class (desk) | pieces m² | sub-types m² "
             "| 耕地 m² all / illegal | 基本农田 m² all / illegal |",
             "|---|---|---|---|---|---|---|---|---|"]
    cases = df[df.case != ""].sort_values(["case"])
    for _, r in cases.iterrows():
        cls = r["class"] + ("" if r["class"] == r["auto_class"] else f" ({r['auto_class']})")
        pieces = ", ".join(f"{k[:-3]} {r[k]:.0f}" if r[k] >= 20 else f"{k[:-3]} {r[k]:.1f}"
                           for k in ("legal_m2", "unchanged_m2", "agri_m2", "illegal_m2") if r[k] >= 0.05)
        subs = ", ".join(f"{SUB_CN[k]} {r[k]:.0f}" for k in SUB_CN if r[k] >= 0.5)
        extra = f"; outside county {r.outside_county_m2:.0f}" if r.outside_county_m2 > 0.5 else ""
        extra += f"; in 生态保护红线 {r.illegal_in_stbh_m2:.0f}" if r.illegal_in_stbh_m2 > 0.5 else ""
        lines.append(f"| {r.case} | {r.jcbh} | {desc[r.case]} | {r.township_split or '—'} | {cls} | "
                     f"{r.area_m2:.0f} = {pieces}{extra} | {subs or '—'} | "
                     f"{fmt_m2(r.cultivated_m2)} / {fmt_m2(r.illegal_cultivated_m2)} | "
                     f"{fmt_m2(r.farmland_m2)} / {fmt_m2(r.illegal_farmland_m2)} |")
    (out / "expected_cases.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return df


# --------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------
def build(seed, out: Path):
    ss = np.random.SeedSequence(seed)
    r_land, r_parcels, r_cases, r_ord, r_field = [np.random.default_rng(s) for s in ss.spawn(5)]
    land = Landscape(r_land)
    outline = county_outline(r_land)
    settlements = make_settlements(r_land, outline, land)
    parcels = build_parcels(r_parcels, outline, land, settlements)
    parcels = assign_landuse_attrs(r_parcels, parcels, settlements)
    mark_specials(r_parcels, parcels)
    parcels = finish_landuse(parcels)
    parcels["dlbm_n"] = [norm_dlbm(c) for c in parcels.DLBM]
    parcels, farm_rows = build_farmland(r_parcels, parcels)
    world = World(outline, land, settlements, parcels)
    world.townships = build_townships(parcels)
    world.plan = build_plan(world)

    ctx = Context(world, r_cases)
    d = cases_2022(ctx)
    cases_2021(ctx)
    cases_2023q2(ctx, d["D48"])
    ctx.rng = r_ord
    for batch, cfg in BATCHES.items():
        ordinary(ctx, batch, cfg["n_total"] - sum(c.batch == batch for c in ctx.changes))
    noise_approvals(ctx)
    number_approvals(ctx)
    number_changes(ctx)

    zl = dict(zip(range(len(parcels)), parcels.ZLDWMC))
    for row in farm_rows:
        row["ZLDWMC"] = zl[row.pop("src")]
    for g in ctx.extra_farmland:  # deliberate overlaps (duplicate digitising, 补划 polygon)
        farm_rows.append(dict(DLBM="0102", ZLDWMC="补划", geometry=g))
    for k in r_field.choice(len(farm_rows), size=3, replace=False):  # sloppy digitising: 3 m too wide
        farm_rows[k]["geometry"] = farm_rows[k]["geometry"].buffer(3.0, join_style="mitre")
    oracle = Oracle(world, ctx.approvals, [r["geometry"] for r in farm_rows])

    ctx.rng = r_field
    desk = {(c.batch, c.jcbh): oracle.judge(c, None) for c in ctx.changes}
    routine_field_rows(ctx, desk)
    final_rows = merged_field_rows(ctx, FIELD_LAYERS)
    rows = [oracle.judge(c, final_rows.get((c.batch, c.jcbh))) for c in ctx.changes]

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    write_base(world, farm_rows, out)
    write_approvals(ctx, out)
    write_changes(ctx, out)
    write_field_checks(ctx, out)
    (out / "county.toml").write_text(COUNTY_TOML.format(seed=seed, code=COUNTY_CODE, name=COUNTY_NAME,
                                                        epsg=WORK_EPSG), encoding="utf-8")
    expected = write_expected(ctx, rows, out)
    return world, ctx, expected


def summary(world, ctx, expected, out):
    print(f"parcels {len(world.parcels)}, townships {len(world.townships)}, "
          f"approvals {len(ctx.approvals)}, change polygons {len(ctx.changes)}")
    for b, g in expected.groupby("batch"):
        counts = g["class"].value_counts().to_dict()
        print(f"  batch {b}: {len(g)} polygons {counts}; illegal {g.illegal_m2.sum() * 0.0015:.2f} 亩")
    for p in sorted(out.iterdir()):
        size = sum(f.stat().st_size for f in p.rglob("*")) if p.is_dir() else p.stat().st_size
        print(f"  {p.name:24s} {size:>10,d} B")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "sample"))
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": FILE_DATE + "T00:00:00Z",
                                     "OPENFILEGDB_REPRODUCIBLE_UUID": "YES"})
    t0 = time.time()
    out = Path(args.out)
    world, ctx, expected = build(args.seed, out)
    summary(world, ctx, expected, out)
    print(f"wrote {out} in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
