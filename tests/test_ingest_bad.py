"""What a user gets from bad input: the exact message, and every feature accounted for.

The ``bad`` fixture writes one folder of bad (and awkward but good) files, all
generated here, none hand-edited: ``bad/README.txt`` lists them. Two kinds of
cases:

- a whole layer that cannot be used (missing part, truncated file, unknown
  encoding, no or wrong CRS, required field absent, duplicate JCBH) stops the
  ingest before anything is written, with one line naming the file and what
  to do;
- single bad features (no geometry, broken rings, unreadable date, value
  outside its allowed set, outside the county) are repaired or set aside, and
  read = loaded + repaired + quarantined + clipped holds per layer.

Geometry is in EPSG:4546 around x = 500 000, y = 3 940 000 (CM 111E, 35.6N);
the county (its two townships) covers x 499 000..502 000, y 3 939 000..3 941 000.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from datetime import datetime
from pathlib import Path

import geopandas as gpd
import numpy as np
import openpyxl
import pandas as pd
import psycopg
import pyogrio
import pytest
import shapely
from shapely.geometry import Polygon, box

from pipeline import db
from pipeline.config import load_county
from pipeline.errors import DataSourceError
from pipeline.ingest import ingest

X0, Y0 = 500000.0, 3940000.0
CRS = "EPSG:4546"
DATE_HINT = "应为 20220315、2022-03-15 或 2022/3/15 格式"


def gdf(data: dict, geoms, crs=CRS) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(data, geometry=list(geoms), crs=crs)


def sq(x: float, y: float, s: float = 10.0) -> Polygon:
    return box(X0 + x, Y0 + y, X0 + x + s, Y0 + y + s)


def shp_parts(folder: Path, stem: str) -> list[Path]:
    return sorted(p for p in folder.glob(stem + ".*"))


def write_geojson(path: Path, features: list[tuple[dict, dict | None]], epsg: int = 4546) -> None:
    """GeoJSON written as text, so rings can be unclosed or too short (no library would write them)."""
    doc = {"type": "FeatureCollection",
           "crs": {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{epsg}"}},
           "features": [{"type": "Feature", "properties": props, "geometry": geom} for props, geom in features]}
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")


def ring(*xy: tuple[float, float]) -> list[list[float]]:
    return [[X0 + x, Y0 + y] for x, y in xy]


# ------------------------------------------------------------------ the folder

@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> Path:
    """One folder with every file the cases below use."""
    d = tmp_path_factory.mktemp("bad")
    notes = []

    def note(name: str, what: str) -> None:
        notes.append(f"{name:<28} {what}")

    # the county: two townships, a land-use layer
    gdf({"XZQDM": ["140824100", "140824101"], "XZQMC": ["甲镇", "乙镇"]},
        [box(X0 - 1000, Y0 - 1000, X0 + 1000, Y0 + 1000), box(X0 + 1000, Y0 - 1000, X0 + 2000, Y0 + 1000)]
        ).to_file(d / "XZQ.shp")
    note("XZQ.shp", "good: two townships (UTF-8 .cpg)")
    gdf({"DLBM": ["0103"]}, [box(X0 - 1000, Y0 - 1000, X0 + 2000, Y0 + 1000)]).to_file(d / "DLTB.gpkg", layer="DLTB")
    note("DLTB.gpkg", "good: one parcel, layer DLTB")

    # encodings
    gdf({"XZQDM": ["140824100"], "XZQMC": ["甲镇"]}, [box(X0 - 1000, Y0 - 1000, X0 + 2000, Y0 + 1000)]
        ).to_file(d / "xzq_gbk.shp", encoding="GBK")
    (d / "xzq_gbk.cpg").unlink()
    note("xzq_gbk.shp", "DBF in GBK, no .cpg")
    gdf({"XZQDM": ["140824100"], "XZQMC": ["甲镇"]}, [box(X0 - 1000, Y0 - 1000, X0 + 2000, Y0 + 1000)]
        ).to_file(d / "xzq_badcpg.shp", encoding="GBK")
    (d / "xzq_badcpg.cpg").write_text("UTF-8")
    note("xzq_badcpg.shp", "DBF in GBK, .cpg says UTF-8")
    (d / "wyhc_gbk.csv").write_bytes("JCBH,SFBH,PDLX\nC00,是,违法用地\n".encode("gbk"))
    note("wyhc_gbk.csv", "field checks in GBK")

    # truncated and missing parts
    three = gdf({"XZQDM": ["1", "2", "3"], "XZQMC": ["a", "b", "c"]}, [sq(0, 0), sq(20, 0), sq(40, 0)])
    for stem in ("trunc_shp", "trunc_dbf", "no_dbf", "no_prj"):
        three.to_file(d / f"{stem}.shp")
    with open(d / "trunc_shp.shp", "r+b") as f:
        f.truncate((d / "trunc_shp.shp").stat().st_size - 60)
    note("trunc_shp.shp", ".shp cut short by 60 bytes")
    with open(d / "trunc_dbf.dbf", "r+b") as f:
        f.truncate((d / "trunc_dbf.dbf").stat().st_size - 10)
    note("trunc_dbf.shp", ".dbf cut short by 10 bytes")
    (d / "no_dbf.dbf").unlink()
    note("no_dbf.shp", ".dbf missing")
    (d / "no_prj.prj").unlink()
    note("no_prj.shp", ".prj missing")
    (d / "broken.gpkg").write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 8)
    note("broken.gpkg", "not a database")

    # coordinates that disagree with their .prj
    gdf({"BSM": ["1"]}, [box(37499000, 3939000, 37502000, 3941000)]).to_file(d / "prefix_as_4546.shp")
    note("prefix_as_4546.shp", "zone-37-prefixed eastings under EPSG:4546")
    gdf({"BSM": ["1"]}, [box(110.9, 35.5, 111.1, 35.7)]).to_file(d / "lonlat_as_4546.shp")
    note("lonlat_as_4546.shp", "longitudes/latitudes under EPSG:4546")
    gdf({"BSM": ["1"]}, [box(499000, 3939000, 502000, 3941000)], crs="EPSG:4490").to_file(d / "metres_as_4490.shp")
    note("metres_as_4490.shp", "metres under EPSG:4490")
    gdf({"BSM": ["1"]}, [box(37499500, 3939500, 37500500, 3940500)], crs="EPSG:4525").to_file(d / "jbnt_4525.shp")
    note("jbnt_4525.shp", "good: EPSG:4525 (zone-prefixed), transformed to 4546")

    # fields
    gdf({"JCBH": ["C00"], "BHLX": ["建设用地"]}, [sq(0, 0)]).to_file(d / "jctb_no_hsx.shp")
    note("jctb_no_hsx.shp", "required field HSX absent")
    gdf({"JCBH": ["C00", "C01", "C00", "C02", "C01"], "HSX": ["20220601"] * 5, "BHLX": ["建设用地"] * 5},
        [sq(i * 20, 0) for i in range(5)]).to_file(d / "jctb_dup.shp")
    note("jctb_dup.shp", "JCBH C00 and C01 twice")

    # zip with two shapefiles; zip with one
    with zipfile.ZipFile(d / "two.zip", "w") as z:
        for stem in ("trunc_dbf", "no_prj"):  # any two shapefiles
            for p in shp_parts(d, "XZQ"):
                z.write(p, f"{stem}{p.suffix}")
    note("two.zip", "two shapefiles in one zip")
    gdf({"BSM": ["1", "2"], "DLBM": [" 0102 ", "103"]}, [sq(0, 0), sq(20, 0)]).to_file(d / "dltb_zip.shp")
    with zipfile.ZipFile(d / "DLTB_zip.zip", "w") as z:
        for p in shp_parts(d, "dltb_zip"):
            z.write(p, f"DLTB/{p.name}")
    note("DLTB_zip.zip", "good: zipped Shapefile in a folder")

    # one change layer holding every kind of bad feature (GeoJSON: rings as written)
    feats = [
        ({"JCBH": "C00", "HSX": "20220315", "BHLX": "建设用地"}, {"type": "Polygon", "coordinates": [
            ring((0, 0), (10, 0), (10, 10), (0, 10), (0, 0))]}),
        ({"JCBH": "C01", "HSX": "2022-03-15", "BHLX": "建设用地"}, None),
        ({"JCBH": "C02", "HSX": "2022/3/15", "BHLX": "建设用地"}, {"type": "Polygon", "coordinates": []}),
        ({"JCBH": "C03", "HSX": "20220315", "BHLX": "建设用地"}, {"type": "Polygon", "coordinates": [
            ring((40, 0), (50, 10), (50, 0), (40, 10), (40, 0))]}),                    # bow-tie
        ({"JCBH": "C04", "HSX": "20220315", "BHLX": "建设用地"}, {"type": "Polygon", "coordinates": [
            ring((60, 0), (70, 0), (65, 5), (70, 10), (60, 10), (65, 5), (60, 0))]}),  # touches itself at (65, 5)
        ({"JCBH": "C05", "HSX": "20220315", "BHLX": "建设用地"}, {"type": "Polygon", "coordinates": [
            ring((80, 0), (90, 0), (90, 10), (80, 10))]}),                            # ring not closed
        ({"JCBH": "C06", "HSX": "20220315", "BHLX": "建设用地"}, {"type": "Polygon", "coordinates": [
            ring((100, 0), (110, 0), (100, 0))]}),                                     # three points
        ({"JCBH": "C07", "HSX": "20220315", "BHLX": "建设用地"}, {"type": "Polygon", "coordinates": [
            ring((120, 0), (130, 0), (130, 0), (130, 10), (120, 10), (120, 10), (120, 0))]}),  # repeated vertices
        ({"JCBH": "C08", "HSX": "20220315", "BHLX": "建设用地"}, {"type": "Polygon", "coordinates": [
            [[X0 + x, Y0 + y, 512.5] for x, y in ((140, 0), (150, 0), (150, 10), (140, 10), (140, 0))]]}),  # Z
        ({"JCBH": "C09", "HSX": "20220315", "BHLX": "建设用地"}, {"type": "GeometryCollection", "geometries": [
            {"type": "Point", "coordinates": [X0 + 160, Y0]},
            {"type": "Polygon", "coordinates": [ring((160, 0), (170, 0), (170, 10), (160, 10), (160, 0))]}]}),
        ({"JCBH": "C10", "HSX": "20220315", "BHLX": "建设用地"}, {"type": "Point", "coordinates": [X0 + 180, Y0]}),
        ({"JCBH": "C11", "HSX": "20220315", "BHLX": "建设用地"}, {"type": "MultiPolygon", "coordinates": [
            [ring((200, 0), (210, 0), (210, 10), (200, 10), (200, 0))],
            [ring((220, 0), (230, 0), (230, 10), (220, 10), (220, 0))]]}),
        ({"JCBH": "C12", "HSX": "20220315", "BHLX": "建设用地"}, {"type": "Polygon", "coordinates": [
            ring((5000, 0), (5010, 0), (5010, 10), (5000, 10), (5000, 0))]}),          # 3 km outside the county
        ({"JCBH": "C13", "HSX": "2022/13/45", "BHLX": "建设用地"}, {"type": "Polygon", "coordinates": [
            ring((240, 0), (250, 0), (250, 10), (240, 10), (240, 0))]}),
        ({"JCBH": "C14", "HSX": "20220315", "BHLX": " "}, {"type": "Polygon", "coordinates": [
            ring((260, 0), (270, 0), (270, 10), (260, 10), (260, 0))]}),
    ]
    write_geojson(d / "jctb_geoms.geojson", feats)
    note("jctb_geoms.geojson", "one change polygon per geometry / value problem (C00..C14)")

    # reference layers: outside features, values outside the allowed set
    gdf({"BSM": ["in", "far", "across"]},
        [sq(0, 0), sq(6000, 0), box(X0 + 1900, Y0, X0 + 2100, Y0 + 100)]).to_file(d / "YJJBNTTB.shp")
    note("YJJBNTTB.shp", "farmland: one inside, one 4 km outside, one across the boundary")
    gdf({"GKLX": ["城镇开发边界", "其他"]}, [sq(0, 0, 500), sq(0, 600, 100)]).to_file(d / "GHGK.shp")
    note("GHGK.shp", "plan: GKLX '其他' outside the allowed values")

    # values: dates in every form, codes as numbers with spaces, lower-case field names
    gdf({"jcbh": ["D1", "D2", "D3", "D4"],
         "hsx": ["20220315", "2022-03-15", "2022/3/15", "2022年3月15日"],
         "Bhlx": ["建设用地"] * 4},
        [sq(i * 20, 100) for i in range(4)]).to_file(d / "jctb_dates.gpkg", layer="JCTB")
    dated = gdf({"BH": ["E1", "E2"], "HSX": pd.to_datetime(["2022-03-15", "2022-04-01"]), "BHLX": ["推填土"] * 2},
                [sq(0, 200), sq(20, 200)])
    dated.to_file(d / "jctb_datefield.gpkg", layer="JCTB")
    note("jctb_dates.gpkg", "HSX as 20220315, 2022-03-15, 2022/3/15, 2022年3月15日; lower-case names")
    note("jctb_datefield.gpkg", "HSX a date-time field; JCBH named BH (mapped)")
    pyogrio.write_dataframe(dated, d / "jctb_gdb.gdb", layer="JCTB", driver="OpenFileGDB")
    note("jctb_gdb.gdb", "File Geodatabase, layer JCTB")
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["JCBH", "SFBH", "PDLX", "HCRQ"])
    ws.append(["E1", "是", "违法用地", datetime(2022, 5, 6)])
    ws.append(["E2", " 否 ", None, 44687])          # a date cell that lost its format: 2022-05-06
    ws.append(["E3", "也许", None, "2022/5/6"])
    wb.save(d / "WYHC.xlsx")
    note("WYHC.xlsx", "field checks: a date cell, an Excel serial, SFBH '也许'")

    (d / "README.txt").write_text("Generated by tests/test_ingest_bad.py; do not edit.\n\n" + "\n".join(notes) + "\n",
                                  encoding="utf-8")
    return d


def county(folder: Path, bad: Path, layers: str, settings: str = "") -> Path:
    """county.toml in ``folder`` with the two good layers first; paths point into ``bad``."""
    toml = folder / "county.toml"
    body = textwrap.dedent(f"""\
        [county]
        code = "140824"
        name = "测试县"
        crs = "EPSG:4546"
        {settings}
        [[layers]]
        kind = "township"
        path = "{bad / 'XZQ.shp'}"

        [[layers]]
        kind = "landuse"
        path = "{bad / 'DLTB.gpkg'}"
        """) + textwrap.dedent(layers).replace("BAD/", f"{bad}/")
    if 'kind = "change"' not in body:
        body += textwrap.dedent(f"""
            [[layers]]
            kind = "change"
            path = "{bad / 'jctb_dates.gpkg'}"
            batch = "2022"
            """)
    toml.write_text(body, encoding="utf-8")
    return toml


@pytest.fixture
def conn(migrated_database_url):
    with db.connect(autocommit=True) as c:
        yield c


def count(conn, table: str) -> int:
    return conn.execute(f"SELECT count(*) FROM weipian.{table}").fetchone()[0]


def refused(conn, toml: Path, message: str) -> None:
    """The ingest stops with exactly ``message`` and writes nothing."""
    with pytest.raises(DataSourceError) as err:
        ingest(conn, load_county(toml))
    assert str(err.value) == message
    assert "\n" not in str(err.value)
    for table in ("source", "township", "landuse", "change_polygon", "quarantine"):
        assert count(conn, table) == 0, table


def numbers(r) -> tuple[int, int, int, int, int]:
    return r.n_read, r.n_loaded, r.n_repaired, r.n_quarantined, r.n_clipped


# ------------------------------------------------------------------ whole layers refused

def test_gbk_dbf_without_cpg_is_refused_with_the_encoding_it_reads_as(tmp_path, bad, conn):
    toml = county(tmp_path, bad, """
        [[layers]]
        kind = "township"
        path = "BAD/xzq_gbk.shp"
        """)
    refused(conn, toml, 'xzq_gbk.shp: xzq_gbk.dbf 没有 .cpg 编码文件，无法确定中文编码；字段 XZQMC 的文字按 GBK '
                        '可读作“甲镇”，请在 county.toml 中为该图层写 encoding = "GBK"')


def test_gbk_dbf_with_encoding_in_county_toml_reads_the_names(tmp_path, bad, conn):
    toml = county(tmp_path, bad, """
        [[layers]]
        kind = "township"
        path = "BAD/xzq_gbk.shp"
        encoding = "GBK"
        """)
    ingest(conn, load_county(toml))
    names = {r[0] for r in conn.execute("SELECT xzqmc FROM weipian.township")}
    assert names == {"甲镇", "乙镇"}


def test_cpg_that_does_not_match_the_bytes_is_refused(tmp_path, bad, conn):
    toml = county(tmp_path, bad, """
        [[layers]]
        kind = "township"
        path = "BAD/xzq_badcpg.shp"
        """)
    refused(conn, toml, "xzq_badcpg.shp: xzq_badcpg.dbf 的字段 XZQMC（第 1 条记录）按 .cpg（UTF-8） 指定的 UTF-8 "
                        '无法解码；按 GBK 可读作“甲镇”，请在 county.toml 中为该图层写 encoding = "GBK"')


def test_csv_in_gbk_is_refused_then_read_with_encoding(tmp_path, bad, conn):
    layer = """
        [[layers]]
        kind = "field_check"
        path = "BAD/wyhc_gbk.csv"
        """
    refused(conn, county(tmp_path, bad, layer),
            'wyhc_gbk.csv: 第 2 行按 UTF-8 无法解码；按 GBK 可读作“是”，请在 county.toml 中为该图层写 encoding = "GBK"')
    reports = ingest(conn, load_county(county(tmp_path, bad, layer + 'encoding = "GBK"\n')))
    assert conn.execute("SELECT jcbh, sfbh, pdlx FROM weipian.field_check").fetchall() == [("C00", "是", "illegal")]
    assert numbers(reports[2]) == (1, 1, 0, 0, 0)


@pytest.mark.parametrize("stem, message", [
    ("trunc_shp", "trunc_shp.shp: trunc_shp.shp 不完整（文件头记载 {declared} 字节，实际只有 {actual} 字节）；"
                  "文件可能在复制中被截断，请重新复制或导出该图层"),
    ("trunc_dbf", "trunc_dbf.shp: trunc_dbf.dbf 不完整（应有 {declared} 字节、3 条记录，实际只有 {actual} 字节）；"
                  "文件可能在复制中被截断，请重新复制或导出该图层"),
    ("no_dbf", "no_dbf.shp: 缺少 no_dbf.dbf（Shapefile 的属性表）；请把同名的 .shp、.shx、.dbf、.prj"
               "（以及 .cpg）放在同一文件夹中"),
])
def test_missing_or_truncated_shapefile_parts_are_refused(tmp_path, bad, conn, stem, message):
    part = bad / (f"{stem}.shp" if stem == "trunc_shp" else f"{stem}.dbf")
    actual = part.stat().st_size if part.exists() else 0
    if stem == "trunc_shp":
        declared = actual + 60
    elif stem == "trunc_dbf":  # header length + records x record length, from the DBF header
        head = part.read_bytes()[:12]
        declared = int.from_bytes(head[8:10], "little") + 3 * int.from_bytes(head[10:12], "little")
    else:
        declared = 0
    toml = county(tmp_path, bad, f"""
        [[layers]]
        kind = "plan"
        path = "BAD/{stem}.shp"
        """)
    refused(conn, toml, message.format(declared=declared, actual=actual))


def test_file_gdal_cannot_open_is_refused(tmp_path, bad, conn):
    toml = county(tmp_path, bad, """
        [[layers]]
        kind = "farmland"
        path = "BAD/broken.gpkg"
        """)
    with pytest.raises(DataSourceError, match=r"^broken.gpkg: GDAL 无法打开（.*）；文件可能损坏、不完整，或不是支持的格式"
                                              r"（Shapefile（.shp 或 .zip）、GeoPackage、File Geodatabase、GeoJSON）$"):
        ingest(conn, load_county(toml))
    assert count(conn, "source") == 0


def test_missing_file_is_refused_when_county_toml_is_read(tmp_path, bad):
    with pytest.raises(DataSourceError, match=r"^nothere.shp: 文件不存在（查找位置 .*nothere.shp）；"
                                              r"请检查 county.toml 中该图层的 path$"):
        load_county(county(tmp_path, bad, """
            [[layers]]
            kind = "farmland"
            path = "nothere.shp"
            """))


def test_zip_with_two_shapefiles_needs_a_layer(tmp_path, bad, conn):
    toml = county(tmp_path, bad, """
        [[layers]]
        kind = "plan"
        path = "BAD/two.zip"
        """)
    refused(conn, toml, "two.zip: zip 中有 2 个数据集（no_prj.shp, trunc_dbf.shp）；请在 county.toml 中用 "
                        'layer = "..." 指定其中一个（写文件名，不带扩展名）')


def test_no_prj_needs_crs(tmp_path, bad, conn):
    layer = """
        [[layers]]
        kind = "plan"
        path = "BAD/no_prj.shp"
        fields = { GKLX = "XZQMC" }
        """
    refused(conn, county(tmp_path, bad, layer),
            "no_prj.shp: 没有坐标系（缺少 .prj）；请补上 .prj，或在 county.toml 中为该图层写出它的真实坐标系，"
            '如 crs = "EPSG:4546"')
    reports = ingest(conn, load_county(county(tmp_path, bad, layer + 'crs = "EPSG:4546"\n')))
    # the values a, b, c are not plan types: every feature is quarantined, none lost
    assert numbers(reports[2]) == (3, 0, 0, 3, 0)


@pytest.mark.parametrize("name, message", [
    ("prefix_as_4546.shp",
     "prefix_as_4546.shp: 坐标与坐标系不符：.prj 为 EPSG:4546（CGCS2000 / 3-degree Gauss-Kruger CM 111E），"
     "坐标范围 X 37499000–37502000、Y 3939000–3941000，不在该坐标系的适用范围内；这些数字看起来是带带号的 3 度带"
     "高斯-克吕格坐标（第 37 带，中央经线 111°E，EPSG:4525）；请修正 .prj，或在 county.toml 中为该图层写 "
     'crs = "EPSG:4525"'),
    ("lonlat_as_4546.shp",
     "lonlat_as_4546.shp: 坐标与坐标系不符：.prj 为 EPSG:4546（CGCS2000 / 3-degree Gauss-Kruger CM 111E），"
     "坐标范围 X 110.9–111.1、Y 35.5–35.7，不在该坐标系的适用范围内；这些数字看起来是经纬度（CGCS2000 地理坐标 "
     'EPSG:4490）；请修正 .prj，或在 county.toml 中为该图层写 crs = "EPSG:4490"'),
    ("metres_as_4490.shp",
     "metres_as_4490.shp: 坐标与坐标系不符：.prj 为 EPSG:4490（China Geodetic Coordinate System 2000），"
     "坐标范围 X 499000–502000、Y 3939000–3941000，不在该坐标系的适用范围内；这些数字看起来是不带带号的 3 度带"
     "高斯-克吕格坐标（若中央经线为 111°E，即县工作坐标系 EPSG:4546）；请修正 .prj，或在 county.toml 中为该图层写 "
     'crs = "EPSG:4546"'),
])
def test_prj_that_disagrees_with_the_coordinates_is_refused(tmp_path, bad, conn, name, message):
    toml = county(tmp_path, bad, f"""
        [[layers]]
        kind = "farmland"
        path = "BAD/{name}"
        """)
    refused(conn, toml, message)


def test_wrong_crs_in_county_toml_is_refused_too(tmp_path, bad, conn):
    toml = county(tmp_path, bad, """
        [[layers]]
        kind = "farmland"
        path = "BAD/jbnt_4525.shp"
        crs = "EPSG:4546"
        """)
    with pytest.raises(DataSourceError, match=r"^jbnt_4525.shp: 坐标与坐标系不符：county.toml 中的 crs 为 EPSG:4546.*"
                                              r'crs = "EPSG:4525"$'):
        ingest(conn, load_county(toml))


def test_required_field_absent_and_bad_mapping(tmp_path, bad, conn):
    refused(conn, county(tmp_path, bad, """
        [[layers]]
        kind = "change"
        path = "BAD/jctb_no_hsx.shp"
        batch = "2022"
        """), 'jctb_no_hsx.shp: 缺少必填字段 HSX（现有字段：JCBH、BHLX）；如果它用了别的名字，请在 county.toml 中'
              '为该图层写 fields = { HSX = "源字段名" }')
    refused(conn, county(tmp_path, bad, """
        [[layers]]
        kind = "change"
        path = "BAD/jctb_no_hsx.shp"
        batch = "2022"
        fields = { HSX = "HSRQ" }
        """), "jctb_no_hsx.shp: county.toml 的 fields 把 HSX 映射到 'HSRQ'，但该图层没有这个字段（现有字段：JCBH、BHLX）")


def test_duplicate_jcbh_refused_with_the_list_and_old_load_kept(tmp_path, bad, conn):
    good = county(tmp_path, bad, "")
    ingest(conn, load_county(good))
    before = conn.execute("SELECT jcbh FROM weipian.change_polygon ORDER BY jcbh").fetchall()
    toml = county(tmp_path, bad, """
        [[layers]]
        kind = "change"
        path = "BAD/jctb_dup.shp"
        batch = "2022"
        """)
    with pytest.raises(DataSourceError) as err:
        ingest(conn, load_county(toml))
    assert str(err.value) == "jctb_dup.shp: 批次 2022 中监测编号 JCBH 重复：C00（2 次）、C01（2 次）；请修正后重新运行"
    assert conn.execute("SELECT jcbh FROM weipian.change_polygon ORDER BY jcbh").fetchall() == before


def test_whole_layer_error_from_the_cli_is_one_line_exit_2(tmp_path, bad, run_cli):
    toml = county(tmp_path, bad, """
        [[layers]]
        kind = "plan"
        path = "BAD/trunc_dbf.shp"
        """)
    done = run_cli("ingest", toml, check=False)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 or "migration" in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("错误 error: trunc_dbf.shp: trunc_dbf.dbf 不完整")
    assert "Traceback" not in done.stderr


# ------------------------------------------------------------------ single features

def test_every_bad_geometry_and_value_is_repaired_or_quarantined(tmp_path, bad, conn):
    toml = county(tmp_path, bad, """
        [[layers]]
        kind = "change"
        path = "BAD/jctb_geoms.geojson"
        batch = "2022"
        """)
    reports = ingest(conn, load_county(toml))
    r = reports[2]
    # loaded: C00 C07 (repeated vertices) C08 (Z dropped) C11 (multipart);
    # repaired: C03 bow-tie, C04 self-touching, C05 ring closed, C09 polygon of a collection
    assert numbers(r) == (15, 4, 4, 7, 0)
    reasons = dict(conn.execute(
        "SELECT attributes->>'JCBH', reason FROM weipian.quarantine ORDER BY feature_index").fetchall())
    assert reasons == {
        "C01": "几何为空",
        "C02": "几何为空",
        "C06": "几何无法解析（环的顶点少于 4 个）",
        "C10": "几何修复后无面状部分（POINT）",
        "C12": "位于县域外：距乡镇界超过 1000 米，不属于本县",
        "C13": f"HSX '2022/13/45' 不是日期，{DATE_HINT}",
        "C14": "BHLX 为空",
    }
    assert r.line().splitlines() == [
        "change      jctb_geoms.geojson: 读取 15 = 原样入库 4 + 修复后入库 4 + 隔离 7",
        "  隔离 jctb_geoms.geojson 要素 1（JCBH C01）：几何为空",
        "  隔离 jctb_geoms.geojson 要素 2（JCBH C02）：几何为空",
        "  隔离 jctb_geoms.geojson 要素 6（JCBH C06）：几何无法解析（环的顶点少于 4 个）",
        "  隔离 jctb_geoms.geojson 要素 10（JCBH C10）：几何修复后无面状部分（POINT）",
        "  隔离 jctb_geoms.geojson 要素 12（JCBH C12）：位于县域外：距乡镇界超过 1000 米，不属于本县",
        f"  隔离 jctb_geoms.geojson 要素 13（JCBH C13）：HSX '2022/13/45' 不是日期，{DATE_HINT}",
        "  隔离 jctb_geoms.geojson 要素 14（JCBH C14）：BHLX 为空",
    ]
    geoms = {j: (t, a, d) for j, t, a, d in conn.execute(
        "SELECT jcbh, GeometryType(geom), ST_Area(geom), ST_NDims(geom) FROM weipian.change_polygon")}
    assert set(geoms) == {"C00", "C03", "C04", "C05", "C07", "C08", "C09", "C11"}
    assert all(t == "MULTIPOLYGON" and d == 2 for t, _, d in geoms.values())
    assert geoms["C03"][1] == pytest.approx(50.0)   # the bow-tie: two triangles of 25 m²
    assert geoms["C04"][1] == pytest.approx(50.0)   # self-touching: two triangles
    assert geoms["C05"][1] == pytest.approx(100.0)  # the ring closed
    assert geoms["C07"][1] == pytest.approx(100.0)
    assert geoms["C09"][1] == pytest.approx(100.0)
    assert geoms["C11"][1] == pytest.approx(200.0)


def test_reference_features_outside_the_county_are_clipped_and_counted(tmp_path, bad, conn):
    toml = county(tmp_path, bad, """
        [[layers]]
        kind = "farmland"
        path = "BAD/YJJBNTTB.shp"
        """)
    reports = ingest(conn, load_county(toml))
    r = reports[2]
    assert numbers(r) == (3, 2, 0, 0, 1)
    assert r.line() == "farmland    YJJBNTTB.shp: 读取 3 = 原样入库 2 + 修复后入库 0 + 隔离 0 + 县域外裁除 1"
    rows = dict(conn.execute("SELECT bsm, ST_Area(geom) FROM weipian.farmland").fetchall())
    assert rows == {"in": pytest.approx(100.0), "across": pytest.approx(20000.0)}  # kept whole
    assert count(conn, "quarantine") == 0


def test_tolerance_is_a_setting(tmp_path, bad, conn):
    toml = county(tmp_path, bad, """
        [[layers]]
        kind = "farmland"
        path = "BAD/YJJBNTTB.shp"
        """, settings="[settings]\noutside_tolerance_m = 5000\n")
    assert numbers(ingest(conn, load_county(toml))[2]) == (3, 3, 0, 0, 0)


def test_value_outside_the_allowed_set_is_quarantined(tmp_path, bad, conn):
    toml = county(tmp_path, bad, """
        [[layers]]
        kind = "plan"
        path = "BAD/GHGK.shp"
        """)
    r = ingest(conn, load_county(toml))[2]
    assert numbers(r) == (2, 1, 0, 1, 0)
    assert r.quarantined == ["  隔离 GHGK.shp 要素 1（GKLX 其他）：GKLX '其他' 应为 城镇开发边界 或 生态保护红线"]


# ------------------------------------------------------------------ formats and values that must load

def test_dates_codes_and_field_names_in_every_form(tmp_path, bad, conn):
    toml = county(tmp_path, bad, """
        [[layers]]
        kind = "change"
        path = "BAD/jctb_dates.gpkg"
        layer = "JCTB"
        batch = "2022"

        [[layers]]
        kind = "change"
        path = "BAD/jctb_datefield.gpkg"
        batch = "2022Q2"
        fields = { JCBH = "bh" }

        [[layers]]
        kind = "change"
        path = "BAD/jctb_gdb.gdb"
        layer = "JCTB"
        batch = "2023"
        fields = { JCBH = "BH" }

        [[layers]]
        kind = "landuse"
        path = "BAD/DLTB_zip.zip"

        [[layers]]
        kind = "field_check"
        path = "BAD/WYHC.xlsx"
        """)
    reports = ingest(conn, load_county(toml))
    assert [numbers(r) for r in reports[2:]] == [(4, 4, 0, 0, 0), (2, 2, 0, 0, 0), (2, 2, 0, 0, 0),
                                                 (2, 2, 0, 0, 0), (3, 2, 0, 1, 0)]
    hsx = conn.execute("SELECT batch, jcbh, hsx::text FROM weipian.change_polygon ORDER BY batch, jcbh").fetchall()
    assert hsx == [("2022", "D1", "2022-03-15"), ("2022", "D2", "2022-03-15"), ("2022", "D3", "2022-03-15"),
                   ("2022", "D4", "2022-03-15"), ("2022Q2", "E1", "2022-03-15"), ("2022Q2", "E2", "2022-04-01"),
                   ("2023", "E1", "2022-03-15"), ("2023", "E2", "2022-04-01")]
    codes = conn.execute("""SELECT dlbm_source, dlbm, is_cultivated FROM weipian.landuse l
                            JOIN weipian.source s ON s.id = l.source_id WHERE s.path LIKE '%%.zip'
                            ORDER BY bsm""").fetchall()
    assert codes == [("0102", "0102", True), ("103", "0103", True)]
    fc = conn.execute("SELECT jcbh, sfbh, pdlx, hcrq::text FROM weipian.field_check ORDER BY jcbh").fetchall()
    assert fc == [("E1", "是", "illegal", "2022-05-06"), ("E2", "否", None, "2022-05-06")]
    assert reports[-1].quarantined == ["  隔离 WYHC.xlsx 要素 2（JCBH E3）：SFBH '也许' 应为 是 或 否"]


def test_zone_prefixed_source_is_transformed(tmp_path, bad, conn):
    toml = county(tmp_path, bad, """
        [[layers]]
        kind = "farmland"
        path = "BAD/jbnt_4525.shp"
        """)
    ingest(conn, load_county(toml))
    srid, xmin, ymin = conn.execute(
        "SELECT ST_SRID(geom), ST_XMin(geom), ST_YMin(geom) FROM weipian.farmland").fetchone()
    assert (srid, xmin, ymin) == (4546, pytest.approx(X0 - 500, abs=1e-3), pytest.approx(Y0 - 500, abs=1e-3))


# ------------------------------------------------------------------ dry run, replacement, kill

def test_dry_run_reports_the_same_and_writes_nothing(tmp_path, bad, conn):
    toml = county(tmp_path, bad, """
        [[layers]]
        kind = "change"
        path = "BAD/jctb_geoms.geojson"
        batch = "2022"
        """)
    dry = ingest(conn, load_county(toml), dry_run=True)
    assert [numbers(r) for r in dry] == [(2, 2, 0, 0, 0), (1, 1, 0, 0, 0), (15, 4, 4, 7, 0)]
    for table in ("county", "source", "township", "landuse", "change_polygon", "quarantine"):
        assert count(conn, table) == 0, table
    schemas = conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'weipian_ingest_%%'").fetchone()
    assert schemas == (0,)
    real = ingest(conn, load_county(toml))
    assert [r.line() for r in real] == [r.line() for r in dry]
    again = ingest(conn, load_county(toml), dry_run=True)
    assert all(r.skipped for r in again)


def test_dry_run_from_the_cli(tmp_path, bad, run_cli, database_url):
    toml = county(tmp_path, bad, """
        [[layers]]
        kind = "change"
        path = "BAD/jctb_geoms.geojson"
        batch = "2022"
        """)
    done = run_cli("ingest", toml, "--dry-run")
    lines = done.stderr.splitlines()
    assert "change      jctb_geoms.geojson: 读取 15 = 原样入库 4 + 修复后入库 4 + 隔离 7" in lines
    assert lines[-1] == "试运行 dry run：以上是将会入库的结果，数据库未作任何改动"
    with psycopg.connect(database_url) as c:
        assert c.execute("SELECT count(*) FROM weipian.source").fetchone() == (0,)


@pytest.mark.slow
def test_killed_ingest_leaves_the_previous_load_and_the_next_run_completes(tmp_path, migrated_database_url):
    """SIGKILL a real `python -m pipeline ingest` while it loads 200 000 parcels."""
    n = 200_000
    side = 20.0
    cols = int(np.sqrt(n))

    def parcels(path: Path, code: str) -> None:
        i = np.arange(n)
        x = X0 - 1000 + (i % cols) * side
        y = Y0 - 1000 + (i // cols) * side
        geoms = shapely.box(x, y, x + side, y + side)
        pyogrio.write_dataframe(gpd.GeoDataFrame({"BSM": i.astype(str), "DLBM": code}, geometry=geoms, crs=CRS),
                                path)

    gdf({"XZQDM": ["140824100"], "XZQMC": ["甲镇"]}, [box(X0 - 1000, Y0 - 1000, X0 + 9000, Y0 + 9000)]
        ).to_file(tmp_path / "XZQ.shp")
    gdf({"JCBH": ["C00"], "HSX": ["20220601"], "BHLX": ["建设用地"]}, [sq(0, 0)]).to_file(tmp_path / "JCTB.shp")
    parcels(tmp_path / "DLTB.shp", "0103")
    toml = tmp_path / "county.toml"
    toml.write_text(textwrap.dedent("""\
        [county]
        code = "140824"
        name = "测试县"
        crs = "EPSG:4546"
        [[layers]]
        kind = "township"
        path = "XZQ.shp"
        [[layers]]
        kind = "landuse"
        path = "DLTB.shp"
        [[layers]]
        kind = "change"
        path = "JCTB.shp"
        batch = "2022"
        """), encoding="utf-8")
    env = {**os.environ, "DATABASE_URL": migrated_database_url, "PYTHONIOENCODING": "utf-8"}
    env.pop("PGSERVICE", None)
    cmd = [sys.executable, "-m", "pipeline", "ingest", str(toml)]
    subprocess.run(cmd, env=env, check=True, capture_output=True)

    def state(c):
        return c.execute("""SELECT count(*), min(dlbm), max(dlbm), (SELECT checksum FROM weipian.source
                            WHERE kind = 'landuse') FROM weipian.landuse""").fetchone()

    with psycopg.connect(migrated_database_url, autocommit=True) as c:
        old = state(c)
    assert old[:3] == (n, "0103", "0103")

    parcels(tmp_path / "DLTB.shp", "0201")  # the file changes: the next ingest replaces the load
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with psycopg.connect(migrated_database_url, autocommit=True) as c:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            busy = c.execute("""SELECT count(*) FROM pg_stat_activity
                                WHERE datname = current_database() AND pid <> pg_backend_pid()
                                  AND (query LIKE 'COPY %%' OR query LIKE '%%stage_check%%')""").fetchone()[0]
            if busy:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the ingest finished before it could be killed"
        time.sleep(0.3)  # well inside the load: some batches copied, the old rows deleted (uncommitted)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        assert state(c) == old  # the transaction never committed: the previous load is whole
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, encoding="utf-8", timeout=300)
        assert done.returncode == 0, done.stderr
        assert f"landuse     DLTB.shp: 读取 {n} = 原样入库 {n} + 修复后入库 0 + 隔离 0" in done.stderr
        new = state(c)
        assert new[:3] == (n, "0201", "0201") and new[3] != old[3]
        left = c.execute("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'weipian_ingest_%%'").fetchone()
        assert left == (0,)
