#!/usr/bin/env python3
"""Generate a large synthetic 地类图斑 (DLTB) layer for the ingest benchmark.

    python bench/generate_parcels.py --parcels 300000 [--fields standard|used] --out bench/out/county300k_standard

Writes, in EPSG:4546 (CGCS2000 3-degree Gauss-Kruger, CM 111E):

- ``DLTB.shp`` (UTF-8 ``.cpg``): N parcels that tile a square exactly.  Each
  parcel is a Voronoi cell whose edges are split every few metres and then bent
  by a smooth displacement field (the same field for every parcel, so
  neighbours keep sharing their edges): realistic parcels of a few tens of
  vertices, not squares.  Attributes as a 三调 DLTB export carries them: the
  30 fields of the database standard (BSM, YSDM, TBYBH, TBBH, DLBM, DLMC, QSXZ,
  QSDWDM, QSDWMC, ZLDWDM, ZLDWMC, TBMJ, KCDLBM, KCXS, KCMJ, TBDLMJ, GDLX,
  GDPDJB, XZDWKD, TBXHDM, TBXHMC, ZZSXDM, ZZSXMC, GDDB, FRDBS, CZCSXM, SJNF,
  MSSM, HDMC, BZ) at their widths (names 254 characters wide, the most a .dbf allows), DLBM as text;
  weipian reads 8 of them.  ``--fields used`` writes only those 8.
- ``XZQ.shp``: one township covering the square; ``JCTB.shp``: a few change
  polygons; ``county.toml`` listing the three (county.toml needs a township and
  a change layer besides the landuse layer).

The same seed gives the same files.  Everything is synthetic.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio
import shapely
from shapely.geometry import box

CRS = "EPSG:4546"
X0, Y0 = 500000.0, 3940000.0
MEAN_PARCEL_M2 = 5000.0
SEGMENT_M = 7.0          # edges are split every SEGMENT_M metres at most
WARP_M, WARP_WAVE_M = 1.2, 37.0  # displacement amplitude / wavelength (slope 0.2: no folds)

CLASSES = [  # DLBM, DLMC, weight, KCXS (cultivated parcels carry a 田坎 deduction)
    ("0101", "水田", 4, 0.08), ("0102", "水浇地", 10, 0.05), ("0103", "旱地", 30, 0.12),
    ("0201", "果园", 6, 0.0), ("0301", "乔木林地", 12, 0.0), ("0404", "其他草地", 5, 0.0),
    ("0702", "农村宅基地", 10, 0.0), ("0601", "工业用地", 2, 0.0), ("1003", "公路用地", 2, 0.0),
    ("1006", "农村道路", 6, 0.0), ("1107", "沟渠", 3, 0.0), ("1104", "坑塘水面", 2, 0.0),
    ("1202", "设施农用地", 2, 0.0), ("1203", "田坎", 3, 0.0), ("1205", "沙地", 1, 0.0),
    ("08H2", "科教文卫用地", 1, 0.0), ("05H1", "商业服务业设施用地", 1, 0.0),
]


def warp(coords: np.ndarray) -> np.ndarray:
    """A smooth one-to-one displacement of the plane (|slope| < 1, so no folds)."""
    x, y = coords[:, 0], coords[:, 1]
    k = 2 * math.pi / WARP_WAVE_M
    return np.column_stack([x + WARP_M * np.sin(k * y), y + WARP_M * np.sin(k * x)])


def parcels(n: int, seed: int) -> tuple[np.ndarray, float]:
    rng = np.random.default_rng(seed)
    side = math.sqrt(n * MEAN_PARCEL_M2)
    square = box(X0 - side / 2, Y0 - side / 2, X0 + side / 2, Y0 + side / 2)
    pts = rng.uniform(0, side, size=(n, 2)) + (X0 - side / 2, Y0 - side / 2)
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=square))
    cells = shapely.intersection(cells, square)  # clip the outer ring of cells to the square
    cells = shapely.segmentize(cells, SEGMENT_M)
    cells = shapely.transform(cells, warp)
    return cells, side


#: The fields of a 三调 DLTB and their Shapefile types (widths as a 三调 export has them).
STANDARD_FIELDS = {
    "BSM": "character(18)", "YSDM": "character(10)", "TBYBH": "character(18)", "TBBH": "character(8)",
    "DLBM": "character(5)", "DLMC": "character(60)", "QSXZ": "character(2)", "QSDWDM": "character(19)",
    "QSDWMC": "character(254)", "ZLDWDM": "character(19)", "ZLDWMC": "character(254)",
    "TBMJ": "numeric(15,2)", "KCDLBM": "character(5)", "KCXS": "numeric(6,4)", "KCMJ": "numeric(15,2)",
    "TBDLMJ": "numeric(15,2)", "GDLX": "character(2)", "GDPDJB": "character(2)", "XZDWKD": "numeric(5,1)",
    "TBXHDM": "character(6)", "TBXHMC": "character(20)", "ZZSXDM": "character(6)", "ZZSXMC": "character(20)",
    "GDDB": "integer(2)", "FRDBS": "character(1)", "CZCSXM": "character(4)", "SJNF": "integer(4)",
    "MSSM": "character(2)", "HDMC": "character(100)", "BZ": "character(254)",
}
VILLAGES = ["东关", "西关", "南坪", "北岭", "上庄", "下庄", "王家", "李家", "张家", "赵家"]


def attributes(rng: np.random.Generator, cells: np.ndarray, fields: str = "standard") -> pd.DataFrame:
    n = len(cells)
    weights = np.array([c[2] for c in CLASSES], dtype=float)
    pick = rng.choice(len(CLASSES), size=n, p=weights / weights.sum())
    dlbm = np.array([c[0] for c in CLASSES], dtype=object)[pick]
    dlmc = np.array([c[1] for c in CLASSES], dtype=object)[pick]
    kcxs = np.array([c[3] for c in CLASSES])[pick]
    tbmj = np.round(shapely.area(cells), 2)
    kcmj = np.round(tbmj * kcxs, 2)
    village = rng.integers(1, 300, size=n)
    zldwdm = [f"140824{100 + v // 30:03d}{v:03d}0000000"[:19] for v in village]
    df = pd.DataFrame({
        "BSM": [f"1408242{i:011d}" for i in range(n)],
        "DLBM": dlbm,
        "DLMC": dlmc,
        "ZLDWDM": zldwdm,
        "TBMJ": tbmj,
        "KCXS": kcxs,
        "KCMJ": kcmj,
        "TBDLMJ": np.round(tbmj - kcmj, 2),
    })
    if fields == "used":
        return df
    cultivated = kcxs > 0
    names = np.array([f"{VILLAGES[v % 10]}村民委员会" for v in range(10)], dtype=object)[village % 10]
    df = df.assign(
        YSDM="2001010100", TBYBH=[f"{i:08d}" for i in range(n)], TBBH=[str(i % 9999 + 1) for i in range(n)],
        QSXZ=rng.choice(["10", "20", "30"], n), QSDWDM=zldwdm, QSDWMC=names, ZLDWMC=names,
        KCDLBM=np.where(cultivated, "1203", None), GDLX=np.where(cultivated, "TT", None),
        GDPDJB=np.where(cultivated, rng.choice(["1", "2", "3"], n), None), XZDWKD=0.0,
        TBXHDM=None, TBXHMC=None, ZZSXDM=np.where(cultivated, "LS", None),
        ZZSXMC=np.where(cultivated, "粮食作物", None), GDDB=np.where(cultivated, rng.integers(1, 15, n), 0),
        FRDBS="0", CZCSXM=np.where(np.isin(dlbm, ["0702", "0601", "05H1", "08H2"]), "203", None),
        SJNF=2019, MSSM="00", HDMC=None, BZ=None)
    return df[list(STANDARD_FIELDS)]


def write_standard_widths(tmp: Path, path: Path) -> None:
    """Copy the Shapefile ``tmp`` to ``path`` with each field at its 三调 width (GDAL's ogr2ogr)."""
    import shutil
    import subprocess

    ogr = shutil.which("ogr2ogr") or sys.exit("ogr2ogr not found: apt-get install gdal-bin")
    select = ", ".join(f"CAST({f} AS {t}) AS {f}" for f, t in STANDARD_FIELDS.items())
    subprocess.run([ogr, "-f", "ESRI Shapefile", str(path), str(tmp), "-lco", "ENCODING=UTF-8",
                    "-sql", f"SELECT {select} FROM {tmp.stem}"], check=True)


def write(out: Path, n: int, seed: int, fields: str = "standard") -> None:
    out.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    cells, side = parcels(n, seed)
    df = attributes(np.random.default_rng(seed + 1), cells, fields)
    if fields == "used":
        pyogrio.write_dataframe(_gdf(df, cells), out / "DLTB.shp", encoding="UTF-8")
    else:
        with tempfile.TemporaryDirectory(dir=out) as tmp:
            pyogrio.write_dataframe(_gdf(df, cells), Path(tmp) / "DLTB.shp", encoding="UTF-8")
            for old in out.glob("DLTB.*"):  # ogr2ogr does not replace a Shapefile
                old.unlink()
            write_standard_widths(Path(tmp) / "DLTB.shp", out / "DLTB.shp")
    nv = shapely.get_num_coordinates(cells)
    print(f"DLTB.shp: {len(cells)} parcels, vertices per parcel: mean {nv.mean():.1f}, "
          f"median {np.median(nv):.0f}, max {nv.max()} ({time.perf_counter() - t:.1f} s)", file=sys.stderr)

    half = side / 2 + 10
    pyogrio.write_dataframe(_gdf(pd.DataFrame({"XZQDM": ["140824100"], "XZQMC": ["基准镇"]}),
                                 [box(X0 - half, Y0 - half, X0 + half, Y0 + half)]),
                            out / "XZQ.shp", encoding="UTF-8")
    changes = [box(X0 + 100 * i, Y0, X0 + 100 * i + 40, Y0 + 30) for i in range(10)]
    pyogrio.write_dataframe(_gdf(pd.DataFrame({
        "JCBH": [f"14082420220{i:03d}" for i in range(10)],
        "HSX": ["20220615"] * 10, "BHLX": ["建设用地"] * 10}), changes), out / "JCTB.shp", encoding="UTF-8")
    (out / "county.toml").write_text(
        '# Ingest benchmark county (bench/generate_parcels.py)\n\n'
        '[county]\ncode = "140824"\nname = "基准县"\ncrs = "EPSG:4546"\n\n'
        '[[layers]]\nkind = "township"\npath = "XZQ.shp"\n\n'
        '[[layers]]\nkind = "landuse"\npath = "DLTB.shp"\n\n'
        '[[layers]]\nkind = "change"\npath = "JCTB.shp"\nbatch = "2022"\n',
        encoding="utf-8")


def _gdf(df: pd.DataFrame, geoms):
    import geopandas as gpd

    return gpd.GeoDataFrame(df, geometry=list(geoms) if not isinstance(geoms, np.ndarray) else geoms, crs=CRS)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parcels", type=int, default=300_000)
    ap.add_argument("--out", type=Path, default=Path("bench/out/county300k_standard"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--fields", choices=["standard", "used"], default="standard",
                    help="the 30 fields of a 三调 DLTB (default), or only the 8 weipian reads")
    args = ap.parse_args()
    write(args.out, args.parcels, args.seed, args.fields)


if __name__ == "__main__":
    main()
