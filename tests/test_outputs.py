"""The output contract (contract.md), with statistics and narrative known by construction.

One county of eight townships, built so that every rule of domain.md Statistics and
Decisions 5, 7, 8, 9 and 13 decides something:

    township       batch 2022 polygons                          illegal 耕地  illegal
    甲镇 101  a1 illegal on 旱地 (665.4 m²), a2 illegal (666 m²),      1.00        2.15
              a4 illegal with 2.67 m² 旱地 (0.004 亩: not 涉及耕地),   (1.0021)
              a3 legal on 旱地 (2000 m²)
    乙镇 102  b1 illegal on 旱地 (667.4 m²), b2 illegal (2001 m², half   1.00        4.00
              on 永久基本农田), b3 unchanged, b4 agri_adjust           (1.0011)
    丙乡 103  c1, c2 illegal, no 耕地 (1665.6 m²)                       0.00        2.50 (2.4984)
    丁乡 104  d1 illegal (1669.6 m²); d2 desk illegal, field check     0.00        2.50 (2.5044)
              (XLSX) SFBH 否 → unchanged
    戊镇 105  g1 legal on 旱地, g2 illegal with 3.47 m² 旱地            0.01        0.15
              (0.0052 亩: 涉及耕地 1 宗)
    己乡 106  f1 legal on 旱地 with a 4 m² unpermitted corner (class    0.01        0.01
              legal: 0 宗, but 0.006 亩 illegal 耕地)
    庚镇 107  h1 legal on 旱地                                          0.00        0.00
    辛镇 108  (none in 2022)
    outside   o1 illegal (400 m²), north of every township: county row only

Ranking on values as reported (Decision 8): 乙镇 before 甲镇 (1.00 = 1.00, then 4.00 >
2.15, although 甲镇 has more unrounded 耕地), 丙乡 before 丁乡 (a tie on both as
reported, then the code, although 丁乡 has more unrounded area).

Batch 2021 adds e1 (丙乡, illegal on 旱地, 1500 m²) and e2 (辛镇, illegal, 100 m²);
the run ``--batch 2021-2022`` takes both batches, labelled 2021—2022.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pyogrio
import pytest

from builders import (
    POLYGON_COLUMNS, TOWNSHIP_COLUMNS, CountyBuilder, Expected, Outputs, TownshipExpect,
    geodesic_area_m2,
    assert_not_near_half, assert_row, assert_township_row, expected_ranking,
    expected_township_stats, fmt2, mu, rect, run_county,
)

CODE, NAME = "140824", "测试县"
TOWNSHIPS = [
    ("140824101", "甲镇"), ("140824102", "乙镇"), ("140824103", "丙乡"), ("140824104", "丁乡"),
    ("140824105", "戊镇"), ("140824106", "己乡"), ("140824107", "庚镇"), ("140824108", "辛镇"),
]
T = {i + 1: code for i, (code, _) in enumerate(TOWNSHIPS)}
Y_LOW, Y_HIGH = 3939500.0, 3940500.0
BY = 3939600.0  # polygons' southern edge


def bx(k: int) -> float:
    """Western edge of the polygons of township k (1..8); townships are 1 km wide."""
    return 496000.0 + 1000.0 * (k - 1) + 100.0


def grow(p, d):
    x0, y0, x1, y1 = p.bounds
    return rect(x0 - d, y0 - d, x1 + d, y1 + d)


class StatsCounty:
    """The county above, and the Expected answer of each of its polygons."""

    def __init__(self, root: Path):
        c = self.county = CountyBuilder(root, code=CODE, name=NAME)
        for i, (code, name) in enumerate(TOWNSHIPS):
            x = 496000.0 + 1000.0 * i
            c.add_township(code, name, rect(x, Y_LOW, x + 1000.0, Y_HIGH))
        self.expected: dict[str, list[Expected]] = {"2021": [], "2022": []}
        self._n = {"2021": 0, "2022": 0}
        field_rows = []

        def poly(k, dx, w, h):
            return rect(bx(k) + dx, BY, bx(k) + dx + w, BY + h)

        def illegal(batch, k, p, hsx="2022-06-30", town=True):
            j = self._jcbh(batch)
            c.add_change(batch, j, p, hsx, "建设用地")
            self.expected[batch].append(Expected(j, batch, p, "illegal", "illegal",
                                                 {"illegal": p}, {"wbjy": p},
                                                 xzqdm=T[k] if town else None))
            return j

        def legal(k, p, pzrq="2022-03-01"):
            j = self._jcbh("2022")
            c.add_approval("农用地转用", pzrq, grow(p, 5))
            c.add_change("2022", j, p, "2022-06-30", "建设用地")
            sub = "bnpbj" if pzrq.startswith("2022") else "wnpbj"
            self.expected["2022"].append(Expected(j, "2022", p, "legal", "legal",
                                                  {"legal": p}, {sub: p}, xzqdm=T[k]))

        def strip_of_dryland(p, h):
            """旱地 under a 1 m wide strip, h m high, at the SW corner of p (and outside p)."""
            x0, y0, _, _ = p.bounds
            c.add_landuse("0103", rect(x0 - 5, y0 - 5, x0 + 1, y0 + h), 0.0, "旱地")

        # 甲镇
        a1 = poly(1, 0, 20, 33.27)
        c.add_landuse("0103", grow(a1, 5), 0.0, "旱地")
        illegal("2022", 1, a1)
        illegal("2022", 1, poly(1, 200, 20, 33.3))
        a4 = poly(1, 400, 10, 10)
        strip_of_dryland(a4, 8 / 3)  # 2.667 m² = 0.004 亩
        illegal("2022", 1, a4)
        a3 = poly(1, 600, 40, 50)
        c.add_landuse("0103", grow(a3, 5), 0.0, "旱地")
        legal(1, a3)

        # 乙镇
        b1 = poly(2, 0, 20, 33.37)
        c.add_landuse("0103", grow(b1, 5), 0.0, "旱地")
        illegal("2022", 2, b1)
        b2 = poly(2, 200, 30, 66.7)
        x0, y0, x1, y1 = b2.bounds
        c.add_farmland(rect(x0 - 5, y0 - 5, x0 + 15, y1 + 5))
        illegal("2022", 2, b2)
        b3 = poly(2, 400, 30, 30)
        c.add_landuse("0702", grow(b3, 5), 0.0, "农村宅基地")
        j = self._jcbh("2022")
        c.add_change("2022", j, b3, "2022-06-30", "建设用地")
        self.expected["2022"].append(Expected(j, "2022", b3, "unchanged", "unchanged",
                                              {"unchanged": b3}, xzqdm=T[2]))
        b4 = poly(2, 600, 30, 30)
        j = self._jcbh("2022")
        c.add_change("2022", j, b4, "2022-06-30", "农用地")
        self.expected["2022"].append(Expected(j, "2022", b4, "agri_adjust", "agri_adjust",
                                              {"agri_adjust": b4}, xzqdm=T[2]))

        # 丙乡, 丁乡
        illegal("2022", 3, poly(3, 0, 40, 39.14))
        illegal("2022", 3, poly(3, 200, 10, 10))
        illegal("2022", 4, poly(4, 0, 40, 41.74))
        d2 = poly(4, 200, 30, 30)
        j = self._jcbh("2022")
        c.add_change("2022", j, d2, "2022-06-30", "建设用地")
        field_rows.append({"JCBH": j, "SFBH": "否", "HCR": "李四", "HCRQ": "2022-09-01"})
        self.expected["2022"].append(Expected(j, "2022", d2, "unchanged", "illegal",
                                              {"unchanged": d2}, xzqdm=T[4]))

        # 戊镇
        g1 = poly(5, 0, 40, 50)
        c.add_landuse("0103", grow(g1, 5), 0.0, "旱地")
        legal(5, g1)
        g2 = poly(5, 200, 10, 10)
        strip_of_dryland(g2, 52 / 15)  # 3.467 m² = 0.0052 亩
        illegal("2022", 5, g2)

        # 己乡: a 2 m × 2 m corner without permit
        f1 = poly(6, 0, 100, 100)
        x0, y0, x1, y1 = f1.bounds
        corner = rect(x1 - 2, y1 - 2, x1, y1)
        c.add_landuse("0103", grow(f1, 5), 0.0, "旱地")
        c.add_approval("农用地转用", "2022-03-01", f1.difference(corner))
        j = self._jcbh("2022")
        c.add_change("2022", j, f1, "2022-06-30", "建设用地")
        self.expected["2022"].append(Expected(
            j, "2022", f1, "legal", "legal", {"legal": f1.difference(corner), "illegal": corner},
            {"bnpbj": f1.difference(corner), "wbjy": corner}, xzqdm=T[6]))

        # 庚镇: legal on 旱地 with a permit of 2021
        h1 = poly(7, 0, 30, 30)
        c.add_landuse("0103", grow(h1, 5), 0.0, "旱地")
        legal(7, h1, pzrq="2021-03-01")

        # outside every township
        illegal("2022", 0, rect(500000, 3941000, 500020, 3941020), town=False)

        # batch 2021
        e1 = poly(3, 400, 30, 50)
        c.add_landuse("0103", grow(e1, 5), 0.0, "旱地")
        illegal("2021", 3, e1, hsx="2021-07-15")
        illegal("2021", 8, poly(8, 0, 10, 10), hsx="2021-07-15")

        c.add_field_checks("WYHC_2022.xlsx", field_rows, batch="2022")

    def _jcbh(self, batch: str) -> str:
        self._n[batch] += 1
        return f"{CODE}{batch}{self._n[batch]:04d}"

    def answers(self, batches: list[str]) -> tuple[dict[str, TownshipExpect], TownshipExpect]:
        return expected_township_stats(self.county, [e for b in batches for e in self.expected[b]])


@dataclass
class Run:
    built: StatsCounty
    batches: list[str]
    label: str
    out: Outputs


@pytest.fixture(scope="module")
def runs(pg_cluster, tmp_path_factory):
    """Two runs of the same county: --batch 2022 and --batch 2021-2022, each on its own
    database (created on first use, dropped at the end of the module)."""
    root = tmp_path_factory.mktemp("stats_county")
    built = StatsCounty(root / "in")
    made: dict[str, Run] = {}
    made_dbs: list[str] = []

    def get(which: str) -> Run:
        if which not in made:
            batch, batches, label = {
                "2022": ("2022", ["2022"], "2022"),
                "range": ("2021-2022", ["2021", "2022"], "2021—2022"),
            }[which]
            url = pg_cluster.create_database(f"kat_outputs_{which}")
            try:
                out = run_county(url, built.county, batch, root / f"out_{which}")
            finally:
                made_dbs.append(f"kat_outputs_{which}")
            made[which] = Run(built, batches, label, out)
        return made[which]

    yield get
    for name in made_dbs:
        pg_cluster.drop_database(name)


@pytest.fixture(scope="module")
def run2022(runs) -> Run:
    return runs("2022")


@pytest.fixture(scope="module")
def run_range(runs) -> Run:
    return runs("range")


# ------------------------------------------------------------------ the design itself

RANK_2022 = ["140824102", "140824101", "140824105", "140824106", "140824103", "140824104",
             "140824107", "140824108"]
RANK_RANGE = ["140824103", "140824102", "140824101", "140824105", "140824106", "140824104",
              "140824108", "140824107"]


def test_design_is_what_the_docstring_says(tmp_path):
    """Guards the construction (no pipeline): the ranking and the boundary values are the
    ones the module docstring promises, and no value sits on a rounding tie."""
    built = StatsCounty(tmp_path)
    rows, total = built.answers(["2022"])
    assert expected_ranking(rows) == RANK_2022
    assert expected_ranking(built.answers(["2021", "2022"])[0]) == RANK_RANGE
    t1, t2, t3, t4 = (rows[T[k]] for k in (1, 2, 3, 4))
    assert t1.mu("illegal_cultivated") > t2.mu("illegal_cultivated")  # unrounded order differs
    assert fmt2(t1.mu("illegal_cultivated")) == fmt2(t2.mu("illegal_cultivated")) == "1.00"
    assert t4.mu("illegal") > t3.mu("illegal") and fmt2(t3.mu("illegal")) == fmt2(t4.mu("illegal"))
    a4 = built.expected["2022"][2]
    assert mu(a4.row(built.county)["illegal_cultivated_m2"]) < 0.005
    g2 = [e for e in built.expected["2022"] if e.xzqdm == T[5] and e.cls == "illegal"][0]
    assert mu(g2.row(built.county)["illegal_cultivated_m2"]) >= 0.005
    assert (rows[T[6]].counts["n_illegal"], rows[T[6]].counts["n_illegal_cultivated"]) == (0, 0)
    for batches in (["2022"], ["2021", "2022"]):
        rows, total = built.answers(batches)
        for t in list(rows.values()) + [total]:
            for key, v in t.m2.items():
                assert_not_near_half(mu(v), 2, f"{t.xzqdm} {key}")
            if t.ratio is not None:
                assert_not_near_half(t.ratio, 4, f"{t.xzqdm} ratio")


# ------------------------------------------------------------------ polygons.csv


def test_polygons_csv_has_bom_and_contract_columns(run2022: Run):
    raw = (run2022.out.out / "polygons.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), "polygons.csv must start with a UTF-8 BOM"
    header = run2022.out.polygon_header
    assert header[:len(POLYGON_COLUMNS)] == POLYGON_COLUMNS, (
        "polygons.csv: the contract columns, in order, must come first\n"
        f"expected {POLYGON_COLUMNS}\ngot      {header}")


def test_polygons_csv_rows(run2022: Run):
    """One row per polygon of the batch, each with its constructed answer."""
    exp = run2022.built.expected["2022"]
    assert sorted(run2022.out.polygons) == sorted(e.jcbh for e in exp)
    for e in exp:
        row = e.row(run2022.built.county)
        if e.xzqdm is None:  # outside every township: no township name to expect
            row.pop("xzqdm", None)
            row.pop("xzqmc", None)
        assert_row(run2022.out.polygons.get(e.jcbh), row, f"stats county {e.jcbh}")


def test_range_run_holds_both_batches(run_range: Run):
    exp = run_range.built.expected["2021"] + run_range.built.expected["2022"]
    assert {j: r["batch"] for j, r in run_range.out.polygons.items()} == \
        {e.jcbh: e.batch for e in exp}


# ------------------------------------------------------------------ township_stats.csv


def test_township_stats_columns(run2022: Run):
    assert run2022.out.township_header == TOWNSHIP_COLUMNS


@pytest.mark.parametrize("which", ["2022", "range"])
def test_one_row_per_township_and_county_last(runs, which):
    out = runs(which).out
    codes = [r["xzqdm"] for r in out.townships]
    assert sorted(codes[:-1]) == sorted(code for code, _ in TOWNSHIPS), \
        "every township of the township layer gets a row, even without polygons"
    last = out.townships[-1]
    assert (last["xzqdm"], last["xzqmc"], last["rank"].strip()) == (CODE, NAME, ""), \
        "the last row is the county: xzqdm = county code, xzqmc = county name, no rank"


@pytest.mark.parametrize("which", ["2022", "range"])
def test_township_rows(runs, which):
    run = runs(which)
    rows, total = run.built.answers(run.batches)
    bad = []
    for code, _ in TOWNSHIPS:
        try:
            assert_township_row(run.out.township(code), rows[code])
        except AssertionError as e:
            bad.append(str(e))
    try:
        assert_township_row(run.out.township(CODE), total)
    except AssertionError as e:
        bad.append(str(e))
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("which", ["2022", "range"])
def test_ranking(runs, which):
    run = runs(which)
    order = RANK_2022 if which == "2022" else RANK_RANGE
    got = {r["xzqdm"]: r["rank"].strip() for r in run.out.townships[:-1]}
    assert got == {code: str(i + 1) for i, code in enumerate(order)}, (
        "rank: illegal 耕地 desc, then illegal area desc (both as reported, 2 decimals), "
        "then code")


def test_ratio_blank_or_four_decimals(run2022: Run):
    """Blank without new-construction 耕地 (丙乡, 丁乡, 辛镇); 0.0000 with legal 耕地 only
    (庚镇); 1.0000 with illegal 耕地 only (乙镇)."""
    got = {r["xzqdm"]: r["illegal_cultivated_ratio"].strip() for r in run2022.out.townships}
    for k in (3, 4, 8):
        assert got[T[k]] == "", f"{T[k]}: no new-construction 耕地 → blank ratio"
    assert got[T[7]] == "0.0000"
    assert got[T[2]] == "1.0000"


# ------------------------------------------------------------------ report.md narrative


def _norm(line: str) -> str:
    """Spacing around numbers is free (domain.md): compare without any whitespace."""
    return re.sub(r"\s+", "", line)


def expected_narrative(run: Run) -> tuple[str, list[str]]:
    rows, total = run.built.answers(run.batches)
    order = expected_ranking(rows)
    county = (f"{run.label} 年全县土地卫片执法共发现各类违法用地 {total.counts['n_illegal']} 宗，"
              f"总面积 {fmt2(total.mu('illegal'))} 亩（其中：耕地 "
              f"{total.counts['n_illegal_cultivated']} 宗，面积 "
              f"{fmt2(total.mu('illegal_cultivated'))} 亩）。")
    lines = []
    for code in order:
        t = rows[code]
        if t.counts["n_illegal"] == 0 and t.mu("illegal") < 0.005:
            continue
        n_c, a_c = t.counts["n_illegal_cultivated"], fmt2(t.mu("illegal_cultivated"))
        tail = "不涉及耕地。" if n_c == 0 and a_c == "0.00" else f"涉及耕地 {n_c} 宗，面积 {a_c} 亩。"
        lines.append(f"{len(lines) + 1}. {t.xzqmc}违法用地 {t.counts['n_illegal']} 宗，"
                     f"总面积 {fmt2(t.mu('illegal'))} 亩，{tail}")
    return county, lines


SEED_FOLLOW_UP = "各乡镇违法占用耕地面积从大到小依次排名如下。"


@pytest.mark.parametrize("which", ["2022", "range"])
def test_report_county_line(runs, which):
    run = runs(which)
    county, _ = expected_narrative(run)
    found = [_norm(l) for l in run.out.report.splitlines() if "全县土地卫片执法共发现" in l]
    assert len(found) == 1, f"report.md: expected one county line, found {found}"
    got = found[0].lstrip("#>*- ")
    assert got in (_norm(county), _norm(county) + SEED_FOLLOW_UP), \
        f"county line\nexpected {county}\ngot      {found[0]}"


@pytest.mark.parametrize("which", ["2022", "range"])
def test_report_township_lines(runs, which):
    run = runs(which)
    _, lines = expected_narrative(run)
    got = [_norm(l) for l in run.out.report.splitlines()
           if re.match(r"^\s*\d+\.\s*\S+?违法用地", l)]
    assert got == [_norm(l) for l in lines], (
        "township lines of report.md\nexpected:\n  " + "\n  ".join(lines) +
        "\ngot:\n  " + "\n  ".join(got))


def test_narrative_design(tmp_path):
    """The narrative this county must produce, spelt out (guards expected_narrative)."""
    built = StatsCounty(tmp_path)
    run = Run(built, ["2022"], "2022", None)  # type: ignore[arg-type]
    county, lines = expected_narrative(run)
    assert county.startswith("2022 年全县土地卫片执法共发现各类违法用地 10 宗，")
    assert county.endswith("（其中：耕地 3 宗，面积 2.01 亩）。")
    assert [l.split("违法用地")[0] for l in lines] == \
        ["1. 乙镇", "2. 甲镇", "3. 戊镇", "4. 己乡", "5. 丙乡", "6. 丁乡"]
    assert lines[0] == "1. 乙镇违法用地 2 宗，总面积 4.00 亩，涉及耕地 1 宗，面积 1.00 亩。"
    assert lines[2] == "3. 戊镇违法用地 1 宗，总面积 0.15 亩，涉及耕地 1 宗，面积 0.01 亩。"
    assert lines[3] == "4. 己乡违法用地 0 宗，总面积 0.01 亩，涉及耕地 0 宗，面积 0.01 亩。"
    assert lines[4] == "5. 丙乡违法用地 2 宗，总面积 2.50 亩，不涉及耕地。"
    range_county, range_lines = expected_narrative(Run(built, ["2021", "2022"], "2021—2022", None))  # type: ignore[arg-type]
    assert range_county.startswith("2021—2022 年全县土地卫片执法共发现各类违法用地 12 宗，")
    assert range_lines[0].startswith("1. 丙乡违法用地 3 宗，总面积 4.75 亩，涉及耕地 1 宗，面积 2.25 亩")
    assert range_lines[-1] == "7. 辛镇违法用地 1 宗，总面积 0.15 亩，不涉及耕地。"


# ------------------------------------------------------------------ classified.gpkg


def test_classified_gpkg(run2022: Run):
    path = run2022.out.out / "classified.gpkg"
    layers = [str(n) for n in pyogrio.list_layers(path)[:, 0]]
    assert "change_class" in layers
    df = pyogrio.read_dataframe(path, layer="change_class")
    missing = [c for c in POLYGON_COLUMNS if c not in df.columns]
    assert not missing, f"classified.gpkg change_class lacks columns {missing}"
    assert len(df) == len(run2022.out.polygons), "one feature per polygon"
    assert sorted(df["jcbh"].astype(str)) == sorted(run2022.out.polygons)
    assert not df.geometry.is_empty.any() and df.geometry.notna().all()


# ------------------------------------------------------------------ year ranges


@pytest.mark.parametrize("spelling", ["2021—2022", "2021~2022"])
def test_year_range_takes_every_batch_whose_year_is_in_it(database_url, run_cli, tmp_path, spelling):
    """Decision 10: a range takes every batch whose leading year lies in it, quarters
    included (2021Q4 and 2022, not 2020 or 2023Q1); the narrative label is 2021—2022."""
    c = CountyBuilder(tmp_path / "in", code=CODE, name=NAME)
    code, name = TOWNSHIPS[0]
    c.add_township(code, name, rect(496000, Y_LOW, 497000, Y_HIGH))
    batches = {"2020": "2020-06-30", "2021Q4": "2021-12-20", "2022": "2022-06-30",
               "2023Q1": "2023-03-20"}
    squares = {}
    for i, (batch, hsx) in enumerate(batches.items()):
        p = rect(bx(1) + 200 * i, BY, bx(1) + 200 * i + 20, BY + 20)  # 400 m², illegal
        squares[batch] = p
        c.add_change(batch, f"{CODE}{batch[:4]}{i + 1:04d}", p, hsx, "建设用地")
    toml = c.write()
    run_cli("run", str(toml), "--batch", spelling, "--out", str(tmp_path / "out"))
    out = Outputs.read(tmp_path / "out")
    assert sorted(r["batch"] for r in out.polygons.values()) == ["2021Q4", "2022"]
    total = sum(geodesic_area_m2(squares[b]) for b in ("2021Q4", "2022"))
    county = (f"2021—2022 年全县土地卫片执法共发现各类违法用地 2 宗，总面积 {fmt2(mu(total))} 亩"
              f"（其中：耕地 0 宗，面积 0.00 亩）。")
    found = [_norm(l) for l in out.report.splitlines() if "全县土地卫片执法共发现" in l]
    assert len(found) == 1 and found[0] in (_norm(county), _norm(county) + SEED_FOLLOW_UP), \
        f"county line\nexpected {county}\ngot      {found}"
    lines = [_norm(l) for l in out.report.splitlines() if re.match(r"^\s*\d+\.\s*\S+?违法用地", l)]
    assert lines == [_norm(f"1. {name}违法用地 2 宗，总面积 {fmt2(mu(total))} 亩，不涉及耕地。")]
