#!/usr/bin/env python3
"""Generate synthetic counties of any size for the weipian benchmarks.

    python bench/generate_county.py --out bench/out/county --parcels 300000 --changes 3000
    python bench/generate_county.py --out bench/out/province --counties 20 --jobs 2

Everything is synthetic. The same arguments and seed give the same data. One
county is written into ``--out`` itself; with ``--counties K`` each county gets
its own folder ``--out/<code>/`` with its own ``county.toml`` (distinct county
codes; all counties share the working CRS EPSG:4546 and lie side by side).

How a county is built (vectorised numpy/shapely; a 300k-parcel county in ~30 s):

1. **Cells.** Random seeds over a square of ``parcels x 5000 m²`` (four times
   denser in settlements) give Voronoi cells; the cells whose seed lies inside a
   wobbly outline are the county's parcels, so the outline follows parcel edges.
2. **Realistic edges.** Every shared edge is split into 2–6 segments whose
   points are pushed sideways by a hash of the edge's end points, computed once
   per edge in a canonical direction, so both neighbours get bit-identical
   edges: the parcels stay an exact coverage with tens of vertices each.
   A cell left invalid by the push gets straight edges (both sides).
3. **Land classes** follow zones: settlements (county seat, township seats,
   villages) are construction land, the rest is mountain / tableland /
   riverside / plain from a smooth noise field, each with the class mix of
   data/generate_sample.py; KCXS on 0102/0103 by zone.
4. **Townships** (one per ~18 000 parcels) label cells by the nearest of a few
   hundred sub-seeds (ragged borders); a township is the coverage union of its
   parcels, so townships partition the county exactly.
5. **Farmland** (永久基本农田) blocks: most cultivated parcels, dissolved in
   groups of neighbours (about one block per five parcels), plus a few
   duplicated blocks (overlaps count once).
6. **Change polygons** (digitised blobs of 7–14 vertices, 150–15 000 m²) with
   the full mix of rules: approved this year / earlier years (domain.md 本年 /
   往年), partial permits (5–40 % built beyond the permit), approved after the
   image (未批先建), temporary land valid / expired, greenhouses with and
   without filing, farming change, village land (on 0702 parcels), polygons on
   construction land (unchanged), straddlers centred on a township border, and
   about 1 % broken rings (bow-ties, repaired by ST_MakeValid at ingest).
   Approvals of every type (about 2 per 3 change polygons; 征收 twins of
   农转 批次, 宅基地 for small houses, background approvals covering nothing).
7. **Files** follow data/generate_sample.py's conventions: XZQ.shp (GBK, no
   .cpg), DLTB.gpkg, YJJBNTTB.shp in EPSG:4490, GHGK.shp, six approval files
   (SP_ZS.shp in EPSG:4525, SP_GD.gpkg with mapped field names, SP_LSYD.shp and
   SP_SSNYD.shp with ``pzlx`` in county.toml, SP_ZJD.shp GBK), JCTB_2023.gpkg
   and WYHC_2023.csv field checks (~8 % of polygons), and county.toml.
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

WORK_EPSG = 4546          # CGCS2000 3-degree GK, CM 111E, no zone prefix
GEO_EPSG = 4490           # farmland delivery
ZONE_EPSG = 4525          # 征收 delivery, zone-prefixed easting
MEAN_PARCEL_M2 = 5_000.0
PARCELS_PER_TOWNSHIP = 18_000
FILE_DATE = "2024-01-01"
BATCH = "2023"
HSX_DATES = [dt.date(2023, 9, 17), dt.date(2023, 10, 6), dt.date(2023, 10, 25), dt.date(2023, 11, 13)]
QSX_RANGE = (dt.date(2023, 1, 6), dt.date(2023, 3, 28))
APPROVAL_FIRST = dt.date(2015, 1, 1)

# class mix per zone (code, weight), as data/generate_sample.py
MIX = {
    "county": [("0701", 30), ("05H1", 16), ("0702", 8), ("08H1", 7), ("08H2", 10), ("1004", 10),
               ("0601", 6), ("0809", 4), ("0810", 3), ("09", 2), ("1201", 2), ("0508", 2)],
    "town": [("0702", 45), ("0701", 12), ("05H1", 10), ("08H2", 8), ("08H1", 5), ("1004", 10),
             ("0601", 6), ("1201", 4)],
    "village": [("0702", 82), ("08H2", 4), ("1004", 6), ("1201", 4), ("05H1", 2), ("0809", 2)],
    "fringe": [("0102", 38), ("0103", 14), ("0201", 16), ("1202", 8), ("1104", 4), ("0702", 6),
               ("0404", 5), ("0307", 3), ("1201", 2), ("0601", 4), ("1006", 3)],
    "mountain": [("0301", 18), ("0305", 22), ("0307", 5), ("0404", 25), ("0103", 18), ("0201", 6),
                 ("1206", 3), ("1203", 2), ("0602", 1)],
    "plain": [("0102", 58), ("0103", 12), ("0201", 16), ("1202", 2), ("0404", 3), ("1104", 2),
              ("0307", 3), ("1107", 1), ("0601", 1), ("09", 1), ("1109", 1), ("1006", 3), ("1003", 1)],
    "riverside": [("0102", 40), ("0101", 12), ("1104", 8), ("0404", 10), ("0307", 8), ("0201", 6),
                  ("1107", 3), ("1109", 1), ("0103", 6), ("1101", 4)],
    "tableland": [("0103", 52), ("0201", 20), ("0404", 12), ("0305", 6), ("0102", 8), ("1203", 2)],
}
ZONES = list(MIX)
DLMC = {
    "0101": "水田", "0102": "水浇地", "0103": "旱地", "0201": "果园", "0301": "乔木林地",
    "0305": "灌木林地", "0307": "其他林地", "0404": "其他草地", "0508": "物流仓储用地",
    "05H1": "商业服务业设施用地", "0601": "工业用地", "0602": "采矿用地", "0701": "城镇住宅用地",
    "0702": "农村宅基地", "08H1": "机关团体新闻出版用地", "08H2": "科教文卫用地", "0809": "公用设施用地",
    "0810": "公园与绿地", "09": "特殊用地", "1003": "公路用地", "1004": "城镇村道路用地",
    "1006": "农村道路", "1101": "河流水面", "1104": "坑塘水面", "1107": "沟渠", "1109": "水工建筑用地",
    "1201": "空闲地", "1202": "设施农用地", "1203": "田坎", "1206": "裸土地",
}
CULTIVATED = ("0101", "0102", "0103")
CONSTRUCTION_PREFIXES = ("05", "0601", "0602", "0603", "07", "08", "09", "1001", "1002", "1003",
                         "1004", "1005", "1007", "1008", "1009", "1109", "1201")
FARM_SHARE = {"plain": 0.85, "riverside": 0.9, "tableland": 0.7, "mountain": 0.4, "fringe": 0.5}

# change polygon scenarios (weight); see the module docstring
SCENARIOS = [("legal_this", 14), ("legal_prev", 10), ("partial", 8), ("wpxj", 4), ("illegal", 16),
             ("temp_ok", 3), ("temp_expired", 2), ("ssny_ok", 6), ("ssny_no", 3), ("agri", 10),
             ("village", 12), ("unchanged", 6), ("straddler", 6)]
BROKEN_RING_SHARE = 0.01
FIELD_CHECK_SHARE = 0.08
PROJECTS = ["标准化厂房项目", "农产品深加工项目", "新型建材生产线项目", "物流仓储中心项目", "冷链物流园项目",
            "光伏发电项目升压站", "污水处理厂扩建工程", "中学教学楼扩建工程", "卫生院迁建项目", "输变电工程"]
TEMP_PROJECTS = ["公路改线工程取土场", "供热管网施工营地", "高速公路施工便道", "输电线路塔基施工场地", "河道治理堆料场"]
FACILITIES = ["蔬菜大棚", "食用菌大棚", "养殖场", "育苗温室", "果品储藏库", "农机具棚"]
SURNAMES = "王李张刘杨赵陈薛卫宁史孙郭畅柴姚梁贾吉段"
GIVEN = ["建国", "红梅", "志强", "晓燕", "国栋", "丽娟", "海涛", "春生", "玉兰", "文斌"]


def is_construction(code: str) -> bool:
    return code.startswith(CONSTRUCTION_PREFIXES)


@dataclass(frozen=True)
class CountySpec:
    code: str
    name: str
    out: Path
    parcels: int
    changes: int
    approvals: int
    farmland: int
    seed: int
    x0: float  # south-west corner of the county's square, EPSG:4546
    y0: float

    @property
    def side(self) -> float:
        return math.sqrt(self.parcels * MEAN_PARCEL_M2 / 0.80)  # the outline fills ~80 % of the square


# --------------------------------------------------------------------------
# parcels
# --------------------------------------------------------------------------
def outline(rng, spec: CountySpec) -> shapely.Polygon:
    """A star-shaped county outline filling most of the county's square."""
    t = np.linspace(0, 2 * np.pi, 360, endpoint=False)
    r = np.ones_like(t)
    for k in range(2, 14):
        r += rng.uniform(0.02, 0.06) * (2 / k) ** 0.8 * np.sin(k * t + rng.uniform(0, 2 * np.pi))
    xy = np.column_stack([r * np.cos(t), r * np.sin(t)])
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    s = spec.side
    xy = (xy - lo) / (hi - lo) * [s * 0.96, s * 0.96] + [spec.x0 + 0.02 * s, spec.y0 + 0.02 * s]
    return shapely.Polygon(xy)


def settlements(rng, spec: CountySpec, shape) -> dict[str, np.ndarray]:
    """Centres (x, y), radius and kind of the county seat, township seats and villages."""
    n_twp = max(4, round(spec.parcels / PARCELS_PER_TOWNSHIP))
    n_vil = max(8, spec.parcels // 600)
    pts = random_points_in(rng, shape.buffer(-0.03 * spec.side), n_twp + n_vil)
    kind = np.array(["county"] + ["town"] * (n_twp - 1) + ["village"] * n_vil)
    radius = np.where(kind == "county", 1_500.0, np.where(kind == "town", 600.0, 0.0))
    radius[kind == "village"] = rng.uniform(160, 320, n_vil)
    return {"xy": pts, "r": radius, "kind": kind, "n_twp": n_twp}


def random_points_in(rng, shape, n: int) -> np.ndarray:
    x0, y0, x1, y1 = shape.bounds
    shapely.prepare(shape)
    out = []
    if n <= 0:
        return np.empty((0, 2))
    while sum(len(o) for o in out) < n:
        cand = rng.uniform([x0, y0], [x1, y1], size=(max(2 * n, 1000), 2))
        out.append(cand[shapely.contains_xy(shape, cand[:, 0], cand[:, 1])])
    return np.concatenate(out)[:n]


def nearest_scaled(points: np.ndarray, centres: np.ndarray, radius: np.ndarray, reach: float):
    """For each point: index of the centre with the smallest distance / radius, and that ratio (inf if > reach)."""
    discs = shapely.buffer(shapely.points(centres), radius * reach, quad_segs=4)
    tree = shapely.STRtree(discs)
    pi, ci = tree.query(shapely.points(points), predicate="intersects")
    d = np.hypot(points[pi, 0] - centres[ci, 0], points[pi, 1] - centres[ci, 1]) / radius[ci]
    best = np.full(len(points), np.inf)
    which = np.full(len(points), -1)
    order = np.argsort(-d)  # smallest last, so it wins the assignment
    best[pi[order]] = d[order]
    which[pi[order]] = ci[order]
    return which, best


def seeds(rng, spec: CountySpec, shape, st) -> tuple[np.ndarray, np.ndarray]:
    """Cell seeds: exactly ``parcels`` inside the outline (four times denser in
    settlements, which hold ~8 % of them), and seeds of the same density in a
    margin outside, whose cells are dropped; returns (inside, outside)."""
    s, m = spec.side, 0.03 * spec.side
    dense = st["r"] > 0
    centres, radius = st["xy"][dense], st["r"][dense]
    k = rng.multinomial(int(0.08 * spec.parcels), radius ** 2 / (radius ** 2).sum())
    ang = rng.uniform(0, 2 * np.pi, k.sum())
    rad = np.sqrt(rng.uniform(0, 1, k.sum())) * np.repeat(radius, k) * 1.2
    extra = np.repeat(centres, k, axis=0) + np.column_stack([rad * np.cos(ang), rad * np.sin(ang)])
    extra = extra[shapely.contains_xy(shape, extra[:, 0], extra[:, 1])]
    inside = np.vstack([random_points_in(rng, shape, spec.parcels - len(extra)), extra])
    density = spec.parcels / shape.area
    box = shapely.box(spec.x0 - m, spec.y0 - m, spec.x0 + s + m, spec.y0 + s + m)
    ring = box.difference(shape)
    outside = random_points_in(rng, ring, int(density * ring.area))
    return np.round(inside, 3), np.round(outside, 3)


def edge_hash(a: np.ndarray, b: np.ndarray, salt: int) -> np.ndarray:
    """A uint64 hash of canonical edges (a, b as integer millimetres)."""
    h = np.full(len(a), np.uint64(1469598103934665603 + salt), dtype=np.uint64)
    for col in (a[:, 0], a[:, 1], b[:, 0], b[:, 1]):
        h ^= col.astype(np.int64).view(np.uint64)
        h *= np.uint64(1099511628211)
        h ^= h >> np.uint64(29)
    return h


def unit(h: np.ndarray) -> np.ndarray:
    """uint64 hash → float in [-1, 1)."""
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53) * 2 - 1


def wiggle(cells: np.ndarray, seg_m: float, calm: np.ndarray | None = None):
    """Split every edge into segments of about seg_m and push the new points sideways.

    The push is a function of the canonical (sorted) end points only, so both
    cells sharing an edge produce the same points. Edges whose hash is in
    ``calm`` stay straight. Returns (geometries, hash of every edge, cell of every edge).
    """
    xy, ring = shapely.get_coordinates(cells, return_index=True)
    mm = np.round(xy * 1000).astype(np.int64)
    same = ring[:-1] == ring[1:]
    s = np.flatnonzero(same)  # edge k runs from vertex s[k] to s[k] + 1
    p, q = mm[s], mm[s + 1]
    flip = (p[:, 0] > q[:, 0]) | ((p[:, 0] == q[:, 0]) & (p[:, 1] > q[:, 1]))
    a = np.where(flip[:, None], q, p)
    b = np.where(flip[:, None], p, q)
    h = edge_hash(a, b, 0)
    af, bf = a / 1000.0, b / 1000.0
    d = bf - af
    length = np.hypot(d[:, 0], d[:, 1])
    n_in = np.clip(np.floor(length / seg_m + 0.5 * (unit(h) + 1)), 0, 5).astype(np.int64)
    amp = np.minimum(0.07 * length, 12.0)
    if calm is not None:
        quiet = np.isin(h, calm)
        amp[quiet] = 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        nrm = np.column_stack([-d[:, 1], d[:, 0]]) / length[:, None]
    nrm = np.nan_to_num(nrm)

    # output: for every edge its start vertex, then its interior points
    per = 1 + n_in
    e_of = np.repeat(np.arange(len(s)), per)
    k = np.arange(per.sum()) - np.repeat(np.cumsum(per) - per, per)  # 0 = start vertex
    inner = k > 0
    ei = e_of[inner]
    kk = np.where(flip[ei], n_in[ei] + 1 - k[inner], k[inner])  # position counted from the canonical a
    t = kk / (n_in[ei] + 1)
    hk = edge_hash(a[ei], b[ei], 1) ^ (kk.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15))
    off = amp[ei] * np.sin(np.pi * t) * unit(hk)
    t = t + 0.15 / (n_in[ei] + 1) * unit(hk * np.uint64(31))
    pts = af[ei] + t[:, None] * d[ei] + off[:, None] * nrm[ei]
    out = np.empty((len(e_of), 2))
    out[~inner] = xy[s[e_of[~inner]]]
    out[inner] = np.round(pts, 3)
    geoms = shapely.polygons(shapely.linearrings(out, indices=ring[s][e_of]))
    return geoms, h, ring[s]


def build_parcels(rng, spec: CountySpec):
    shape = outline(rng, spec)
    st = settlements(rng, spec, shape)
    pts, outside = seeds(rng, spec, shape, st)
    vor = shapely.voronoi_polygons(shapely.multipoints(np.vstack([pts, outside])), ordered=True)
    cells = shapely.get_parts(vor)[:len(pts)]
    # mm grid: the vertices neighbours share become bit-identical
    cells = shapely.set_coordinates(cells, np.round(shapely.get_coordinates(cells), 3))
    keep = ~shapely.is_empty(cells) & (shapely.get_type_id(cells) == 3)
    cells, pts = cells[keep], pts[keep]
    seg = math.sqrt(MEAN_PARCEL_M2) / 4.0
    geoms, h, cell_of = wiggle(cells, seg)
    bad = ~shapely.is_valid(geoms)
    if bad.any():
        # straighten every edge of an invalid cell, in both cells sharing it; the
        # other edges of the cells redone come out as before (same hash, same points)
        calm = np.unique(h[np.isin(cell_of, np.flatnonzero(bad))])
        redo = np.unique(cell_of[np.isin(h, calm)])
        geoms[redo] = wiggle(cells[redo], seg, calm=calm)[0]
        still = ~shapely.is_valid(geoms)
        geoms[still] = cells[still]
    return shape, st, pts, geoms


def zones_of(rng, spec: CountySpec, pts: np.ndarray, st) -> np.ndarray:
    """Zone of each parcel seed: settlement kind, fringe, or a landscape zone."""
    which, ratio = nearest_scaled(pts, st["xy"], np.maximum(st["r"], 1.0), 1.7)
    zone = np.empty(len(pts), dtype=object)
    x = (pts[:, 0] - spec.x0) / spec.side
    y = (pts[:, 1] - spec.y0) / spec.side
    ph = rng.uniform(0, 2 * np.pi, 8)
    z = (np.sin(2 * np.pi * 1.3 * x + ph[0]) * np.cos(2 * np.pi * 0.9 * y + ph[1])
         + 0.6 * np.sin(2 * np.pi * 2.7 * (x + y) + ph[2]) + 0.3 * np.sin(2 * np.pi * 5.1 * x + ph[3]))
    river = 0.5 + 0.12 * np.sin(2 * np.pi * 1.7 * x + ph[4]) + 0.05 * np.sin(2 * np.pi * 4.3 * x + ph[5])
    hi, lo = np.quantile(z, [0.82, 0.18])
    zone[:] = "plain"
    zone[z < lo] = "tableland"
    zone[np.abs(y - river) < 0.02] = "riverside"
    zone[z > hi] = "mountain"
    near = ratio < 1.7
    zone[near] = "fringe"
    core = ratio < 1.0
    zone[core] = st["kind"][which[core]]
    return zone


def land_classes(rng, zone: np.ndarray) -> np.ndarray:
    code = np.empty(len(zone), dtype=object)
    for z in ZONES:
        m = zone == z
        if m.any():
            codes = [c for c, _ in MIX[z]]
            w = np.array([w for _, w in MIX[z]], float)
            code[m] = np.array(codes, dtype=object)[rng.choice(len(codes), size=m.sum(), p=w / w.sum())]
    return code


def townships(rng, spec: CountySpec, shape, pts, geoms, st):
    """Township label of every parcel (ragged borders) and the township polygons."""
    n_twp = st["n_twp"]
    seats = st["xy"][:n_twp]
    sub = random_points_in(rng, shape.buffer(0.02 * spec.side), 12 * n_twp)
    sub_lab = shapely.STRtree(shapely.points(seats)).query_nearest(shapely.points(sub), all_matches=False)[1]
    sub = np.vstack([sub, seats])
    sub_lab = np.concatenate([sub_lab, np.arange(n_twp)])
    near = shapely.STRtree(shapely.points(sub)).query_nearest(shapely.points(pts), all_matches=False)[1]
    label = sub_lab[near]
    polys = []
    for t in range(n_twp):
        g = shapely.coverage_union_all(geoms[label == t])
        if not g.is_valid:
            g = shapely.union_all(geoms[label == t])
        polys.append(g)
    codes = [f"{spec.code}{100 + t:03d}" if t < n_twp * 0.6 else f"{spec.code}{200 + t:03d}" for t in range(n_twp)]
    names = [f"第{t + 1}{'镇' if t < n_twp * 0.6 else '乡'}" for t in range(n_twp)]
    return label, gpd.GeoDataFrame({"XZQDM": codes, "XZQMC": names}, geometry=polys, crs=WORK_EPSG)


def farmland_blocks(rng, spec: CountySpec, pts, geoms, code, zone):
    """Most cultivated parcels, dissolved with their neighbours into blocks, plus a few duplicates."""
    cult = np.isin(code, CULTIVATED)
    share = np.array([FARM_SHARE.get(z, 0.6) for z in zone])
    chosen = np.flatnonzero(cult & (rng.random(len(code)) < share))
    if not len(chosen):  # a tiny county without cultivated land still gets a farmland layer
        chosen = np.array([int(np.argmax(cult))])
    n_seeds = max(1, min(spec.farmland, len(chosen)))
    block_seeds = pts[rng.choice(chosen, size=n_seeds, replace=False)]
    grp = shapely.STRtree(shapely.points(block_seeds)).query_nearest(
        shapely.points(pts[chosen]), all_matches=False)[1]
    order = np.argsort(grp, kind="stable")
    grp, chosen = grp[order], chosen[order]
    starts = np.flatnonzero(np.r_[True, grp[1:] != grp[:-1]])
    ends = np.r_[starts[1:], len(grp)]
    out = []
    for s0, s1 in zip(starts, ends):
        if s1 - s0 == 1:
            out.append(geoms[chosen[s0]])
        else:
            out.extend(shapely.get_parts(shapely.coverage_union_all(geoms[chosen[s0:s1]])))
    out = np.array(out, dtype=object)
    out = out[shapely.get_type_id(out) == 3]
    dup = rng.choice(len(out), size=max(1, len(out) // 500), replace=False)
    out = np.concatenate([out, shapely.buffer(out[dup], 2.0, join_style="mitre")])
    return out, int(len(chosen))


def plan_zones(rng, spec: CountySpec, shape, st, zone_of_pts, pts) -> gpd.GeoDataFrame:
    towns = st["kind"] != "village"
    ubg = shapely.union_all(shapely.buffer(shapely.points(st["xy"][towns]), st["r"][towns] * 1.3, quad_segs=16))
    ubg = ubg.intersection(shape)
    mountain = pts[zone_of_pts == "mountain"]
    pick = mountain[rng.choice(len(mountain), size=min(len(mountain), 12), replace=False)] if len(mountain) else []
    eco = shapely.union_all(shapely.buffer(shapely.points(pick), 0.05 * spec.side, quad_segs=16)) if len(pick) else None
    rows = [("城镇开发边界", ubg)]
    if eco is not None and not eco.is_empty:
        rows.append(("生态保护红线", eco.intersection(shape.buffer(-150)).difference(ubg)))
    return gpd.GeoDataFrame({"GKLX": [r[0] for r in rows], "MC": [f"{spec.name}{r[0]}" for r in rows]},
                            geometry=[r[1] for r in rows], crs=WORK_EPSG)


# --------------------------------------------------------------------------
# change polygons and approvals
# --------------------------------------------------------------------------
def blobs(rng, centres: np.ndarray, areas: np.ndarray) -> np.ndarray:
    """Digitised footprints: star-shaped polygons of 7–14 vertices with the given areas (approx.)."""
    n = len(centres)
    nv = rng.integers(7, 15, n)
    idx = np.repeat(np.arange(n), nv)
    k = np.arange(nv.sum()) - np.repeat(np.cumsum(nv) - nv, nv)
    base = 2 * np.pi * k / nv[idx]
    ang = base + rng.uniform(-0.3, 0.3, len(idx)) * (2 * np.pi / nv[idx])
    r = 1 + rng.uniform(-0.12, 0.12, len(idx))
    aspect = rng.uniform(1.0, 2.2, n)
    rot = rng.uniform(0, np.pi, n)
    sx, sy = np.sqrt(aspect), 1 / np.sqrt(aspect)
    lx, ly = r * np.cos(ang) * sx[idx], r * np.sin(ang) * sy[idx]
    scale = np.sqrt(areas / np.pi)[idx]
    x = centres[idx, 0] + scale * (lx * np.cos(rot[idx]) - ly * np.sin(rot[idx]))
    y = centres[idx, 1] + scale * (lx * np.sin(rot[idx]) + ly * np.cos(rot[idx]))
    return shapely.polygons(shapely.linearrings(np.round(np.column_stack([x, y]), 3), indices=idx))


def bowtie(g) -> shapely.Polygon:
    """Swap two neighbouring vertices: a self-intersecting ring, as sloppy digitising gives."""
    c = np.asarray(g.exterior.coords)[:-1].copy()
    c[[1, 2]] = c[[2, 1]]
    return shapely.Polygon(c)


def rand_dates(rng, lo: dt.date, hi: np.ndarray | dt.date, n: int) -> list[dt.date]:
    his = np.broadcast_to(np.array(hi, dtype=object), (n,))
    days = np.array([(h - lo).days for h in his])
    off = (rng.random(n) * (np.maximum(days, 0) + 1)).astype(int)
    return [lo + dt.timedelta(days=int(o)) for o in off]


def cut_part(rng, g, keep_share: float):
    """The part of g on one side of a random straight line, about keep_share of its area."""
    x0, y0, x1, y1 = g.bounds
    a = rng.uniform(0, np.pi)
    u = np.array([math.cos(a), math.sin(a)])
    c = np.asarray(g.exterior.coords)
    proj = c @ u
    cut = np.quantile(proj, keep_share)
    big = 4 * max(x1 - x0, y1 - y0) + 10
    o = u * cut
    nrm = np.array([-u[1], u[0]])
    half = shapely.Polygon([o + nrm * big, o + nrm * big - u * big, o - nrm * big - u * big, o - nrm * big])
    part = g.intersection(half)
    return part if part.geom_type == "Polygon" and part.area > 0 else g


def changes_and_approvals(rng, spec: CountySpec, shape, geoms, code, label, twp):
    n = spec.changes
    names = [s for s, _ in SCENARIOS]
    w = np.array([w for _, w in SCENARIOS], float)
    scen = np.array(names, dtype=object)[rng.choice(len(names), size=n, p=w / w.sum())]
    areas = np.exp(rng.uniform(math.log(200), math.log(12_000), n))
    small = rng.random(n) < 0.2
    areas[small] = rng.uniform(150, 380, small.sum())
    centres = random_points_in(rng, shape.buffer(-300), n)
    rep = shapely.get_coordinates(shapely.point_on_surface(geoms))
    constr = np.array([is_construction(c) for c in code])
    cult = np.isin(code, CULTIVATED)
    for sc, pool in (("village", np.flatnonzero(code == "0702")), ("unchanged", np.flatnonzero(constr)),
                     ("ssny_ok", np.flatnonzero(cult)), ("ssny_no", np.flatnonzero(cult)),
                     ("agri", np.flatnonzero(~constr))):
        m = np.flatnonzero(scen == sc)
        if len(m) and len(pool):
            centres[m] = rep[rng.choice(pool, size=len(m))]
    m = np.flatnonzero(scen == "straddler")
    if len(m):
        border = shapely.union_all([g.boundary for g in twp.geometry]).difference(shape.exterior.buffer(200))
        length = border.length
        if length > 0:
            centres[m] = shapely.get_coordinates(shapely.line_interpolate_point(border, rng.uniform(0, length, len(m))))
    areas[np.isin(scen, ["village", "unchanged"])] = rng.uniform(200, 2500, np.isin(scen, ["village", "unchanged"]).sum())
    shapes = blobs(rng, centres, areas)

    hsx = np.array(HSX_DATES, dtype=object)[rng.integers(0, len(HSX_DATES), n)]
    qsx = rand_dates(rng, QSX_RANGE[0], QSX_RANGE[1], n)
    bhlx = np.full(n, "建设用地", dtype=object)
    bhlx[np.isin(scen, ["ssny_ok", "ssny_no"])] = "设施农用地"
    bhlx[scen == "agri"] = "农用地"
    tuitu = np.isin(scen, ["illegal", "legal_this", "legal_prev", "wpxj", "temp_ok", "temp_expired"]) & (rng.random(n) < 0.25)
    bhlx[tuitu | np.isin(scen, ["temp_ok", "temp_expired"])] = "推填土"

    appr = []  # (kind, geom, pzrq, yxqz, xmmc)

    def add(kind, g, pzrq, yxqz=None, xmmc=""):
        appr.append((kind, g, pzrq, yxqz, xmmc))

    straddle_kind = rng.choice(["legal_this", "illegal", "partial"], size=n)
    for i in range(n):
        sc = scen[i] if scen[i] != "straddler" else straddle_kind[i]
        g, h = shapes[i], hsx[i]
        y = h.year
        margin = float(rng.uniform(3, 25))
        cover = g.buffer(margin, join_style="mitre")
        if sc in ("legal_this", "legal_prev", "partial", "wpxj"):
            if sc == "legal_this":
                date = rand_dates(rng, dt.date(y, 1, 8), h - dt.timedelta(days=20), 1)[0]
            elif sc == "wpxj":
                date = rand_dates(rng, h + dt.timedelta(days=25), h + dt.timedelta(days=200), 1)[0]
            else:
                date = rand_dates(rng, APPROVAL_FIRST, dt.date(y - 1, 12, 20), 1)[0]
            if sc == "partial":
                cover = cut_part(rng, g.buffer(1.0, join_style="mitre"), float(rng.uniform(0.6, 0.95)))
            if small[i]:
                add("宅基地", g.buffer(2.0, join_style="mitre") if sc != "partial" else cover, date)
            else:
                kind = ("农用地转用", "供地", "征收")[int(rng.choice(3, p=[0.55, 0.30, 0.15]))]
                add(kind, cover, date, xmmc=PROJECTS[int(rng.integers(len(PROJECTS)))] if kind == "供地" else "批次")
                if kind == "农用地转用" and rng.random() < 0.7:
                    add("征收", cover, date, xmmc="批次")
        elif sc == "temp_ok":
            start = rand_dates(rng, dt.date(y - 2, 1, 1), h - dt.timedelta(days=30), 1)[0]
            add("临时用地", cover, start, max(start + dt.timedelta(days=730), h + dt.timedelta(days=30)),
                TEMP_PROJECTS[int(rng.integers(len(TEMP_PROJECTS)))])
        elif sc == "temp_expired":
            end = rand_dates(rng, h - dt.timedelta(days=300), h - dt.timedelta(days=20), 1)[0]
            add("临时用地", cover, end - dt.timedelta(days=700), end, TEMP_PROJECTS[int(rng.integers(len(TEMP_PROJECTS)))])
        elif sc == "ssny_ok":
            date = rand_dates(rng, dt.date(y - 3, 1, 1), h - dt.timedelta(days=10), 1)[0]
            add("设施农用地", cover, date, xmmc=FACILITIES[int(rng.integers(len(FACILITIES)))])
    # background approvals covering no change polygon in particular
    n_noise = max(0, spec.approvals - len(appr))
    kinds = np.array(["农用地转用", "供地", "临时用地", "设施农用地", "宅基地"], dtype=object)
    nk = kinds[rng.choice(len(kinds), size=n_noise, p=[0.22, 0.13, 0.06, 0.1, 0.49])]
    na = np.where(nk == "宅基地", rng.uniform(150, 350, n_noise), np.exp(rng.uniform(math.log(1500), math.log(40000), n_noise)))
    ng = blobs(rng, random_points_in(rng, shape.buffer(-200), n_noise), na)
    nd = rand_dates(rng, APPROVAL_FIRST, dt.date(2023, 11, 30), n_noise)
    for kind, g, d in zip(nk, ng, nd):
        if kind == "临时用地":
            add(kind, g, d, d + dt.timedelta(days=int(rng.choice([365, 730]))), TEMP_PROJECTS[0])
        else:
            add(kind, g, d, xmmc=FACILITIES[0] if kind == "设施农用地" else "")

    broken = rng.random(n) < BROKEN_RING_SHARE
    if n >= 20 and not broken.any():  # the mix always holds at least one
        broken[int(rng.integers(n))] = True
    final = np.array([bowtie(g) if b else g for g, b in zip(shapes, broken)], dtype=object)
    lab_tree = shapely.STRtree(geoms)
    hit = lab_tree.query_nearest(shapely.centroid(shapes), all_matches=False)[1]
    xzq = np.array(twp.XZQDM.values)[label[hit]]
    order = np.lexsort((np.round(centres[:, 0]), -np.round(centres[:, 1]), xzq))
    jcbh = np.empty(n, dtype=object)
    jcbh[order] = [f"{spec.code}{BATCH}{k + 1:05d}" for k in range(n)]
    changes = gpd.GeoDataFrame({
        "JCBH": jcbh, "XZQDM": xzq, "QSX": [d.strftime("%Y%m%d") for d in qsx],
        "HSX": [d.strftime("%Y%m%d") for d in hsx], "JCMJ": np.round(shapely.area(shapes), 2),
        "BHLX": bhlx, "scenario": scen,
    }, geometry=final, crs=WORK_EPSG).iloc[order].reset_index(drop=True)
    return changes, appr, int(broken.sum())


def field_checks(rng, changes: gpd.GeoDataFrame) -> list[list[str]]:
    """~8 % of polygons: confirmations, 否 (unchanged) and PDLX overrides."""
    n = len(changes)
    pick = np.flatnonzero(rng.random(n) < FIELD_CHECK_SHARE)
    expected = {"legal_this": "合法用地", "legal_prev": "合法用地", "partial": "违法用地", "wpxj": "违法用地",
                "illegal": "违法用地", "temp_ok": "合法用地", "temp_expired": "违法用地", "ssny_ok": "农业结构调整",
                "ssny_no": "违法用地", "agri": "农业结构调整", "village": "实地未变化", "unchanged": "实地未变化",
                "straddler": "违法用地"}
    other = ["合法用地", "实地未变化", "农业结构调整", "违法用地"]
    rows = []
    for i in pick:
        r = rng.random()
        hsx = dt.datetime.strptime(changes.HSX.iloc[i], "%Y%m%d").date()
        hcrq = (hsx + dt.timedelta(days=int(rng.integers(15, 70)))).isoformat()
        hcr = SURNAMES[int(rng.integers(len(SURNAMES)))] + GIVEN[int(rng.integers(len(GIVEN)))]
        if r < 0.35:
            rows.append([changes.JCBH.iloc[i], "否", "", hcr, hcrq, "实地未变化"])
        elif r < 0.6:
            rows.append([changes.JCBH.iloc[i], "是", other[int(rng.integers(4))], hcr, hcrq, "外业认定"])
        else:
            rows.append([changes.JCBH.iloc[i], "是", expected[changes.scenario.iloc[i]], hcr, hcrq, ""])
    return rows


# --------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------
def write_shp(gdf, path: Path, encoding="UTF-8", keep_cpg=True):
    pyogrio.write_dataframe(gdf, path, encoding=encoding,
                            layer_options={"DBF_DATE_LAST_UPDATE": FILE_DATE, "RESIZE": "YES"})
    if not keep_cpg:
        path.with_suffix(".cpg").unlink(missing_ok=True)


def write_gpkg(gdf, path: Path, layer: str):
    pyogrio.write_dataframe(gdf, path, layer=layer, driver="GPKG")


def write_approvals(rng, spec: CountySpec, appr, out: Path) -> dict[str, int]:
    df = pd.DataFrame(appr, columns=["kind", "geometry", "pzrq", "yxqz", "xmmc"])
    df["year"] = [d.year for d in df.pzrq]
    df = df.sort_values(["kind", "pzrq"], kind="stable").reset_index(drop=True)
    df["n"] = df.groupby(["kind", "year"]).cumcount() + 1
    fmt = {"农用地转用": "晋政地字〔{y}〕{n}号", "征收": "晋政地字〔{y}〕{n}号", "供地": "自然资供〔{y}〕{n}号",
           "临时用地": "自然资临〔{y}〕{n}号", "设施农用地": "设农备〔{y}〕{n:02d}号", "宅基地": "宅批〔{y}〕{n}号"}
    df["PZWH"] = [fmt[k].format(y=y, n=n) for k, y, n in zip(df.kind, df.year, df.n)]
    df["XMMC"] = [f"{spec.name}{y}年度第{n}批次建设用地" if x == "批次" else (x or "") for x, y, n in zip(df.xmmc, df.year, df.n)]
    df.loc[df.kind == "宅基地", "XMMC"] = [f"{SURNAMES[i % len(SURNAMES)]}{GIVEN[i % len(GIVEN)]}宅基地"
                                         for i in range(int((df.kind == "宅基地").sum()))]
    g = gpd.GeoDataFrame(df, geometry="geometry", crs=WORK_EPSG)
    g["MJ"] = np.round(g.geometry.area, 2)
    ymd = lambda s: [d.strftime("%Y%m%d") if d else "" for d in s]
    counts = {}

    def part(kind):
        sel = g[g.kind == kind].reset_index(drop=True)
        counts[kind] = len(sel)
        return sel

    x = part("农用地转用")
    write_shp(gpd.GeoDataFrame({"PZWH": x.PZWH, "PZRQ": ymd(x.pzrq), "PZLX": x.kind, "XMMC": x.XMMC, "PZMJ": x.MJ},
                               geometry=x.geometry, crs=WORK_EPSG), out / "SP_NYDZY.shp")
    x = part("征收")
    write_shp(gpd.GeoDataFrame({"PZWH": x.PZWH, "PZRQ": ymd(x.pzrq), "PZLX": x.kind, "XMMC": x.XMMC, "PZMJ": x.MJ},
                               geometry=x.geometry, crs=WORK_EPSG).to_crs(ZONE_EPSG), out / "SP_ZS.shp")
    x = part("供地")
    write_gpkg(gpd.GeoDataFrame({"WH": x.PZWH, "PZSJ": [d.isoformat() for d in x.pzrq], "YDLX": x.kind,
                                 "XMMC": x.XMMC, "GDMJ": x.MJ}, geometry=x.geometry, crs=WORK_EPSG),
               out / "SP_GD.gpkg", "GDXX")
    x = part("临时用地")
    slash = lambda s: [f"{d.year}/{d.month}/{d.day}" if d else "" for d in s]
    write_shp(gpd.GeoDataFrame({"PZWH": x.PZWH, "PZRQ": slash(x.pzrq), "YXQZ": slash(x.yxqz), "XMMC": x.XMMC,
                                "PZMJ": x.MJ}, geometry=x.geometry, crs=WORK_EPSG), out / "SP_LSYD.shp")
    x = part("设施农用地")
    write_shp(gpd.GeoDataFrame({"PZWH": x.PZWH, "PZRQ": ymd(x.pzrq), "XMMC": x.XMMC, "YDMJ": x.MJ},
                               geometry=x.geometry, crs=WORK_EPSG), out / "SP_SSNYD.shp")
    x = part("宅基地")
    write_shp(gpd.GeoDataFrame({"Pzwh": x.PZWH, "pzrq": ymd(x.pzrq), "PzLx": x.kind, "Xmmc": x.XMMC, "Pzmj": x.MJ},
                               geometry=x.geometry, crs=WORK_EPSG), out / "SP_ZJD.shp", encoding="GBK", keep_cpg=False)
    return counts


COUNTY_TOML = '''\
# Synthetic benchmark county (bench/generate_county.py); not a real county.
# {parcels} parcels, {changes} change polygons. Regenerate with:
#   python bench/generate_county.py {args}

[county]
code = "{code}"
name = "{name}"
crs  = "EPSG:{epsg}"

[settings]
min_part_m2 = 10

[[layers]]
kind = "township"
path = "XZQ.shp"
encoding = "GBK"

[[layers]]
kind = "landuse"
path = "DLTB.gpkg"
layer = "DLTB"

[[layers]]
kind = "farmland"
path = "YJJBNTTB.shp"         # EPSG:4490

[[layers]]
kind = "plan"
path = "GHGK.shp"

[[layers]]
kind = "approval"
path = "SP_NYDZY.shp"

[[layers]]
kind = "approval"
path = "SP_ZS.shp"            # EPSG:4525

[[layers]]
kind = "approval"
path = "SP_GD.gpkg"
layer = "GDXX"
fields = {{ PZWH = "WH", PZRQ = "PZSJ", PZLX = "YDLX" }}

[[layers]]
kind = "approval"
path = "SP_LSYD.shp"
pzlx = "临时用地"

[[layers]]
kind = "approval"
path = "SP_SSNYD.shp"
pzlx = "设施农用地"

[[layers]]
kind = "approval"
path = "SP_ZJD.shp"
encoding = "GBK"

[[layers]]
kind = "change"
path = "JCTB_{batch}.gpkg"
layer = "JCTB"
batch = "{batch}"

[[layers]]
kind = "field_check"
path = "WYHC_{batch}.csv"
batch = "{batch}"
'''


def build_county(spec: CountySpec, args_text: str = "") -> dict:
    t0 = time.time()
    rng = np.random.default_rng(spec.seed)
    shape, st, pts, geoms = build_parcels(rng, spec)
    zone = zones_of(rng, spec, pts, st)
    code = land_classes(rng, zone)
    label, twp = townships(rng, spec, shape, pts, geoms, st)
    farm, n_farm_parcels = farmland_blocks(rng, spec, pts, geoms, code, zone)
    plan = plan_zones(rng, spec, shape, st, zone, pts)
    changes, appr, n_broken = changes_and_approvals(rng, spec, shape, geoms, code, label, twp)
    checks = field_checks(rng, changes)
    t_build = time.time() - t0

    out = spec.out
    out.mkdir(parents=True, exist_ok=True)
    for p in out.iterdir():
        if p.is_file():
            p.unlink()
    area = shapely.area(geoms)
    kcxs = np.zeros(len(code))
    c102, c103 = code == "0102", code == "0103"
    kcxs[c102] = rng.choice([0.0, 0.02, 0.03], size=c102.sum(), p=[0.5, 0.35, 0.15])
    kcxs[c103] = np.where(zone[c103] == "mountain", 0.12, np.where(zone[c103] == "tableland", 0.06, 0.03))
    scale = 1 / (1 + ((pts[:, 0] - 500_000) / 6_371_000) ** 2 / 2) ** 2  # GK area scale, near enough for TBMJ
    tbmj = np.round(area * scale, 2)
    kcmj = np.round(tbmj * kcxs, 2)
    twp_code = np.array(twp.XZQDM.values)[label]
    order = np.lexsort((pts[:, 0], -pts[:, 1], label))
    dltb = gpd.GeoDataFrame({
        "BSM": [f"{spec.code}2110{i + 1:08d}" for i in range(len(order))],
        "DLBM": code[order], "DLMC": [DLMC[c] for c in code[order]],
        "ZLDWDM": [f"{t}2010000000" for t in twp_code[order]],
        "TBMJ": tbmj[order], "KCXS": kcxs[order], "KCMJ": kcmj[order], "TBDLMJ": np.round(tbmj - kcmj, 2)[order],
    }, geometry=geoms[order], crs=WORK_EPSG)
    write_gpkg(dltb, out / "DLTB.gpkg", "DLTB")
    tw = twp.copy()
    tw.insert(0, "BSM", [f"{i + 1:08d}" for i in range(len(tw))])
    write_shp(tw, out / "XZQ.shp", encoding="GBK", keep_cpg=False)
    fl = gpd.GeoDataFrame({"BSM": [f"{spec.code}1500{i + 1:07d}" for i in range(len(farm))],
                           "DLBM": ["0102"] * len(farm)}, geometry=farm, crs=WORK_EPSG)
    write_shp(fl.to_crs(GEO_EPSG), out / "YJJBNTTB.shp")
    write_shp(plan, out / "GHGK.shp")
    n_appr = write_approvals(rng, spec, appr, out)
    write_gpkg(changes.drop(columns=["scenario"]), out / f"JCTB_{BATCH}.gpkg", "JCTB")
    with open(out / f"WYHC_{BATCH}.csv", "w", encoding="utf-8-sig", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["JCBH", "SFBH", "PDLX", "HCR", "HCRQ", "BZ"])
        w.writerows(checks)
    (out / "county.toml").write_text(COUNTY_TOML.format(
        parcels=len(geoms), changes=len(changes), args=args_text, code=spec.code, name=spec.name,
        epsg=WORK_EPSG, batch=BATCH), encoding="utf-8")
    summary = {
        "code": spec.code, "name": spec.name, "folder": str(out), "parcels": int(len(geoms)),
        "vertices_per_parcel": round(float(shapely.get_num_coordinates(geoms).mean()), 1),
        "townships": int(len(twp)), "farmland": int(len(fl)), "farmland_parcels": n_farm_parcels,
        "approvals": int(sum(n_appr.values())), "approvals_by_type": n_appr, "changes": int(len(changes)),
        "broken_rings": n_broken, "field_checks": len(checks),
        "scenarios": {k: int(v) for k, v in changes.scenario.value_counts().items()},
        "construction_share": round(float(np.mean([is_construction(c) for c in code])), 3),
        "seconds_build": round(t_build, 1), "seconds_total": round(time.time() - t0, 1),
    }
    (out / "generated.json").write_text(json.dumps(summary, ensure_ascii=False, indent=1), encoding="utf-8")
    return summary


def county_codes(k: int) -> list[tuple[str, str]]:
    """Distinct, plausible county codes and names (province 14, prefectures 08–11)."""
    out = []
    for i in range(k):
        pref, num = 8 + i // 12, 21 + i % 12
        out.append((f"14{pref:02d}{num:02d}", f"基准{i + 1:02d}县"))
    return out


def specs(args) -> list[CountySpec]:
    approvals = args.approvals if args.approvals is not None else round(args.changes * 2 / 3)
    farmland = args.farmland if args.farmland is not None else args.parcels // 5
    side = CountySpec("", "", Path(), args.parcels, 0, 0, 0, 0, 0, 0).side
    if args.counties == 1:
        code, name = (args.code, args.name)
        return [CountySpec(code, name, Path(args.out), args.parcels, args.changes, approvals, farmland,
                           args.seed, 500_000 - side / 2, 3_940_000 - side / 2)]
    cols = math.ceil(math.sqrt(args.counties))
    out = []
    for i, (code, name) in enumerate(county_codes(args.counties)):
        r, c = divmod(i, cols)
        x0 = 500_000 - cols * (side + 2_000) / 2 + c * (side + 2_000)
        y0 = 3_900_000 + r * (side + 2_000)
        out.append(CountySpec(code, name, Path(args.out) / code, args.parcels, args.changes, approvals,
                              farmland, args.seed * 1000 + i, x0, y0))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output folder (a county; or the province, one folder per county)")
    ap.add_argument("--parcels", type=int, default=300_000, help="DLTB parcels per county (default 300000)")
    ap.add_argument("--changes", type=int, default=3_000, help="change polygons per county (default 3000)")
    ap.add_argument("--approvals", type=int, help="approvals per county (default 2/3 of --changes)")
    ap.add_argument("--farmland", type=int, help="target farmland blocks per county (default parcels/5)")
    ap.add_argument("--counties", type=int, default=1, help="counties (a province: each in --out/<code>/)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="counties generated in parallel")
    ap.add_argument("--code", default="140899", help="county code of a single county")
    ap.add_argument("--name", default="基准县", help="county name of a single county")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    args_text = " ".join(argv if argv is not None else sys.argv[1:])
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": FILE_DATE + "T00:00:00Z"})
    t0 = time.time()
    todo = specs(args)
    if len(todo) == 1 or args.jobs <= 1:
        results = [build_county(s, args_text) for s in todo]
    else:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            results = list(pool.map(build_county, todo, [args_text] * len(todo)))
    for r in results:
        print(f"{r['code']} {r['name']}: {r['parcels']} parcels ({r['vertices_per_parcel']} vertices each), "
              f"{r['townships']} townships, {r['farmland']} farmland, {r['approvals']} approvals, "
              f"{r['changes']} change polygons ({r['broken_rings']} broken rings), {r['field_checks']} field checks "
              f"→ {r['folder']} in {r['seconds_total']} s")
    if len(todo) > 1:
        (Path(args.out) / "province.json").write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"done in {time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
