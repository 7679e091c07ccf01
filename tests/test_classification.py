"""Known answers for the desk judgement, field-check overrides and townships.

Black box: each case builds its polygon and the layers around it as files, the
real CLI runs (``weipian run county.toml --batch 2022 --out DIR``), and the rows of
polygons.csv / township_stats.csv are compared with answers known by construction
(see tests/builders.py). Areas are ellipsoidal m², compared to 0.01 m².

Most cases share one county (``main``): every case sits in its own 300 m cell, far
from the others, inside one township, so they cannot interact and one pipeline run
serves them all. Townships get their own county; settings and quarantine cases
their own runs.

Every polygon is drawn in EPSG:4546; P is a 100 m square unless the case says
otherwise; "left half" is ``sub(P, 0, 0.5)``. HSX is 2022-06-30 throughout (Y = 2022).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import psycopg
import pytest
import shapely
from shapely.geometry import Polygon

from builders import (
    CLASSES, NUMERIC_COLUMNS, TOL_M2, CountyBuilder, Expected, Outputs, assert_row, geodesic_area_m2,
    assert_township_row, expected_township_stats, num, rect, run_county, sub, union,
)

BATCH = "2022"
HSX = "2022-06-30"
TOWN = "140824100"
TOWN_NAME = "城关镇"


def grow(p, d: float):
    """Rectangle p enlarged by d metres on every side (approvals reach beyond P)."""
    x0, y0, x1, y1 = p.bounds
    return rect(x0 - d, y0 - d, x1 + d, y1 + d)


# ====================================================================== main county
#
# A case is a function (county, P, jcbh) -> Expected: it adds what it needs around
# its polygon P and states the answer.

Case = Callable[[CountyBuilder, object, str], Expected]
CASES: dict[str, Case] = {}


def case(fn: Case) -> Case:
    CASES[fn.__name__] = fn
    return fn


def E(jcbh, p, cls, auto, pieces, subtypes=None) -> Expected:
    return Expected(jcbh, BATCH, p, cls, auto, pieces, subtypes or {}, xzqdm=TOWN)


def halves(p):
    return sub(p, 0, 0.5), sub(p, 0.5, 1)


# ---- 建设用地 against approvals (V, L, sub-types)


@case
def half_permit_this_year(c, p, j):
    """A permit of 2022 covers the left half (and land beyond P): left legal 本年批准本年建设,
    right illegal 未报即用; 旱地 under all of P, 永久基本农田 over the top half."""
    x0, y0, x1, y1 = p.bounds
    c.add_landuse("0103", grow(p, 10), 0.0, "旱地")
    c.add_farmland(rect(x0 - 10, (y0 + y1) / 2, x1 + 10, y1 + 10))
    c.add_approval("农用地转用", "2022-03-15", rect(x0 - 50, y0 - 20, (x0 + x1) / 2, y1 + 20))
    c.add_change(BATCH, j, p, HSX, "建设用地")
    left, right = halves(p)
    return E(j, p, "illegal", "illegal", {"legal": left, "illegal": right},
             {"bnpbj": left, "wbjy": right})


@case
def earlier_year_permit(c, p, j):
    """A permit of 2021-12-31 covers P: all legal, 往年批准本年建设."""
    c.add_approval("农用地转用", "2021-12-31", grow(p, 5))
    c.add_change(BATCH, j, p, HSX, "建设用地")
    return E(j, p, "legal", "legal", {"legal": p}, {"wnpbj": p})


@case
def earlier_and_this_year_permits(c, p, j):
    """征收 of 2020 over all of P, 供地 of 2022 over the top 30 %: top 本年, rest 往年."""
    x0, y0, x1, y1 = p.bounds
    c.add_approval("征收", "2020-05-01", grow(p, 5))
    c.add_approval("供地", "2022-01-20", rect(x0 - 5, y0 + 70, x1 + 5, y1 + 5))
    c.add_change(BATCH, j, p, HSX, "建设用地")
    return E(j, p, "legal", "legal", {"legal": p},
             {"bnpbj": sub(p, 0, 1, 0.7, 1), "wnpbj": sub(p, 0, 1, 0, 0.7)})


@case
def permit_on_hsx(c, p, j):
    """PZRQ = HSX counts as approved (Decision 4)."""
    c.add_approval("农用地转用", HSX, grow(p, 5))
    c.add_change(BATCH, j, p, HSX, "建设用地")
    return E(j, p, "legal", "legal", {"legal": p}, {"bnpbj": p})


@case
def permit_day_after_hsx(c, p, j):
    """PZRQ = HSX + 1 day: not approved when seen, 未批先建."""
    c.add_approval("农用地转用", "2022-07-01", grow(p, 5))
    c.add_change(BATCH, j, p, HSX, "建设用地")
    return E(j, p, "illegal", "illegal", {"illegal": p}, {"wpxj": p})


@case
def late_approval_half(c, p, j):
    """An approval dated after HSX over the left half: left 未批先建, right 未报即用."""
    x0, y0, x1, y1 = p.bounds
    c.add_approval("农用地转用", "2022-09-01", rect(x0 - 20, y0 - 20, (x0 + x1) / 2, y1 + 20))
    c.add_change(BATCH, j, p, HSX, "建设用地")
    left, right = halves(p)
    return E(j, p, "illegal", "illegal", {"illegal": p}, {"wpxj": left, "wbjy": right})


@case
def temp_expired(c, p, j):
    """临时用地 with YXQZ one day before HSX: 临时用地超期."""
    c.add_approval("临时用地", "2021-03-01", grow(p, 5), yxqz="2022-06-29")
    c.add_change(BATCH, j, p, HSX, "建设用地")
    return E(j, p, "illegal", "illegal", {"illegal": p}, {"lsyd_cq": p})


@case
def temp_expired_and_late_approval(c, p, j):
    """Expired 临时用地 over P, a late 征收 over the left half: 未批先建 comes first."""
    x0, y0, x1, y1 = p.bounds
    c.add_approval("临时用地", "2021-03-01", grow(p, 5), yxqz="2022-05-31")
    c.add_approval("征收", "2022-10-01", rect(x0 - 20, y0 - 20, (x0 + x1) / 2, y1 + 20))
    c.add_change(BATCH, j, p, HSX, "建设用地")
    left, right = halves(p)
    return E(j, p, "illegal", "illegal", {"illegal": p}, {"wpxj": left, "lsyd_cq": right})


@case
def temp_valid_on_hsx(c, p, j):
    """临时用地 with YXQZ = HSX is still valid (Decision 4); approved 2021: 往年."""
    c.add_approval("临时用地", "2021-03-01", grow(p, 5), yxqz=HSX)
    c.add_change(BATCH, j, p, HSX, "建设用地")
    return E(j, p, "legal", "legal", {"legal": p}, {"wnpbj": p})


@case
def temp_without_yxqz(c, p, j):
    """临时用地 without YXQZ never expires; approved 2022: 本年."""
    c.add_approval("临时用地", "2022-02-01", grow(p, 5), yxqz=None)
    c.add_change(BATCH, j, p, HSX, "建设用地")
    return E(j, p, "legal", "legal", {"legal": p}, {"bnpbj": p})


@case
def tuitiantu_half(c, p, j):
    """BHLX 推填土 is judged like 建设用地."""
    x0, y0, x1, y1 = p.bounds
    c.add_approval("供地", "2022-02-02", rect(x0 - 20, y0 - 20, (x0 + x1) / 2, y1 + 20))
    c.add_change(BATCH, j, p, HSX, "推填土")
    left, right = halves(p)
    return E(j, p, "illegal", "illegal", {"legal": left, "illegal": right},
             {"bnpbj": left, "wbjy": right})


@case
def unknown_bhlx(c, p, j):
    """An unknown BHLX is judged like 建设用地 (Decision 4); permit of 2021 over the left half."""
    x0, y0, x1, y1 = p.bounds
    c.add_approval("农用地转用", "2021-04-01", rect(x0 - 20, y0 - 20, (x0 + x1) / 2, y1 + 20))
    c.add_change(BATCH, j, p, HSX, "其他变化")
    left, right = halves(p)
    return E(j, p, "illegal", "illegal", {"legal": left, "illegal": right},
             {"wnpbj": left, "wbjy": right})


@case
def unknown_pzlx(c, p, j):
    """An approval of unknown PZLX counts like a construction permit (Decision 4)."""
    c.add_approval("其它用地", "2022-04-01", grow(p, 5))
    c.add_change(BATCH, j, p, HSX, "建设用地")
    return E(j, p, "legal", "legal", {"legal": p}, {"bnpbj": p})


@case
def hsx_in_next_year(c, p, j):
    """Batch 2022 but HSX 2023-01-15: Y is 2023, the year of HSX (Decision 3). A permit of
    2023-01-10 over the left half is 本年, one of 2022-12-01 over the right half 往年."""
    x0, y0, x1, y1 = p.bounds
    c.add_approval("农用地转用", "2023-01-10", rect(x0 - 20, y0 - 20, (x0 + x1) / 2, y1 + 20))
    c.add_approval("农用地转用", "2022-12-01", rect((x0 + x1) / 2, y0 - 20, x1 + 20, y1 + 20))
    c.add_change(BATCH, j, p, "2023-01-15", "建设用地")
    left, right = halves(p)
    return E(j, p, "legal", "legal", {"legal": p}, {"bnpbj": left, "wnpbj": right})


@case
def dates_in_other_formats(c, p, j):
    """HSX written 2022/6/30; a permit dated 20220630 over the left half, a 临时用地 valid
    until 2022/6/30 over the right half: both still count (≤, and not yet expired)."""
    x0, y0, x1, y1 = p.bounds
    c.add_approval("农用地转用", "20220630", rect(x0 - 20, y0 - 20, (x0 + x1) / 2, y1 + 20))
    c.add_approval("临时用地", "2021/3/1", rect((x0 + x1) / 2, y0 - 20, x1 + 20, y1 + 20),
                   yxqz="2022/6/30")
    c.add_change(BATCH, j, p, "2022/6/30", "建设用地")
    left, right = halves(p)
    return E(j, p, "legal", "legal", {"legal": p}, {"bnpbj": left, "wnpbj": right})


@case
def permit_with_hole(c, p, j):
    """A permit over P but a 20 m × 20 m hole in its middle: the hole is illegal (400 m²)."""
    hole = sub(p, 0.4, 0.6, 0.4, 0.6)
    c.add_approval("农用地转用", "2022-03-01", grow(p, 5).difference(hole))
    c.add_change(BATCH, j, p, HSX, "建设用地")
    rest = p.difference(hole)
    return E(j, p, "illegal", "illegal", {"legal": rest, "illegal": hole},
             {"bnpbj": rest, "wbjy": hole})


@case
def dlbm_lower_case_with_spaces(c, p, j):
    """DLBM ' 05h1 ' is 05H1 (spaces removed, upper case; Decision 12): construction land."""
    c.add_landuse(" 05h1 ", grow(p, 10), 0.0, "商业服务业设施用地")
    c.add_change(BATCH, j, p, HSX, "建设用地")
    return E(j, p, "unchanged", "unchanged", {"unchanged": p})


@case
def bowtie_made_valid(c, p, j):
    """A self-intersecting 'bow tie' ring is repaired as ST_MakeValid does (Decision 11):
    two triangles meeting at the centre, 2 × 2500 m², no permit → illegal."""
    x0, y0, x1, y1 = p.bounds
    xm, ym = (x0 + x1) / 2, (y0 + y1) / 2
    bowtie = Polygon([(x0, y0), (x1, y1), (x1, y0), (x0, y1), (x0, y0)])
    c.add_change(BATCH, j, bowtie, HSX, "建设用地")
    fixed = union(Polygon([(x0, y0), (xm, ym), (x0, y1)]), Polygon([(x1, y0), (x1, y1), (xm, ym)]))
    return E(j, fixed, "illegal", "illegal", {"illegal": fixed}, {"wbjy": fixed})


# ---- construction land (C)


@case
def on_construction_land(c, p, j):
    """Village land 0702 under all of P: unchanged."""
    c.add_landuse("0702", grow(p, 10), 0.0, "农村宅基地")
    c.add_change(BATCH, j, p, HSX, "建设用地")
    return E(j, p, "unchanged", "unchanged", {"unchanged": p})


@case
def partly_on_construction_land(c, p, j):
    """0702 under the left 60 %, 旱地 (KCXS 0.05) under the right 40 %, no permit."""
    x0, y0, x1, y1 = p.bounds
    c.add_landuse("0702", rect(x0 - 10, y0 - 10, x0 + 60, y1 + 10), 0.0, "农村宅基地")
    c.add_landuse("0103", rect(x0 + 60, y0 - 10, x1 + 10, y1 + 10), 0.05, "旱地")
    c.add_change(BATCH, j, p, HSX, "建设用地")
    built, rest = sub(p, 0, 0.6), sub(p, 0.6, 1)
    return E(j, p, "illegal", "illegal", {"unchanged": built, "illegal": rest}, {"wbjy": rest})


@case
def dlbm_three_digit(c, p, j):
    """DLBM '702' is 0702 (Decision 12): construction land, unchanged."""
    c.add_landuse("702", grow(p, 10), 0.0, "农村宅基地")
    c.add_change(BATCH, j, p, HSX, "建设用地")
    return E(j, p, "unchanged", "unchanged", {"unchanged": p})


@case
def construction_land_and_permit(c, p, j):
    """0702 under the left half, a 2022 permit over all: unchanged left, legal right → legal."""
    x0, y0, x1, y1 = p.bounds
    c.add_landuse("0702", rect(x0 - 10, y0 - 10, (x0 + x1) / 2, y1 + 10), 0.0, "农村宅基地")
    c.add_approval("农用地转用", "2022-03-01", grow(p, 5))
    c.add_change(BATCH, j, p, HSX, "建设用地")
    left, right = halves(p)
    return E(j, p, "legal", "legal", {"unchanged": left, "legal": right}, {"bnpbj": right})


# ---- 设施农用地 (F)


@case
def greenhouse_unfiled(c, p, j):
    c.add_change(BATCH, j, p, HSX, "设施农用地")
    return E(j, p, "illegal", "illegal", {"illegal": p}, {"ssny_wba": p})


@case
def greenhouse_half_filed(c, p, j):
    """设施农用地 filing over the left half: left agri_adjust, right 未备案设施农用地."""
    x0, y0, x1, y1 = p.bounds
    c.add_approval("设施农用地", "2022-01-10", rect(x0 - 20, y0 - 20, (x0 + x1) / 2, y1 + 20))
    c.add_change(BATCH, j, p, HSX, "设施农用地")
    left, right = halves(p)
    return E(j, p, "illegal", "illegal", {"agri_adjust": left, "illegal": right},
             {"ssny_wba": right})


@case
def greenhouse_filed_after_hsx(c, p, j):
    """A filing dated after HSX is no filing; under BHLX 设施农用地 it is 未备案, not 未批先建."""
    c.add_approval("设施农用地", "2022-08-01", grow(p, 5))
    c.add_change(BATCH, j, p, HSX, "设施农用地")
    return E(j, p, "illegal", "illegal", {"illegal": p}, {"ssny_wba": p})


@case
def greenhouse_on_construction_land(c, p, j):
    """0702 under the left half, filing over the right half: unchanged + agri → agri_adjust."""
    x0, y0, x1, y1 = p.bounds
    c.add_landuse("0702", rect(x0 - 10, y0 - 10, (x0 + x1) / 2, y1 + 10), 0.0, "农村宅基地")
    c.add_approval("设施农用地", "2022-01-10", rect((x0 + x1) / 2, y0 - 20, x1 + 20, y1 + 20))
    c.add_change(BATCH, j, p, HSX, "设施农用地")
    left, right = halves(p)
    return E(j, p, "agri_adjust", "agri_adjust", {"unchanged": left, "agri_adjust": right})


@case
def building_under_greenhouse_filing(c, p, j):
    """A 设施农用地 filing does not permit a building (F is not in V): 未报即用."""
    c.add_approval("设施农用地", "2022-01-10", grow(p, 5))
    c.add_change(BATCH, j, p, HSX, "建设用地")
    return E(j, p, "illegal", "illegal", {"illegal": p}, {"wbjy": p})


@case
def building_with_late_greenhouse_filing(c, p, j):
    """L takes approvals of any type, 设施农用地 included (Decision 4): 未批先建."""
    c.add_approval("设施农用地", "2022-08-01", grow(p, 5))
    c.add_change(BATCH, j, p, HSX, "建设用地")
    return E(j, p, "illegal", "illegal", {"illegal": p}, {"wpxj": p})


# ---- BHLX 农用地


@case
def bhlx_agri(c, p, j):
    """BHLX 农用地 is agri_adjust over all of P, even on construction land."""
    x0, y0, x1, y1 = p.bounds
    c.add_landuse("0702", rect(x0 - 10, y0 - 10, (x0 + x1) / 2, y1 + 10), 0.0, "农村宅基地")
    c.add_change(BATCH, j, p, HSX, "农用地")
    return E(j, p, "agri_adjust", "agri_adjust", {"agri_adjust": p})


# ---- 耕地 and 永久基本农田


@case
def kcxs_fraction(c, p, j):
    """旱地 with KCXS 0.1 under all of P: 耕地 = 0.9 × area."""
    c.add_landuse("0103", grow(p, 10), 0.1, "旱地")
    c.add_change(BATCH, j, p, HSX, "建设用地")
    return E(j, p, "illegal", "illegal", {"illegal": p}, {"wbjy": p})


@case
def kcxs_percent(c, p, j):
    """KCXS 15 means 15 %: 耕地 = 0.85 × area."""
    c.add_landuse("0103", grow(p, 10), 15.0, "旱地")
    c.add_change(BATCH, j, p, HSX, "建设用地")
    return E(j, p, "illegal", "illegal", {"illegal": p}, {"wbjy": p})


@case
def kcxs_missing(c, p, j):
    """水田 with KCXS NULL: no deduction."""
    c.add_landuse("0101", grow(p, 10), None, "水田")
    c.add_change(BATCH, j, p, HSX, "建设用地")
    return E(j, p, "illegal", "illegal", {"illegal": p}, {"wbjy": p})


@case
def farmland_overlap(c, p, j):
    """Two farmland polygons overlapping over 20 % of P cover its left 80 %: counted once."""
    x0, y0, x1, y1 = p.bounds
    c.add_farmland(rect(x0 - 10, y0 - 10, x0 + 60, y1 + 10))
    c.add_farmland(rect(x0 + 40, y0 - 10, x0 + 80, y1 + 10))
    c.add_change(BATCH, j, p, HSX, "建设用地")
    return E(j, p, "illegal", "illegal", {"illegal": p}, {"wbjy": p})


@case
def farmland_adjacent_blocks(c, p, j):
    """Two farmland blocks sharing an edge at 40 % of P's width cover its left 70 %;
    旱地 with KCXS 0.1 under the left 50 %, 水田 under the rest."""
    x0, y0, x1, y1 = p.bounds
    c.add_farmland(rect(x0 - 10, y0 - 10, x0 + 40, y1 + 10))
    c.add_farmland(rect(x0 + 40, y0 - 10, x0 + 70, y1 + 10))
    c.add_landuse("0103", rect(x0 - 10, y0 - 10, x0 + 50, y1 + 10), 0.1, "旱地")
    c.add_landuse("0101", rect(x0 + 50, y0 - 10, x1 + 10, y1 + 10), 0.0, "水田")
    c.add_change(BATCH, j, p, HSX, "建设用地")
    return E(j, p, "illegal", "illegal", {"illegal": p}, {"wbjy": p})


@case
def two_construction_parcels(c, p, j):
    """0702 under the left 30 %, 0601 beside it to 60 %, no permit: unchanged 60 %,
    illegal 40 % (C is the union of both parcels)."""
    x0, y0, x1, y1 = p.bounds
    c.add_landuse("0702", rect(x0 - 10, y0 - 10, x0 + 30, y1 + 10), 0.0, "农村宅基地")
    c.add_landuse("0601", rect(x0 + 30, y0 - 10, x0 + 60, y1 + 10), 0.0, "工业用地")
    c.add_change(BATCH, j, p, HSX, "建设用地")
    built, rest = sub(p, 0, 0.6), sub(p, 0.6, 1)
    return E(j, p, "illegal", "illegal", {"unchanged": built, "illegal": rest}, {"wbjy": rest})


@case
def late_approvals_and_expired_overlapping(c, p, j):
    """Two late approvals (PZRQ > HSX) over the left 30 % and 20 %–50 %, an expired
    临时用地 over the left 70 %: 未批先建 the left half, 临时用地超期 to 70 %, the rest
    未报即用."""
    x0, y0, x1, y1 = p.bounds
    c.add_approval("征收", "2022-09-01", rect(x0 - 20, y0 - 20, x0 + 30, y1 + 20))
    c.add_approval("供地", "2022-10-01", rect(x0 + 20, y0 - 20, x0 + 50, y1 + 20))
    c.add_approval("临时用地", "2021-05-01", rect(x0 - 20, y0 - 20, x0 + 70, y1 + 20), yxqz="2022-01-31")
    c.add_change(BATCH, j, p, HSX, "建设用地")
    return E(j, p, "illegal", "illegal", {"illegal": p},
             {"wpxj": sub(p, 0, 0.5), "lsyd_cq": sub(p, 0.5, 0.7), "wbjy": sub(p, 0.7, 1)})


# ---- smallest part


def _corner_remnant(c, p, j, w, h, cls):
    """A 2022 permit over all of P but a w × h corner at the top right."""
    x0, y0, x1, y1 = p.bounds
    corner = rect(x1 - w, y1 - h, x1, y1)
    rest = p.difference(corner)
    c.add_approval("农用地转用", "2022-03-01", rest)
    c.add_change(BATCH, j, p, HSX, "建设用地")
    return E(j, p, cls, cls, {"legal": rest, "illegal": corner},
             {"bnpbj": rest, "wbjy": corner})


@case
def remnant_4m2(c, p, j):
    """A 2 m × 2 m unpermitted corner (4 m² < min_part_m2 10): class legal, illegal_m2 ≈ 4."""
    return _corner_remnant(c, p, j, 2, 2, "legal")


@case
def remnant_12m2(c, p, j):
    """A 4 m × 3 m unpermitted corner (12 m² ≥ 10): class illegal."""
    return _corner_remnant(c, p, j, 4, 3, "illegal")


@case
def tiny_all_illegal(c, p, j):
    """A 3 m × 3 m polygon (9 m²), no permit: no class reaches 10 m², the largest wins."""
    x0, y0, _, _ = p.bounds
    q = rect(x0, y0, x0 + 3, y0 + 3)
    c.add_change(BATCH, j, q, HSX, "建设用地")
    return E(j, q, "illegal", "illegal", {"illegal": q}, {"wbjy": q})


@case
def tiny_mostly_legal(c, p, j):
    """3 m × 3 m, a permit over the left 2 m: legal 6 m² > illegal 3 m² → legal."""
    x0, y0, _, _ = p.bounds
    q = rect(x0, y0, x0 + 3, y0 + 3)
    c.add_approval("农用地转用", "2022-03-01", rect(x0 - 1, y0 - 1, x0 + 2, y0 + 4))
    c.add_change(BATCH, j, q, HSX, "建设用地")
    left, right = rect(x0, y0, x0 + 2, y0 + 3), rect(x0 + 2, y0, x0 + 3, y0 + 3)
    return E(j, q, "legal", "legal", {"legal": left, "illegal": right},
             {"bnpbj": left, "wbjy": right})


@case
def tiny_mostly_unchanged(c, p, j):
    """3 m × 3 m, 0702 under the left 2 m: unchanged 6 m² > illegal 3 m² → unchanged."""
    x0, y0, _, _ = p.bounds
    q = rect(x0, y0, x0 + 3, y0 + 3)
    c.add_landuse("0702", rect(x0 - 5, y0 - 5, x0 + 2, y0 + 8), 0.0, "农村宅基地")
    c.add_change(BATCH, j, q, HSX, "建设用地")
    left, right = rect(x0, y0, x0 + 2, y0 + 3), rect(x0 + 2, y0, x0 + 3, y0 + 3)
    return E(j, q, "unchanged", "unchanged", {"unchanged": left, "illegal": right}, {"wbjy": right})


# ---- field check (外业核查), rows gathered into FIELD_ROWS / FIELD_ROWS_XLSX

FIELD_ROWS: list[dict] = []        # fieldcheck_2022.csv, batch 2022
FIELD_ROWS_XLSX: list[dict] = []   # fieldcheck_all.xlsx, no batch, listed after the CSV


@case
def fc_sfbh_no(c, p, j):
    """Desk illegal (no permit, on 旱地); SFBH 否 → all unchanged, auto_class keeps illegal."""
    c.add_landuse("0103", grow(p, 10), 0.0, "旱地")
    c.add_change(BATCH, j, p, HSX, "建设用地")
    FIELD_ROWS.append({"JCBH": j, "SFBH": "否", "HCR": "张三", "HCRQ": "2022-08-01"})
    return E(j, p, "unchanged", "illegal", {"unchanged": p})


@case
def fc_sfbh_no_on_desk_unchanged_with_remnant(c, p, j):
    """Desk unchanged with a 4 m² illegal remnant (< 10 m²); SFBH 否 → all of P unchanged, no remnant.

    domain.md: "field check SFBH = 否 → all of P unchanged"; only a PDLX equal to
    the desk class keeps the desk pieces.
    """
    x0, y0, x1, y1 = p.bounds
    corner = rect(x1 - 2, y1 - 2, x1, y1)
    c.add_landuse("0702", p.difference(corner), 0.0, "农村宅基地")
    c.add_change(BATCH, j, p, HSX, "建设用地")
    FIELD_ROWS.append({"JCBH": j, "SFBH": "否", "HCR": "张三", "HCRQ": "2022-08-01"})
    return E(j, p, "unchanged", "unchanged", {"unchanged": p})


@case
def fc_sfbh_no_beats_pdlx(c, p, j):
    """SFBH 否 wins over a PDLX on the same row (Decision 1)."""
    c.add_change(BATCH, j, p, HSX, "建设用地")
    FIELD_ROWS.append({"JCBH": j, "SFBH": "否", "PDLX": "合法用地"})
    return E(j, p, "unchanged", "illegal", {"unchanged": p})


@case
def fc_sfbh_yes_without_pdlx(c, p, j):
    """SFBH 是 with an empty PDLX changes nothing."""
    c.add_change(BATCH, j, p, HSX, "建设用地")
    FIELD_ROWS.append({"JCBH": j, "SFBH": "是", "PDLX": ""})
    return E(j, p, "illegal", "illegal", {"illegal": p}, {"wbjy": p})


@case
def fc_pdlx_legal(c, p, j):
    """Desk: left half permitted in 2022, right not (illegal). PDLX 合法用地 → all legal;
    Decision 2: 本年 where the 2022 permit covers it, the rest 往年."""
    x0, y0, x1, y1 = p.bounds
    c.add_approval("农用地转用", "2022-03-15", rect(x0 - 20, y0 - 20, (x0 + x1) / 2, y1 + 20))
    c.add_change(BATCH, j, p, HSX, "建设用地")
    FIELD_ROWS.append({"JCBH": j, "SFBH": "是", "PDLX": "合法用地"})
    left, right = halves(p)
    return E(j, p, "legal", "illegal", {"legal": p}, {"bnpbj": left, "wnpbj": right})


@case
def fc_pdlx_illegal_on_construction(c, p, j):
    """Desk unchanged (0702 under all). PDLX 违法用地 → all illegal; Decision 2 over the
    whole polygon: a late approval over the left quarter → 未批先建, an expired 临时用地
    over the left half → 临时用地超期 for what is left of it, the rest 未报即用."""
    x0, y0, x1, y1 = p.bounds
    c.add_landuse("0702", grow(p, 10), 0.0, "农村宅基地")
    c.add_approval("农用地转用", "2022-09-01", rect(x0 - 20, y0 - 20, x0 + 25, y1 + 20))
    c.add_approval("临时用地", "2021-05-01", rect(x0 - 20, y0 - 20, x0 + 50, y1 + 20),
                   yxqz="2022-01-31")
    c.add_change(BATCH, j, p, HSX, "建设用地")
    FIELD_ROWS.append({"JCBH": j, "SFBH": "是", "PDLX": "违法用地"})
    return E(j, p, "illegal", "unchanged", {"illegal": p},
             {"wpxj": sub(p, 0, 0.25), "lsyd_cq": sub(p, 0.25, 0.5), "wbjy": sub(p, 0.5, 1)})


@case
def fc_pdlx_illegal_greenhouse(c, p, j):
    """Desk agri (filed greenhouse). PDLX 违法用地 → all 未备案设施农用地, even where a
    late approval lies (BHLX 设施农用地 comes first, Decision 2)."""
    x0, y0, x1, y1 = p.bounds
    c.add_approval("设施农用地", "2022-01-10", grow(p, 5))
    c.add_approval("征收", "2022-09-01", rect(x0 - 20, y0 - 20, (x0 + x1) / 2, y1 + 20))
    c.add_change(BATCH, j, p, HSX, "设施农用地")
    FIELD_ROWS.append({"JCBH": j, "SFBH": "是", "PDLX": "违法用地"})
    return E(j, p, "illegal", "agri_adjust", {"illegal": p}, {"ssny_wba": p})


@case
def fc_pdlx_english_id(c, p, j):
    """PDLX may be the English id: agri_adjust over a desk illegal polygon."""
    c.add_change(BATCH, j, p, HSX, "建设用地")
    FIELD_ROWS.append({"JCBH": j, "SFBH": "是", "PDLX": "agri_adjust"})
    return E(j, p, "agri_adjust", "illegal", {"agri_adjust": p})


@case
def fc_confirmed_overbuild(c, p, j):
    """Permit over the left 95 %; PDLX 违法用地 confirms the desk class and keeps its
    pieces: 5 % illegal, 95 % legal, class illegal."""
    x0, y0, x1, y1 = p.bounds
    c.add_approval("农用地转用", "2022-03-15", rect(x0 - 5, y0 - 5, x0 + 95, y1 + 5))
    c.add_change(BATCH, j, p, HSX, "建设用地")
    FIELD_ROWS.append({"JCBH": j, "SFBH": "是", "PDLX": "违法用地"})
    legal, over = sub(p, 0, 0.95), sub(p, 0.95, 1)
    return E(j, p, "illegal", "illegal", {"legal": legal, "illegal": over},
             {"bnpbj": legal, "wbjy": over})


@case
def fc_later_row_wins(c, p, j):
    """Desk legal; a first row says SFBH 否, a later one PDLX 违法用地: the later wins."""
    c.add_approval("农用地转用", "2022-03-15", grow(p, 5))
    c.add_change(BATCH, j, p, HSX, "建设用地")
    FIELD_ROWS.append({"JCBH": j, "SFBH": "否"})
    FIELD_ROWS.append({"JCBH": j, "SFBH": "是", "PDLX": "违法用地"})
    return E(j, p, "illegal", "legal", {"illegal": p}, {"wbjy": p})


@case
def fc_later_layer_wins(c, p, j):
    """Desk illegal; the CSV (batch 2022) says 合法用地, the later XLSX layer without batch
    says SFBH 否: the later layer wins, and a layer without batch applies to batch 2022."""
    c.add_change(BATCH, j, p, HSX, "建设用地")
    FIELD_ROWS.append({"JCBH": j, "SFBH": "是", "PDLX": "合法用地"})
    FIELD_ROWS_XLSX.append({"JCBH": j, "SFBH": "否"})
    return E(j, p, "unchanged", "illegal", {"unchanged": p})


# ---- building the main county

MAIN_TOWN_BOX = (498500.0, 3938500.0, 501500.0, 3941500.0)
CELLS_PER_ROW = 9


def cell_square(k: int):
    ox = 498700.0 + 300.0 * (k % CELLS_PER_ROW)
    oy = 3938700.0 + 300.0 * (k // CELLS_PER_ROW)
    return rect(ox, oy, ox + 100.0, oy + 100.0)


def jcbh_of(k: int) -> str:
    return f"1408242022{k + 1:04d}"


def build_main(root: Path) -> tuple[CountyBuilder, dict[str, Expected]]:
    FIELD_ROWS.clear()
    FIELD_ROWS_XLSX.clear()
    c = CountyBuilder(root)
    c.add_township(TOWN, TOWN_NAME, rect(*MAIN_TOWN_BOX))
    expected = {}
    for k, (name, fn) in enumerate(CASES.items()):
        assert k < 6 * CELLS_PER_ROW, "test design: more cases than cells inside the township"
        expected[name] = fn(c, cell_square(k), jcbh_of(k))
    c.add_field_checks("fieldcheck_2022.csv", list(FIELD_ROWS), batch=BATCH)
    c.add_field_checks("fieldcheck_all.xlsx", list(FIELD_ROWS_XLSX), batch=None)
    return c, expected


@dataclass
class Run:
    county: CountyBuilder
    expected: dict[str, Expected]
    out: Outputs


@pytest.fixture(scope="module")
def module_db(pg_cluster):
    """make(name) → URL of a database that lives for this module (one pipeline run
    serves many cases)."""
    made = []

    def make(name: str) -> str:
        made.append(name)
        return pg_cluster.create_database(name)

    yield make
    for name in made:
        pg_cluster.drop_database(name)


@pytest.fixture(scope="module")
def main(module_db, tmp_path_factory) -> Run:
    root = tmp_path_factory.mktemp("main_county")
    county, expected = build_main(root / "in")
    out = run_county(module_db("kat_classification_main"), county, BATCH, root / "out")
    return Run(county, expected, out)


@pytest.mark.parametrize("name", list(CASES))
def test_case(main: Run, name: str):
    exp = main.expected[name]
    assert_row(main.out.polygons.get(exp.jcbh), exp.row(main.county), name)


def test_every_polygon_is_reported_once(main: Run):
    assert sorted(main.out.polygons) == sorted(e.jcbh for e in main.expected.values())


def _invariants(rows: dict[str, dict[str, str]]) -> list[str]:
    bad = []
    for j, r in rows.items():
        v = {k: num(r[k]) for k in NUMERIC_COLUMNS}
        classes = v["legal_m2"] + v["unchanged_m2"] + v["agri_m2"] + v["illegal_m2"]
        legal_sub = v["bnpbj_m2"] + v["wnpbj_m2"]
        illegal_sub = v["wpxj_m2"] + v["lsyd_cq_m2"] + v["wbjy_m2"] + v["ssny_wba_m2"]
        checks = [
            ("legal+unchanged+agri+illegal = area_m2", classes, v["area_m2"]),
            ("bnpbj+wnpbj = legal_m2", legal_sub, v["legal_m2"]),
            ("wpxj+lsyd_cq+wbjy+ssny_wba = illegal_m2", illegal_sub, v["illegal_m2"]),
        ]
        for what, a, b in checks:
            if abs(a - b) > TOL_M2:
                bad.append(f"{j}: {what}: {a:.4f} vs {b:.4f}")
        for small, big in (("legal_cultivated_m2", "cultivated_m2"),
                           ("illegal_cultivated_m2", "cultivated_m2"),
                           ("illegal_farmland_m2", "farmland_m2"),
                           ("cultivated_m2", "area_m2"), ("farmland_m2", "area_m2")):
            if v[small] > v[big] + TOL_M2:
                bad.append(f"{j}: {small} {v[small]:.4f} > {big} {v[big]:.4f}")
        if min(v.values()) < -TOL_M2:
            bad.append(f"{j}: negative area")
        if r["class"] not in CLASSES or r["auto_class"] not in CLASSES:
            bad.append(f"{j}: class {r['class']!r} / auto_class {r['auto_class']!r}")
    return bad


def test_invariants_hold_for_every_row(main: Run):
    bad = _invariants(main.out.polygons)
    assert not bad, "\n".join(bad)


def test_class_areas_in_township_row(main: Run):
    """All cases lie in 城关镇: its row and the county row add the pieces of every case."""
    towns, total = expected_township_stats(main.county, list(main.expected.values()))
    assert_township_row(main.out.township(TOWN), towns[TOWN])
    assert_township_row(main.out.township(main.county.code), total)


# ====================================================================== townships
#
#   甲镇 140824101 x 499000–500000 | 乙镇 140824102 x 500000–501000 | 丙乡 140824103 x 501000–502000
#   all y 3939000–3941000; the boundary 甲|乙 is the central meridian x = 500000.

TA, TB, TC = "140824101", "140824102", "140824103"


def build_townships(root: Path) -> tuple[CountyBuilder, dict[str, Expected]]:
    c = CountyBuilder(root)
    c.add_township(TA, "甲镇", rect(499000, 3939000, 500000, 3941000))
    c.add_township(TB, "乙镇", rect(500000, 3939000, 501000, 3941000))
    c.add_township(TC, "丙乡", rect(501000, 3939000, 502000, 3941000))
    e = {}

    # straddle: 30 m in 甲镇, 50 m in 乙镇; a 2022 permit over its western 40 m; 旱地 under all.
    p = rect(499970, 3940000, 500050, 3940100)
    c.add_landuse("0103", rect(499960, 3939990, 500060, 3940110), 0.0, "旱地")
    c.add_approval("农用地转用", "2022-03-01", rect(499900, 3939990, 500010, 3940110))
    c.add_change(BATCH, "140824202201", p, HSX, "建设用地", xzqdm=TA)
    legal, illegal = rect(499970, 3940000, 500010, 3940100), rect(500010, 3940000, 500050, 3940100)
    e["straddle"] = Expected("140824202201", BATCH, p, "illegal", "illegal",
                             {"legal": legal, "illegal": illegal},
                             {"bnpbj": legal, "wbjy": illegal}, xzqdm=TB)

    # tie: halves mirror each other across the central meridian → equal shares → 甲镇
    p = rect(499950, 3940300, 500050, 3940400)
    c.add_change(BATCH, "140824202202", p, HSX, "建设用地", xzqdm=TB)
    e["tie"] = Expected("140824202202", BATCH, p, "illegal", "illegal", {"illegal": p},
                        {"wbjy": p}, xzqdm=TA)

    # half outside every township (north of y = 3941000), the other half in 乙镇
    p = rect(500500, 3940950, 500600, 3941050)
    c.add_change(BATCH, "140824202203", p, HSX, "建设用地", xzqdm=TA)
    e["half_outside"] = Expected("140824202203", BATCH, p, "illegal", "illegal", {"illegal": p},
                                 {"wbjy": p}, xzqdm=TB)

    # wholly outside every township (east of 丙乡)
    p = rect(502500, 3940000, 502600, 3940100)
    c.add_change(BATCH, "140824202204", p, HSX, "建设用地", xzqdm=TC)
    e["outside"] = Expected("140824202204", BATCH, p, "illegal", "illegal", {"illegal": p},
                            {"wbjy": p}, xzqdm=None)
    return c, e


@pytest.fixture(scope="module")
def towns(module_db, tmp_path_factory) -> Run:
    root = tmp_path_factory.mktemp("township_county")
    county, expected = build_townships(root / "in")
    out = run_county(module_db("kat_classification_towns"), county, BATCH, root / "out")
    return Run(county, expected, out)


def test_straddling_polygon_goes_to_larger_share(towns: Run):
    e = towns.expected["straddle"]
    assert_row(towns.out.polygons.get(e.jcbh), e.row(towns.county), "straddle")


def test_township_tie_goes_to_smaller_code(towns: Run):
    """The two halves are mirror images across the central meridian: equal ellipsoidal
    shares (they differ only by floating-point noise, ~1e-7 m²) → the smaller code."""
    e = towns.expected["tie"]
    assert_row(towns.out.polygons.get(e.jcbh), e.row(towns.county), "tie")


def test_polygon_partly_outside_townships(towns: Run):
    e = towns.expected["half_outside"]
    assert_row(towns.out.polygons.get(e.jcbh), e.row(towns.county), "half_outside")


def test_polygon_wholly_outside_townships(towns: Run):
    e = towns.expected["outside"]
    got = towns.out.polygons.get(e.jcbh)
    assert_row(got, e.row(towns.county), "outside")
    assert got["xzqdm"] not in (TA, TB, TC), "a polygon outside every township has no township"


def test_township_areas_follow_the_pieces(towns: Run):
    """亩 go to the township each piece lies in; parts outside every township count only
    in the county row (Decision 5)."""
    rows, total = expected_township_stats(towns.county, list(towns.expected.values()))
    for code in (TA, TB, TC):
        assert_township_row(towns.out.township(code), rows[code], counts=False)
    assert_township_row(towns.out.township(towns.county.code), total, counts=False)


def test_township_counts_follow_the_polygon(towns: Run):
    """宗 go to the polygon's township: 甲镇 the tie, 乙镇 the straddle and the half-outside
    polygon, 丙乡 none; the county row all four."""
    rows, total = expected_township_stats(towns.county, list(towns.expected.values()))
    assert (rows[TA].counts["n_total"], rows[TB].counts["n_total"], rows[TC].counts["n_total"],
            total.counts["n_total"]) == (1, 2, 0, 4), "test design"
    assert rows[TB].counts["n_illegal_cultivated"] == 1, "test design"
    for code in (TA, TB, TC):
        assert_township_row(towns.out.township(code), rows[code], areas=False)
    assert_township_row(towns.out.township(towns.county.code), total, areas=False)


def test_invariants_hold_in_township_county(towns: Run):
    bad = _invariants(towns.out.polygons)
    assert not bad, "\n".join(bad)


# ====================================================================== own runs


def test_min_part_setting(database_url, run_cli, tmp_path):
    """[settings] min_part_m2 = 3: the 4 m² unpermitted corner now makes the polygon illegal."""
    c = CountyBuilder(tmp_path / "in", settings={"min_part_m2": 3})
    c.add_township(TOWN, TOWN_NAME, rect(*MAIN_TOWN_BOX))
    exp = _corner_remnant(c, cell_square(0), jcbh_of(0), 2, 2, "illegal")
    toml = c.write()
    run_cli("run", str(toml), "--batch", BATCH, "--out", str(tmp_path / "out"))
    out = Outputs.read(tmp_path / "out")
    assert_row(out.polygons.get(exp.jcbh), exp.row(c), "min_part_m2 = 3")


def test_approval_without_readable_date_is_not_used(database_url, run_cli, tmp_path):
    """An approval whose PZRQ is not a date, or empty, is quarantined, not used
    (Decision 4): the run still succeeds and the polygon it covers is illegal."""
    c = CountyBuilder(tmp_path / "in")
    c.add_township(TOWN, TOWN_NAME, rect(*MAIN_TOWN_BOX))
    p, q = cell_square(0), cell_square(1)
    c.add_approval("农用地转用", "2022/13/45", grow(p, 5))
    c.add_approval("农用地转用", None, grow(q, 5))
    c.add_change(BATCH, jcbh_of(0), p, HSX, "建设用地")
    c.add_change(BATCH, jcbh_of(1), q, HSX, "建设用地")
    toml = c.write()
    run_cli("run", str(toml), "--batch", BATCH, "--out", str(tmp_path / "out"))
    out = Outputs.read(tmp_path / "out")
    for j, g in ((jcbh_of(0), p), (jcbh_of(1), q)):
        e = Expected(j, BATCH, g, "illegal", "illegal", {"illegal": g}, {"wbjy": g}, xzqdm=TOWN)
        assert_row(out.polygons.get(j), e.row(c), f"approval without date ({j})")


def test_polygon_across_parts_of_one_township(database_url, run_cli, tmp_path):
    """A township of 600 vertices is kept as parts of at most 128 vertices (migration
    0020). A polygon across a cut between parts lies wholly in the township: its pieces
    are not cut and it belongs there. One across a cut and the township's edge is cut
    by the township; the part outside counts in the county only (Decision 5)."""
    c = CountyBuilder(tmp_path / "in")
    town = shapely.segmentize(rect(498000, 3939000, 502000, 3941000), 20.0)
    assert len(town.exterior.coords) > 500, "test design"
    c.add_township(TOWN, TOWN_NAME, town)
    p = rect(499950, 3939400, 500050, 3939500)        # across x = 500000, the first cut
    q = rect(499950, 3940950, 500050, 3941030)        # the same, and 30 m beyond the edge
    x0, y0, x1, y1 = p.bounds
    c.add_approval("农用地转用", "2022-03-15", rect(x0 - 20, y0 - 20, (x0 + x1) / 2 + 10, y1 + 20))
    c.add_landuse("0103", rect(x0 - 10, y0 - 10, x1 + 10, y1 + 10), 0.0, "旱地")
    c.add_change(BATCH, jcbh_of(0), p, HSX, "建设用地")
    c.add_change(BATCH, jcbh_of(1), q, HSX, "建设用地")
    legal, illegal = sub(p, 0, 0.6), sub(p, 0.6, 1)
    expected = [
        Expected(jcbh_of(0), BATCH, p, "illegal", "illegal", {"legal": legal, "illegal": illegal},
                 {"bnpbj": legal, "wbjy": illegal}, xzqdm=TOWN),
        Expected(jcbh_of(1), BATCH, q, "illegal", "illegal", {"illegal": q}, {"wbjy": q}, xzqdm=TOWN),
    ]
    toml = c.write()
    run_cli("run", str(toml), "--batch", BATCH, "--out", str(tmp_path / "out"))
    with psycopg.connect(database_url) as conn:
        for g in (p, q):
            n = conn.execute("""SELECT count(*) FROM weipian.township_part t
                                WHERE ST_Intersects(t.geom, ST_GeomFromText(%s, 4546))""", (g.wkt,)).fetchone()[0]
            assert n >= 2, "test design: the polygon should lie across parts of the township"
        pieces = conn.execute("""SELECT jcbh, count(*), count(xzqdm) FROM weipian.change_piece
                                 GROUP BY jcbh ORDER BY jcbh""").fetchall()
    assert pieces == [(jcbh_of(0), 2, 2), (jcbh_of(1), 2, 1)], \
        "pieces: P legal and illegal, both in the township; Q inside and outside it"
    out = Outputs.read(tmp_path / "out")
    for e in expected:
        assert_row(out.polygons.get(e.jcbh), e.row(c), e.jcbh)
    rows, total = expected_township_stats(c, expected)
    assert_township_row(out.township(TOWN), rows[TOWN])
    assert_township_row(out.township(c.code), total)


def test_large_farmland_replaced_by_another_of_as_many_blocks_is_subdivided_again(database_url, run_cli, tmp_path):
    """Farmland blocks of over 128 vertices are measured through their parts (migration
    0020), kept until the farmland layer changes. The layer replaced by another with the
    same number of blocks, one large block moved from beside P to over P's left half:
    the next run measures P against the new parts (half of P is farmland), not the old
    ones (none of it)."""
    c = CountyBuilder(tmp_path / "in")
    c.add_township(TOWN, TOWN_NAME, rect(498000, 3939000, 502000, 3941000))
    p = rect(500000, 3940000, 500100, 3940100)
    c.add_landuse("0103", rect(499990, 3939990, 500110, 3940110), 0.0, "旱地")
    c.add_change(BATCH, jcbh_of(0), p, HSX, "建设用地")
    beside = shapely.segmentize(rect(500300, 3939900, 500500, 3940200), 5.0)
    over = shapely.segmentize(rect(499900, 3939900, 500050, 3940200), 5.0)
    assert len(beside.exterior.coords) > 128 and len(over.exterior.coords) > 128, "test design"
    c.add_farmland(beside)
    toml = c.write()
    run_cli("run", str(toml), "--batch", BATCH, "--out", str(tmp_path / "out1"))
    first = Outputs.read(tmp_path / "out1").polygons[jcbh_of(0)]
    assert num(first["farmland_m2"]) == 0

    c.farmland.clear()
    c.add_farmland(over)
    c.write()
    run_cli("run", str(toml), "--batch", BATCH, "--out", str(tmp_path / "out2"))
    second = Outputs.read(tmp_path / "out2").polygons[jcbh_of(0)]
    assert num(second["farmland_m2"]) == pytest.approx(geodesic_area_m2(sub(p, 0, 0.5)), abs=0.01)
    with psycopg.connect(database_url) as conn:
        parts = conn.execute("SELECT count(*) FROM weipian.farmland_part").fetchone()[0]
    assert parts >= 2, "the large block is kept as parts"
