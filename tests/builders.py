"""Build tiny counties on disk, and the answers they should give, by construction.

The known-answer tests (test_classification.py, test_outputs.py) describe a county
as shapely rectangles in EPSG:4546 (CGCS2000 3-degree Gauss-Kruger, CM 111E, near
x = 500000, y = 3940000, i.e. on the central meridian at about 35.6 N), write its
layers as real files (Shapefile, GeoPackage, CSV, XLSX) plus a ``county.toml`` in
the contract.md format, run the real CLI and read the real output files.

The expected numbers never come from the pipeline. Each case states which piece of
its polygon ends in which class and sub-type (e.g. "the left half of the square is
legal"); those pieces are shapely geometries, and their areas are measured here
with :func:`geodesic_area_m2`, an independent implementation of what domain.md
Decision 11 prescribes (vertices to EPSG:4490, Karney's geodesic polygon area on
GRS80, no densification).

All fixtures are made in code; no third-party data.
"""

from __future__ import annotations

import csv
import re
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import geopandas as gpd
import openpyxl
import pyproj
import shapely
from shapely.geometry import Polygon, box
from shapely.geometry.base import BaseGeometry
from shapely.geometry.polygon import orient
from shapely.ops import unary_union

PROJECT_ROOT = Path(__file__).resolve().parent.parent

WORK_CRS = "EPSG:4546"
X0, Y0 = 500000.0, 3940000.0
MU_PER_M2 = 0.0015  # 1 亩 = 10000/15 m²
TOL_M2 = 0.01  # polygons.csv areas are compared to 0.01 m²

COUNTY_CODE = "140824"
COUNTY_NAME = "测试县"

CLASSES = ("legal", "unchanged", "agri_adjust", "illegal")
SUBTYPES = ("bnpbj", "wnpbj", "wpxj", "lsyd_cq", "wbjy", "ssny_wba")

# contract.md, copied verbatim: the names and their order are the interface.
POLYGON_COLUMNS = [
    "jcbh", "batch", "xzqdm", "xzqmc", "class", "auto_class", "area_m2", "legal_m2",
    "unchanged_m2", "agri_m2", "illegal_m2", "cultivated_m2", "farmland_m2",
    "legal_cultivated_m2", "illegal_cultivated_m2", "illegal_farmland_m2", "bnpbj_m2",
    "wnpbj_m2", "wpxj_m2", "lsyd_cq_m2", "wbjy_m2", "ssny_wba_m2",
]
TOWNSHIP_COLUMNS = [
    "xzqdm", "xzqmc", "n_total", "n_legal", "n_unchanged", "n_agri", "n_illegal",
    "n_illegal_cultivated", "area_mu", "legal_mu", "unchanged_mu", "agri_mu", "illegal_mu",
    "illegal_cultivated_mu", "illegal_farmland_mu", "new_construction_mu",
    "new_cultivated_mu", "illegal_cultivated_ratio", "rank",
]
# class → its area column in polygons.csv
CLASS_COLUMN = {"legal": "legal_m2", "unchanged": "unchanged_m2",
                "agri_adjust": "agri_m2", "illegal": "illegal_m2"}

_TO_4490 = pyproj.Transformer.from_crs(WORK_CRS, "EPSG:4490", always_xy=True)
_GEOD = pyproj.Geod(ellps="GRS80")
EMPTY = Polygon()


# ------------------------------------------------------------------ geometry


def geodesic_area_m2(geom_in_4546: BaseGeometry | None) -> float:
    """Ellipsoidal area (m²) of a geometry given in EPSG:4546.

    Vertices go to EPSG:4490 (lon/lat), then Karney's polygon area on GRS80
    (= CGCS2000), as PostGIS ``ST_Area(ST_Transform(g, 4490)::geography)`` does:
    no densification of the edges. Polygons are oriented first (shell CCW, holes
    CW) so holes subtract; the sum is taken over every polygonal part.
    """
    if geom_in_4546 is None or geom_in_4546.is_empty:
        return 0.0
    total = 0.0
    for part in shapely.get_parts(geom_in_4546):
        if part.geom_type == "Polygon":
            polys = [part]
        elif part.geom_type == "MultiPolygon":
            polys = list(part.geoms)
        elif part.geom_type == "GeometryCollection":
            total += geodesic_area_m2(part)
            continue
        else:  # points and lines have no area
            continue
        for poly in polys:
            lonlat = shapely.transform(orient(poly, sign=1.0), _TO_4490.transform, interleaved=False)
            area, _perimeter = _GEOD.geometry_area_perimeter(lonlat)
            total += abs(area)
    return total


def rect(x0: float, y0: float, x1: float, y1: float) -> Polygon:
    """Axis-parallel rectangle; coordinates in EPSG:4546 metres."""
    return box(x0, y0, x1, y1)


def sub(p: Polygon, fx0: float, fx1: float, fy0: float = 0.0, fy1: float = 1.0) -> Polygon:
    """The part of rectangle ``p`` between fractions fx0..fx1 of its width and fy0..fy1
    of its height, e.g. ``sub(p, 0, 0.5)`` is the left half."""
    x0, y0, x1, y1 = p.bounds
    w, h = x1 - x0, y1 - y0
    return box(x0 + w * fx0, y0 + h * fy0, x0 + w * fx1, y0 + h * fy1)


def union(*geoms: BaseGeometry) -> BaseGeometry:
    geoms = [g for g in geoms if g is not None and not g.is_empty]
    return unary_union(geoms) if geoms else EMPTY


def net_factor(kcxs: float | None) -> float:
    """Share of a 耕地 parcel that is cultivated: 1 − KCXS, a KCXS above 1 being a
    percentage and a missing one 0 (domain.md Decision 12)."""
    if kcxs is None:
        return 1.0
    return 1.0 - (kcxs / 100.0 if kcxs > 1 else kcxs)


def mu(m2: float) -> float:
    return m2 * MU_PER_M2


def fmt2(x: float) -> str:
    """How a report shows 亩: 2 decimals, half up (on a value that is not near a tie)."""
    return str(Decimal(repr(x)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def assert_not_near_half(x: float, decimals: int = 2, what: str = "") -> None:
    """Guard of the test design: a constructed value must not sit on a rounding tie,
    or the 'expected as reported' value would be ambiguous."""
    scaled = x * 10**decimals
    frac = scaled - int(scaled)
    assert abs(frac - 0.5) > 1e-4, f"test design: {what} = {x!r} is too close to a rounding tie"


# ------------------------------------------------------------------ the county on disk


@dataclass
class Feature:
    attrs: dict
    geometry: BaseGeometry | None = None


@dataclass
class CountyBuilder:
    """A county described feature by feature, written by :meth:`write`.

    Approvals of type 临时用地 go to their own GeoPackage layer that has no PZLX
    field (``pzlx = "临时用地"`` in county.toml, as counties deliver them); all other
    approvals go to one Shapefile with a PZLX field.
    """

    root: Path
    code: str = COUNTY_CODE
    name: str = COUNTY_NAME
    settings: dict = field(default_factory=dict)
    townships: list[Feature] = field(default_factory=list)
    landuse: list[Feature] = field(default_factory=list)
    farmland: list[Feature] = field(default_factory=list)
    approvals: list[Feature] = field(default_factory=list)
    changes: dict[str, list[Feature]] = field(default_factory=dict)
    # (file name, batch or None, rows)
    field_checks: list[tuple[str, str | None, list[dict]]] = field(default_factory=list)

    # -- adding features

    def add_township(self, code: str, name: str, geom: Polygon) -> None:
        self.townships.append(Feature({"XZQDM": code, "XZQMC": name}, geom))

    def add_landuse(self, dlbm: str, geom: Polygon, kcxs: float | None = 0.0,
                    dlmc: str = "") -> None:
        n = len(self.landuse) + 1
        self.landuse.append(Feature(
            {"BSM": f"{n:06d}", "DLBM": dlbm, "DLMC": dlmc, "KCXS": kcxs}, geom))

    def add_farmland(self, geom: Polygon) -> None:
        n = len(self.farmland) + 1
        self.farmland.append(Feature({"BSM": f"{n:06d}", "DLBM": "0103"}, geom))

    def add_approval(self, pzlx: str, pzrq: str | None, geom: Polygon,
                     yxqz: str | None = None, pzwh: str | None = None) -> None:
        n = len(self.approvals) + 1
        self.approvals.append(Feature({
            "PZWH": pzwh or f"测试〔{(pzrq or '0000')[:4]}〕{n}号",
            "PZRQ": pzrq, "PZLX": pzlx, "YXQZ": yxqz, "XMMC": f"测试项目{n}",
        }, geom))

    def add_change(self, batch: str, jcbh: str, geom: Polygon, hsx: str, bhlx: str,
                   qsx: str | None = None, xzqdm: str = "140824999", jcmj: float = 1.0) -> None:
        """A change polygon. Its own XZQDM and JCMJ are deliberately wrong: the
        township and the area must be computed (Decision 14)."""
        self.changes.setdefault(batch, []).append(Feature({
            "JCBH": jcbh, "XZQDM": xzqdm, "QSX": qsx or f"{int(hsx[:4]) - 1}-10-15",
            "HSX": hsx, "JCMJ": jcmj, "BHLX": bhlx,
        }, geom))

    def add_field_checks(self, filename: str, rows: list[dict], batch: str | None = None) -> None:
        """A field_check layer (CSV or XLSX by the file name's suffix); rows hold
        JCBH and SFBH and/or PDLX. Layers are listed in county.toml in the order added."""
        self.field_checks.append((filename, batch, rows))

    # -- writing

    def _frame(self, feats: list[Feature], columns: list[str]) -> gpd.GeoDataFrame:
        data = {c: [f.attrs.get(c) for f in feats] for c in columns}
        return gpd.GeoDataFrame(data, geometry=[f.geometry for f in feats], crs=WORK_CRS)

    def write(self) -> Path:
        """Write every layer and county.toml; return the path of county.toml."""
        self.root.mkdir(parents=True, exist_ok=True)
        layers: list[dict] = []

        # 乡镇界 as a Shapefile with a UTF-8 .cpg (pyogrio writes it)
        self._frame(self.townships, ["XZQDM", "XZQMC"]).to_file(
            self.root / "XZQ.shp", engine="pyogrio", encoding="UTF-8")
        layers.append({"kind": "township", "path": "XZQ.shp"})

        # 地类图斑 as a GeoPackage layer; KCXS may be NULL
        dltb = self._frame(self.landuse, ["BSM", "DLBM", "DLMC", "KCXS"])
        dltb["KCXS"] = dltb["KCXS"].astype("float64")
        dltb.to_file(self.root / "DLTB.gpkg", layer="DLTB", engine="pyogrio")
        layers.append({"kind": "landuse", "path": "DLTB.gpkg", "layer": "DLTB"})

        if self.farmland:
            self._frame(self.farmland, ["BSM", "DLBM"]).to_file(
                self.root / "YJJBNTTB.shp", engine="pyogrio", encoding="UTF-8")
            layers.append({"kind": "farmland", "path": "YJJBNTTB.shp"})

        general = [f for f in self.approvals if f.attrs["PZLX"] != "临时用地"]
        temporary = [f for f in self.approvals if f.attrs["PZLX"] == "临时用地"]
        if general:
            df = self._frame(general, ["PZWH", "PZRQ", "PZLX", "YXQZ", "XMMC"])
            df["YXQZ"] = [v or "" for v in df["YXQZ"]]
            df["PZRQ"] = [v or "" for v in df["PZRQ"]]
            df.to_file(self.root / "SP.shp", engine="pyogrio", encoding="UTF-8")
            layers.append({"kind": "approval", "path": "SP.shp"})
        if temporary:
            self._frame(temporary, ["PZWH", "PZRQ", "YXQZ", "XMMC"]).to_file(
                self.root / "SP_LSYD.gpkg", layer="SP_LSYD", engine="pyogrio")
            layers.append({"kind": "approval", "path": "SP_LSYD.gpkg", "layer": "SP_LSYD",
                           "pzlx": "临时用地"})

        for batch, feats in self.changes.items():
            name = f"JCTB_{batch}.shp"
            df = self._frame(feats, ["JCBH", "XZQDM", "QSX", "HSX", "JCMJ", "BHLX"])
            df.to_file(self.root / name, engine="pyogrio", encoding="UTF-8")
            layers.append({"kind": "change", "path": name, "batch": batch})

        for filename, batch, rows in self.field_checks:
            cols = ["JCBH", "SFBH", "PDLX", "HCR", "HCRQ", "BZ"]
            path = self.root / filename
            if filename.lower().endswith(".csv"):
                with open(path, "w", encoding="utf-8", newline="") as f:
                    w = csv.writer(f)
                    w.writerow(cols)
                    for r in rows:
                        w.writerow([r.get(c) or "" for c in cols])
                entry = {"kind": "field_check", "path": filename, "encoding": "UTF-8"}
            else:
                wb = openpyxl.Workbook()
                ws = wb.active
                ws.title = "外业核查"
                ws.append(cols)
                for r in rows:
                    ws.append([r.get(c) for c in cols])
                wb.save(path)
                entry = {"kind": "field_check", "path": filename}
            if batch is not None:
                entry["batch"] = batch
            layers.append(entry)

        toml_path = self.root / "county.toml"
        toml_path.write_text(self._toml(layers), encoding="utf-8")
        return toml_path

    def _toml(self, layers: list[dict]) -> str:
        q = lambda v: json.dumps(v, ensure_ascii=False)  # a TOML basic string
        out = ["[county]", f"code = {q(self.code)}", f"name = {q(self.name)}",
               f"crs  = {q(WORK_CRS)}", ""]
        if self.settings:
            out.append("[settings]")
            out += [f"{k} = {v}" for k, v in self.settings.items()]
            out.append("")
        for lyr in layers:
            out.append("[[layers]]")
            out += [f"{k} = {q(v)}" for k, v in lyr.items()]
            out.append("")
        return "\n".join(out)

    # -- knowledge of the construction, for the expected values

    def cultivated_parcels(self) -> list[tuple[BaseGeometry, float]]:
        """(geometry, net share) of the 耕地 parcels (DLBM 0101/0102/0103) as built."""
        out = []
        for f in self.landuse:
            code = str(f.attrs["DLBM"]).strip()
            code = code.zfill(4) if code.isdigit() and len(code) == 3 else code
            if code[:4] in ("0101", "0102", "0103"):
                out.append((f.geometry, net_factor(f.attrs["KCXS"])))
        return out

    def farmland_union(self) -> BaseGeometry:
        return union(*(f.geometry for f in self.farmland))

    def township_geoms(self) -> dict[str, BaseGeometry]:
        return {f.attrs["XZQDM"]: f.geometry for f in self.townships}

    def township_names(self) -> dict[str, str]:
        return {f.attrs["XZQDM"]: f.attrs["XZQMC"] for f in self.townships}


# ------------------------------------------------------------------ expected answers


@dataclass
class Expected:
    """What one change polygon must give, as pieces stated by the case.

    ``pieces`` maps each class to the geometry of P it covers, ``subtypes`` maps
    sub-type ids (bnpbj, wnpbj, wpxj, lsyd_cq, wbjy, ssny_wba) to geometries; classes
    and sub-types not named are empty. ``xzqdm`` is the township the case says the
    polygon belongs to.
    """

    jcbh: str
    batch: str
    polygon: Polygon
    cls: str
    auto: str
    pieces: dict[str, BaseGeometry]
    subtypes: dict[str, BaseGeometry] = field(default_factory=dict)
    xzqdm: str | None = None

    def __post_init__(self) -> None:
        # guard the construction itself: pieces tile P, sub-types tile legal/illegal
        p = self.polygon
        tiles = [self.pieces.get(c, EMPTY) for c in CLASSES]
        assert abs(union(*tiles).area - p.area) < 1e-6 and abs(sum(t.area for t in tiles) - p.area) < 1e-6, \
            f"test design: pieces of {self.jcbh} do not tile the polygon"
        for cls, subs in (("legal", ("bnpbj", "wnpbj")),
                          ("illegal", ("wpxj", "lsyd_cq", "wbjy", "ssny_wba"))):
            total = sum(self.subtypes.get(s, EMPTY).area for s in subs)
            assert abs(total - self.pieces.get(cls, EMPTY).area) < 1e-6, \
                f"test design: {cls} sub-types of {self.jcbh} do not add up"

    def piece(self, cls: str) -> BaseGeometry:
        return self.pieces.get(cls, EMPTY)

    def row(self, county: CountyBuilder) -> dict[str, float | str]:
        """Expected polygons.csv values (areas in m², unrounded)."""
        parcels = county.cultivated_parcels()
        farm = county.farmland_union()

        def cult(g: BaseGeometry) -> float:
            return sum(geodesic_area_m2(g.intersection(pg)) * k for pg, k in parcels)

        r: dict[str, float | str] = {
            "jcbh": self.jcbh, "batch": self.batch, "class": self.cls, "auto_class": self.auto,
            "area_m2": geodesic_area_m2(self.polygon),
            "cultivated_m2": cult(self.polygon),
            "farmland_m2": geodesic_area_m2(self.polygon.intersection(farm)),
            "legal_cultivated_m2": cult(self.piece("legal")),
            "illegal_cultivated_m2": cult(self.piece("illegal")),
            "illegal_farmland_m2": geodesic_area_m2(self.piece("illegal").intersection(farm)),
        }
        for c in CLASSES:
            r[CLASS_COLUMN[c]] = geodesic_area_m2(self.piece(c))
        for s in SUBTYPES:
            r[f"{s}_m2"] = geodesic_area_m2(self.subtypes.get(s, EMPTY))
        if self.xzqdm is not None:
            r["xzqdm"] = self.xzqdm
            r["xzqmc"] = county.township_names().get(self.xzqdm, "")
        return r


@dataclass
class TownshipExpect:
    """Expected township_stats.csv values, unrounded (m² sums and counts)."""

    xzqdm: str
    xzqmc: str
    counts: dict[str, int] = field(default_factory=dict)  # n_total, n_legal, ...
    m2: dict[str, float] = field(default_factory=dict)    # area, legal, ... in m²

    def mu(self, key: str) -> float:
        return mu(self.m2.get(key, 0.0))

    @property
    def ratio(self) -> float | None:
        nc = self.m2.get("new_cultivated", 0.0)
        return None if nc <= 0 else self.m2.get("illegal_cultivated", 0.0) / nc


def expected_township_stats(county: CountyBuilder, expected: list[Expected]
                            ) -> tuple[dict[str, TownshipExpect], TownshipExpect]:
    """Per-township and county sums of the constructed pieces (domain.md Decision 5):
    counts go to the polygon's township (``Expected.xzqdm``); areas go to the
    township each piece lies in, computed by cutting the constructed pieces with the
    constructed township rectangles; the county row takes everything."""
    parcels = county.cultivated_parcels()
    farm = county.farmland_union()
    towns = county.township_geoms()
    names = county.township_names()
    rows = {code: TownshipExpect(code, names[code]) for code in towns}
    total = TownshipExpect(county.code, county.name)

    def cult(g: BaseGeometry) -> float:
        return sum(geodesic_area_m2(g.intersection(pg)) * k for pg, k in parcels)

    def add(t: TownshipExpect, e: Expected, clip: BaseGeometry | None) -> None:
        cut = (lambda g: g) if clip is None else (lambda g: g.intersection(clip))
        legal, illegal = cut(e.piece("legal")), cut(e.piece("illegal"))
        vals = {
            "area": geodesic_area_m2(cut(e.polygon)),
            "legal": geodesic_area_m2(legal),
            "unchanged": geodesic_area_m2(cut(e.piece("unchanged"))),
            "agri": geodesic_area_m2(cut(e.piece("agri_adjust"))),
            "illegal": geodesic_area_m2(illegal),
            "illegal_cultivated": cult(illegal),
            "legal_cultivated": cult(legal),
            "illegal_farmland": geodesic_area_m2(illegal.intersection(farm)),
        }
        vals["new_construction"] = vals["legal"] + vals["illegal"]
        vals["new_cultivated"] = vals["legal_cultivated"] + vals["illegal_cultivated"]
        for k, v in vals.items():
            t.m2[k] = t.m2.get(k, 0.0) + v

    def count(t: TownshipExpect, e: Expected, parcels_illegal_cult: float) -> None:
        c = t.counts
        c["n_total"] = c.get("n_total", 0) + 1
        key = {"legal": "n_legal", "unchanged": "n_unchanged",
               "agri_adjust": "n_agri", "illegal": "n_illegal"}[e.cls]
        c[key] = c.get(key, 0) + 1
        if e.cls == "illegal" and mu(parcels_illegal_cult) >= 0.005:
            c["n_illegal_cultivated"] = c.get("n_illegal_cultivated", 0) + 1

    for e in expected:
        ic = cult(e.piece("illegal"))
        for code, g in towns.items():
            add(rows[code], e, g)
        add(total, e, None)
        count(total, e, ic)
        if e.xzqdm in rows:
            count(rows[e.xzqdm], e, ic)
    for t in list(rows.values()) + [total]:
        for k in ("n_total", "n_legal", "n_unchanged", "n_agri", "n_illegal", "n_illegal_cultivated"):
            t.counts.setdefault(k, 0)
    return rows, total


def expected_ranking(rows: dict[str, TownshipExpect]) -> list[str]:
    """Township codes in rank order: illegal 耕地 desc, then illegal area desc, both
    as reported (2 decimals), then code (Decision 8)."""
    def key(t: TownshipExpect):
        return (-Decimal(fmt2(t.mu("illegal_cultivated"))), -Decimal(fmt2(t.mu("illegal"))), t.xzqdm)
    return [t.xzqdm for t in sorted(rows.values(), key=key)]


# ------------------------------------------------------------------ running and reading


def pipeline_env(database_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PGSERVICE", None)
    env["DATABASE_URL"] = database_url
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def run_pipeline(database_url: str, *args: str) -> subprocess.CompletedProcess:
    """``python -m pipeline *args`` against ``database_url``; raise with the output on failure."""
    proc = subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=PROJECT_ROOT,
                          env=pipeline_env(database_url), capture_output=True, text=True,
                          encoding="utf-8", errors="replace", timeout=900)
    if proc.returncode != 0:
        raise AssertionError(
            f"weipian {' '.join(args)} exited {proc.returncode}\n"
            f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    return proc


@dataclass
class Outputs:
    """The files a ``weipian run --out DIR`` wrote, read back."""

    out: Path
    polygon_header: list[str]
    polygons: dict[str, dict[str, str]]
    township_header: list[str]
    townships: list[dict[str, str]]
    report: str

    @classmethod
    def read(cls, out: Path) -> "Outputs":
        ph, prows = read_csv(out / "polygons.csv")
        th, trows = read_csv(out / "township_stats.csv")
        polygons = {}
        for r in prows:
            assert r["jcbh"] not in polygons, f"polygons.csv: jcbh {r['jcbh']} twice"
            polygons[r["jcbh"]] = r
        return cls(out, ph, polygons, th, trows, (out / "report.md").read_text(encoding="utf-8"))

    def township(self, code: str) -> dict[str, str]:
        rows = [r for r in self.townships if r["xzqdm"] == code]
        assert len(rows) == 1, f"township_stats.csv: {len(rows)} rows for xzqdm {code}"
        return rows[0]


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [dict(zip(header, r)) for r in reader if r]
    return header, rows


def num(s: str) -> float:
    """A number cell of an output CSV (an empty cell is 0)."""
    s = (s or "").strip()
    return 0.0 if s == "" else float(s)


def run_county(database_url: str, county: CountyBuilder, batch: str, out: Path) -> Outputs:
    toml = county.write()
    run_pipeline(database_url, "run", str(toml), "--batch", batch, "--out", str(out))
    return Outputs.read(out)


# ------------------------------------------------------------------ township_stats rows

COUNT_COLUMNS = ["n_total", "n_legal", "n_unchanged", "n_agri", "n_illegal", "n_illegal_cultivated"]
MU_COLUMNS = {  # township_stats column → key of TownshipExpect.m2
    "area_mu": "area", "legal_mu": "legal", "unchanged_mu": "unchanged", "agri_mu": "agri",
    "illegal_mu": "illegal", "illegal_cultivated_mu": "illegal_cultivated",
    "illegal_farmland_mu": "illegal_farmland", "new_construction_mu": "new_construction",
    "new_cultivated_mu": "new_cultivated",
}
_MU_RE = re.compile(r"^-?\d+\.\d{2}$")
_RATIO_RE = re.compile(r"^\d+\.\d{4}$")


def township_row_mismatches(got: dict[str, str], exp: TownshipExpect,
                            counts: bool = True, areas: bool = True) -> list[str]:
    """Differences between a township_stats.csv row and its expected values.

    亩 must be written with 2 decimals and be the unrounded expected sum rounded
    (|reported − exact| ≤ 0.005); the ratio 4 decimals (≤ 0.00005), blank when there is
    no new-construction 耕地.
    """
    bad = []
    if got.get("xzqmc", "").strip() != exp.xzqmc:
        bad.append(f"xzqmc: expected {exp.xzqmc!r}, got {got.get('xzqmc')!r}")
    if counts:
        for col in COUNT_COLUMNS:
            try:
                g = int(got[col])
            except ValueError:
                bad.append(f"{col}: {got[col]!r} is not an integer")
                continue
            if g != exp.counts[col]:
                bad.append(f"{col}: expected {exp.counts[col]}, got {g}")
    if areas:
        for col, key in MU_COLUMNS.items():
            s, x = got[col].strip(), exp.mu(key)
            if not _MU_RE.match(s):
                bad.append(f"{col}: {s!r} is not 亩 with 2 decimals (expected {fmt2(x)})")
            elif abs(float(s) - x) > 0.005 + 1e-9:
                bad.append(f"{col}: expected {fmt2(x)} ({x:.5f}), got {s}")
        s, r = got["illegal_cultivated_ratio"].strip(), exp.ratio
        if r is None:
            if s != "":
                bad.append(f"illegal_cultivated_ratio: expected blank, got {s!r}")
        elif not _RATIO_RE.match(s):
            bad.append(f"illegal_cultivated_ratio: {s!r} is not a ratio with 4 decimals "
                       f"(expected {r:.4f})")
        elif abs(float(s) - r) > 0.00005 + 1e-9:
            bad.append(f"illegal_cultivated_ratio: expected {r:.4f} ({r:.6f}), got {s}")
    return bad


def assert_township_row(got: dict[str, str], exp: TownshipExpect,
                        counts: bool = True, areas: bool = True) -> None:
    bad = township_row_mismatches(got, exp, counts, areas)
    assert not bad, f"township_stats {exp.xzqdm} {exp.xzqmc}:\n  " + "\n  ".join(bad)


# ------------------------------------------------------------------ polygons.csv rows

NUMERIC_COLUMNS = [
    "area_m2", "legal_m2", "unchanged_m2", "agri_m2", "illegal_m2", "cultivated_m2",
    "farmland_m2", "legal_cultivated_m2", "illegal_cultivated_m2", "illegal_farmland_m2",
    "bnpbj_m2", "wnpbj_m2", "wpxj_m2", "lsyd_cq_m2", "wbjy_m2", "ssny_wba_m2",
]


def assert_row(got: dict[str, str] | None, exp: dict, case: str) -> None:
    """Compare one polygons.csv row with its expected values; report every mismatch."""
    assert got is not None, f"{case}: jcbh {exp['jcbh']} missing from polygons.csv"
    bad = []
    for col in ("class", "auto_class", "batch", "xzqdm", "xzqmc"):
        if col in exp and got.get(col, "").strip() != exp[col]:
            bad.append(f"{col}: expected {exp[col]!r}, got {got.get(col)!r}")
    for col in NUMERIC_COLUMNS:
        g = num(got[col])
        if abs(g - exp[col]) > TOL_M2:
            bad.append(f"{col}: expected {exp[col]:.4f}, got {g:.4f} (diff {g - exp[col]:+.4f})")
    assert not bad, f"{case} (jcbh {exp['jcbh']}):\n  " + "\n  ".join(bad)
