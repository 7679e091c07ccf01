"""Ingest against a real PostGIS: formats, field mapping, CRS, repair, skipping, refusals."""

from __future__ import annotations

import textwrap
from pathlib import Path

import geopandas as gpd
import pytest
from shapely.geometry import Polygon, box

from pipeline import db, digests
from pipeline.config import load_county
from pipeline.errors import ConfigError, DataSourceError
from pipeline.ingest import ingest

X0, Y0 = 500000.0, 3940000.0
CRS = "EPSG:4546"


def write_county(folder: Path, layers: str) -> Path:
    toml = folder / "county.toml"
    toml.write_text(textwrap.dedent("""\
        [county]
        code = "140824"
        name = "测试县"
        crs = "EPSG:4546"
        """) + textwrap.dedent(layers), encoding="utf-8")
    return toml


def base_layers(folder: Path) -> str:
    gpd.GeoDataFrame({"XZQDM": ["140824100"], "XZQMC": ["甲镇"]},
                     geometry=[box(X0, Y0, X0 + 1000, Y0 + 1000)], crs=CRS).to_file(folder / "xzq.shp")
    gpd.GeoDataFrame({"DLBM": ["0103"]}, geometry=[box(X0, Y0, X0 + 1000, Y0 + 1000)],
                     crs=CRS).to_file(folder / "dltb.gpkg", layer="DLTB")
    return """
        [[layers]]
        kind = "township"
        path = "xzq.shp"

        [[layers]]
        kind = "landuse"
        path = "dltb.gpkg"
        layer = "DLTB"
        """


def change_layer(folder: Path, name: str = "jctb.shp", **cols) -> None:
    geoms = cols.pop("geometry", None) or [box(X0 + 10, Y0 + 10, X0 + 20, Y0 + 20)]
    data = {"JCBH": ["1"], "HSX": ["20220601"], "BHLX": ["建设用地"]}
    data.update(cols)
    gpd.GeoDataFrame(data, geometry=geoms, crs=CRS).to_file(folder / name)


CHANGE = """
        [[layers]]
        kind = "change"
        path = "jctb.shp"
        batch = "2022"
        """


@pytest.fixture
def conn(migrated_database_url):
    with db.connect(autocommit=True) as c:
        yield c


def count(conn, table: str) -> int:
    return conn.execute(f"SELECT count(*) FROM weipian.{table}").fetchone()[0]


def test_unchanged_file_is_skipped_and_changed_file_replaces(tmp_path, conn):
    change_layer(tmp_path)
    county = load_county(write_county(tmp_path, base_layers(tmp_path) + CHANGE))
    first = ingest(conn, county)
    assert [r.skipped for r in first] == [False, False, False]
    assert count(conn, "change_polygon") == 1

    second = ingest(conn, county)
    assert all(r.skipped for r in second)
    assert count(conn, "change_polygon") == 1

    change_layer(tmp_path, JCBH=["1", "2"], HSX=["20220601", "20220602"], BHLX=["建设用地", "推填土"],
                 geometry=[box(X0, Y0, X0 + 5, Y0 + 5), box(X0 + 50, Y0, X0 + 60, Y0 + 5)])
    third = ingest(conn, county)
    assert [r.skipped for r in third] == [True, True, False]
    assert sorted(r[0] for r in conn.execute("SELECT jcbh FROM weipian.change_polygon")) == ["1", "2"]
    assert count(conn, "source") == 3


def test_change_polygons_are_stored_neighbours_together_not_in_file_order(tmp_path, conn):
    # two groups of five, 900 m apart, alternating in the file; the classification
    # takes polygons in table order, and neighbours in a row find the same parcels
    # in cache: each group is stored in one run (PostGIS's geometry sort)
    west = [box(X0 + 20 + 3 * i, Y0 + 20, X0 + 22 + 3 * i, Y0 + 22) for i in range(5)]
    east = [box(X0 + 920 + 3 * i, Y0 + 920, X0 + 922 + 3 * i, Y0 + 922) for i in range(5)]
    geoms = [g for pair in zip(west, east) for g in pair]
    change_layer(tmp_path, JCBH=[f"{'W' if i % 2 == 0 else 'E'}{i}" for i in range(10)],
                 HSX=["20220601"] * 10, BHLX=["建设用地"] * 10, geometry=geoms)
    ingest(conn, load_county(write_county(tmp_path, base_layers(tmp_path) + CHANGE)))
    order = [r[0][0] for r in conn.execute("SELECT jcbh FROM weipian.change_polygon ORDER BY ctid")]
    assert sorted(order) == ["E"] * 5 + ["W"] * 5
    assert sum(a != b for a, b in zip(order, order[1:])) == 1, order


def test_a_large_load_empties_the_table_only_when_it_holds_nothing_else(tmp_path, conn, monkeypatch):
    """Every load counts as large here: its table is emptied (TRUNCATE, then COPY FREEZE)
    when it holds no other rows than those the load replaces, never another county's,
    and a rollback brings the old rows and the indexes back."""
    from pipeline import ingest as ingest_module

    monkeypatch.setattr(ingest_module, "BULK_INDEX_MIN", 1)
    conn.execute("CREATE EXTENSION IF NOT EXISTS pg_visibility")

    def county(code: str, dlbm: str):
        folder = tmp_path / code
        folder.mkdir(exist_ok=True)
        layers = base_layers(folder) + CHANGE
        change_layer(folder)
        gpd.GeoDataFrame({"DLBM": [dlbm, dlbm]}, geometry=[box(X0, Y0, X0 + 500, Y0 + 1000),
                                                          box(X0 + 500, Y0, X0 + 1000, Y0 + 1000)],
                         crs=CRS).to_file(folder / "dltb.gpkg", layer="DLTB")
        toml = write_county(folder, layers)
        toml.write_text(toml.read_text(encoding="utf-8").replace("140824", code), encoding="utf-8")
        return load_county(toml)

    def landuse():
        return sorted(conn.execute("SELECT county_code, dlbm, count(*) FROM weipian.landuse GROUP BY 1, 2"))

    def frozen_pages():
        return conn.execute("SELECT all_frozen FROM pg_visibility_map_summary('weipian.landuse')").fetchone()[0]

    def indexes():
        keys = [r[0] for r in conn.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                                           "WHERE conrelid = 'weipian.landuse'::regclass AND contype = 'p'")]
        return keys + sorted(r[0] for r in conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'weipian' AND tablename = 'landuse'"))

    before = indexes()
    assert len(before) == 4 and before[0] == "PRIMARY KEY (id)"
    ingest(conn, county("140824", "0103"))
    assert landuse() == [("140824", "0103", 2)]
    assert frozen_pages() == 1, "loaded into the emptied table: frozen"

    ingest(conn, county("140824", "0201"), dry_run=True)  # emptied, then rolled back
    assert landuse() == [("140824", "0103", 2)]
    assert indexes() == before

    ingest(conn, county("140824", "0201"))  # changed, and the only rows there: emptied again
    assert landuse() == [("140824", "0201", 2)]
    assert frozen_pages() == 1

    ingest(conn, county("140825", "0103"))  # another county: added beside, not emptied
    assert landuse() == [("140824", "0201", 2), ("140825", "0103", 2)]
    assert frozen_pages() == 0, "the other county's rows, on the same page, are not frozen"
    ingest(conn, county("140824", "0301"))  # the first county changes again: the other's rows stay
    assert landuse() == [("140824", "0301", 2), ("140825", "0103", 2)]
    assert indexes() == before


def test_a_load_into_an_emptied_table_writes_next_to_no_wal(tmp_path, conn, monkeypatch):
    """Under the embedded database's wal_level = minimal, the rows and indexes of a table
    emptied in the load's transaction are synced at commit instead of written to the WAL.
    The WAL the load writes is compared with what the table and its indexes take on disk."""
    import numpy as np
    import shapely

    from pipeline import ingest as ingest_module

    assert conn.execute("SHOW wal_level").fetchone()[0] == "minimal"
    monkeypatch.setattr(ingest_module, "BULK_INDEX_MIN", 1)
    i = np.arange(20_000)
    x, y = X0 + (i % 100) * 10.0, Y0 + (i // 100) * 5.0
    layers = base_layers(tmp_path) + CHANGE
    change_layer(tmp_path)
    gpd.GeoDataFrame({"DLBM": ["0103"] * len(i), "BSM": i.astype(str)},
                     geometry=shapely.buffer(shapely.points(x + 5, y + 2.5), 2.0, quad_segs=4),
                     crs=CRS).to_file(tmp_path / "dltb.gpkg", layer="DLTB")
    before = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
    ingest(conn, load_county(write_county(tmp_path, layers)))
    wal, size = conn.execute(
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s), pg_total_relation_size('weipian.landuse')",
        (before,)).fetchone()
    assert count(conn, "landuse") == 20_000
    assert size > 2 * 2**20, "larger than wal_skip_threshold: synced at commit, not logged"
    assert wal < size / 4, f"{wal} bytes of WAL for {size} bytes of table and indexes"


def test_digests_started_early_are_the_digests_and_a_file_changed_since_is_hashed_again(tmp_path, conn):
    # what the command line does: start hashing when county.toml is read, ingest after
    change_layer(tmp_path)
    county = load_county(write_county(tmp_path, base_layers(tmp_path) + CHANGE))
    digests.start(county)
    first = ingest(conn, county)
    assert [r.skipped for r in first] == [False, False, False]
    towns = [digests.checksum(layer) for layer in county.layers_of("township")]
    extra = digests.township_extra(county, towns)
    stored = dict(conn.execute("SELECT kind, checksum FROM weipian.source").fetchall())
    assert stored == {"township": towns[0],
                      "landuse": digests.checksum(county.layers[1], extra),
                      "change": digests.checksum(county.layers[2], extra)}

    digests.start(county)  # nothing changed: every layer skipped
    assert all(r.skipped for r in ingest(conn, county))

    digests.start(county)
    change_layer(tmp_path, JCBH=["7"])  # written after the hashing started
    third = ingest(conn, county)
    assert [r.skipped for r in third] == [True, True, False]
    assert [r[0] for r in conn.execute("SELECT jcbh FROM weipian.change_polygon")] == ["7"]


def test_a_number_that_is_not_a_number_sets_its_parcel_aside(tmp_path, conn):
    # KCXS given as text: a blank is a missing coefficient (0), "abc" is no number at all:
    # that parcel is quarantined with the value named, the others load
    layers = base_layers(tmp_path)  # its landuse file is replaced by these four parcels
    (tmp_path / "dltb.gpkg").unlink()
    gpd.GeoDataFrame({"BSM": ["1", "2", "3", "4"], "DLBM": ["0103"] * 4, "KCXS": ["0.1", "abc", " ", "15"]},
                     geometry=[box(X0 + 100 * i, Y0, X0 + 100 * i + 50, Y0 + 50) for i in range(4)],
                     crs=CRS).to_file(tmp_path / "dltb.gpkg", layer="DLTB")
    change_layer(tmp_path)
    county = load_county(write_county(tmp_path, layers + CHANGE))
    r = ingest(conn, county)[1]
    assert (r.n_read, r.n_loaded, r.n_quarantined) == (4, 3, 1)
    assert r.quarantined == ["  隔离 dltb.gpkg:DLTB 要素 1（BSM 2）：KCXS 'abc' 不是数字，请改为数值或留空"]
    assert dict(conn.execute("SELECT bsm, kcxs FROM weipian.landuse").fetchall()) == {"1": 0.1, "3": 0.0, "4": 0.15}


@pytest.mark.parametrize("name", ["dltb.shp", "dltb.gpkg"])
def test_a_parcel_set_aside_keeps_the_fields_the_pipeline_does_not_read(tmp_path, conn, monkeypatch, name):
    # only the mapped fields are read in bulk; a parcel set aside is quarantined with
    # every field of the file, read again by its FID (0-based in a Shapefile, from 1
    # in a GeoPackage), here in batches of two so that the two bad parcels lie in
    # different batches
    monkeypatch.setattr("pipeline.ingest.BATCH_SIZE", 2)
    layers = base_layers(tmp_path)
    (tmp_path / "dltb.gpkg").unlink()
    path = tmp_path / name
    gpd.GeoDataFrame({"BSM": ["1", "2", "3", "4", "5"], "DLBM": ["0103"] * 5,
                      "KCXS": ["0.1", "abc", "0.2", "x", "0.3"],
                      "QSDWMC": ["甲村", "乙村民委员会", "丙村", "丁村", "戊村"],
                      "GDDB": [1, 7, 3, 9, 5], "BZ": [None, "二号", None, None, "五号"]},
                     geometry=[box(X0 + 100 * i, Y0, X0 + 100 * i + 50, Y0 + 50) for i in range(5)],
                     crs=CRS).to_file(path, **({"layer": "DLTB"} if name.endswith(".gpkg") else {"encoding": "UTF-8"}))
    change_layer(tmp_path)
    county = load_county(write_county(tmp_path, layers.replace('path = "dltb.gpkg"', f'path = "{name}"') + CHANGE))
    r = ingest(conn, county)[1]
    assert (r.n_read, r.n_loaded, r.n_quarantined) == (5, 3, 2)
    assert dict(conn.execute("SELECT bsm, kcxs FROM weipian.landuse").fetchall()) == {"1": 0.1, "3": 0.2, "5": 0.3}
    kept = [row[0] for row in conn.execute("SELECT attributes FROM weipian.quarantine ORDER BY feature_index")]
    assert kept == [
        {"BSM": "2", "DLBM": "0103", "KCXS": "abc", "QSDWMC": "乙村民委员会", "GDDB": "7", "BZ": "二号"},
        {"BSM": "4", "DLBM": "0103", "KCXS": "x", "QSDWMC": "丁村", "GDDB": "9", "BZ": None},
    ]


def test_field_mapping_case_and_constant_pzlx(tmp_path, conn):
    change_layer(tmp_path)
    gpd.GeoDataFrame({"wh": ["临〔2022〕1号"], "RiQi": ["2022/3/5"], "yxq": [20230101]},
                     geometry=[box(X0, Y0, X0 + 100, Y0 + 100)], crs=CRS).to_file(tmp_path / "lsyd.shp")
    layers = base_layers(tmp_path) + CHANGE + """
        [[layers]]
        kind = "approval"
        path = "lsyd.shp"
        pzlx = "临时用地"
        fields = { PZWH = "WH", PZRQ = "riqi", YXQZ = "YXQ" }
        """
    ingest(conn, load_county(write_county(tmp_path, layers)))
    row = conn.execute("SELECT pzwh, pzrq::text, pzlx, yxqz::text FROM weipian.approval").fetchone()
    assert row == ("临〔2022〕1号", "2022-03-05", "临时用地", "2023-01-01")


def test_geographic_source_is_transformed_to_working_crs(tmp_path, conn):
    square = box(X0 + 100, Y0 + 100, X0 + 200, Y0 + 200)
    lonlat = gpd.GeoSeries([square], crs=CRS).to_crs("EPSG:4490")
    gpd.GeoDataFrame({"BSM": ["1"]}, geometry=lonlat, crs="EPSG:4490").to_file(tmp_path / "jbnt.shp")
    change_layer(tmp_path)
    layers = base_layers(tmp_path) + CHANGE + """
        [[layers]]
        kind = "farmland"
        path = "jbnt.shp"
        """
    ingest(conn, load_county(write_county(tmp_path, layers)))
    srid, xmin, ymin = conn.execute(
        "SELECT ST_SRID(geom), ST_XMin(geom), ST_YMin(geom) FROM weipian.farmland").fetchone()
    assert srid == 4546
    assert xmin == pytest.approx(X0 + 100, abs=1e-4)
    assert ymin == pytest.approx(Y0 + 100, abs=1e-4)
    # transformed by ingest (pyproj) to exactly the coordinates PostGIS's ST_Transform gives
    same = conn.execute(
        """SELECT ST_AsBinary(geom) = ST_AsBinary(ST_Multi(ST_Transform(ST_GeomFromWKB(%s, 4490), 4546)))
           FROM weipian.farmland""", (gpd.read_file(tmp_path / "jbnt.shp").geometry.iloc[0].wkb,)).fetchone()[0]
    assert same


def test_bad_features_are_quarantined_and_counted(tmp_path, conn):
    bowtie = Polygon([(X0, Y0), (X0 + 10, Y0 + 10), (X0 + 10, Y0), (X0, Y0 + 10), (X0, Y0)])
    change_layer(
        tmp_path,
        JCBH=["1", "2", "3", "4"],
        HSX=["20220601", "2022/13/45", "20220601", "20220601"],
        BHLX=["建设用地"] * 4,
        geometry=[box(X0, Y0, X0 + 5, Y0 + 5), box(X0 + 20, Y0, X0 + 25, Y0 + 5), bowtie, None],
    )
    county = load_county(write_county(tmp_path, base_layers(tmp_path) + CHANGE))
    reports = {r.layer.kind: r for r in ingest(conn, county)}
    r = reports["change"]
    assert (r.n_read, r.n_loaded, r.n_repaired, r.n_quarantined) == (4, 1, 1, 2)
    reasons = dict(conn.execute("SELECT feature_index, reason FROM weipian.quarantine").fetchall())
    assert "HSX '2022/13/45' 不是日期" in reasons[1]
    assert reasons[3] == "几何为空"
    # the bow-tie was repaired into two triangles of 25 m² each
    area = conn.execute("SELECT ST_Area(geom) FROM weipian.change_polygon WHERE jcbh = '3'").fetchone()[0]
    assert area == pytest.approx(50.0)


def test_missing_required_field_stops_before_writing(tmp_path, conn):
    gpd.GeoDataFrame({"JCBH": ["1"], "BHLX": ["建设用地"]}, geometry=[box(X0, Y0, X0 + 5, Y0 + 5)],
                     crs=CRS).to_file(tmp_path / "jctb.shp")
    county = load_county(write_county(tmp_path, base_layers(tmp_path) + CHANGE))
    with pytest.raises(DataSourceError, match=r"^jctb.shp: 缺少必填字段 HSX（现有字段：JCBH、BHLX）；如果它用了别的名字，请在 county.toml 中为该图层写 fields = \{ HSX = \"源字段名\" \}$"):
        ingest(conn, county)
    assert count(conn, "source") == 0
    assert count(conn, "township") == 0


def test_duplicate_jcbh_refused_with_the_list(tmp_path, conn):
    change_layer(tmp_path, JCBH=["7", "7", "8"], HSX=["20220601"] * 3, BHLX=["建设用地"] * 3,
                 geometry=[box(X0, Y0, X0 + 5, Y0 + 5)] * 3)
    county = load_county(write_county(tmp_path, base_layers(tmp_path) + CHANGE))
    with pytest.raises(DataSourceError, match=r"JCBH 重复：7（2 次）"):
        ingest(conn, county)
    assert count(conn, "change_polygon") == 0


def test_missing_file_and_unknown_kind_are_refused(tmp_path):
    with pytest.raises(DataSourceError, match=r"^nothere.shp: 文件不存在（查找位置 .*nothere.shp）；请检查 county.toml 中该图层的 path$"):
        load_county(write_county(tmp_path, """
            [[layers]]
            kind = "township"
            path = "nothere.shp"
            """))
    with pytest.raises(ConfigError, match=r"unknown kind 'roads'"):
        load_county(write_county(tmp_path, """
            [[layers]]
            kind = "roads"
            path = "county.toml"
            """))


def test_source_without_prj_needs_crs(tmp_path, conn):
    change_layer(tmp_path)
    (tmp_path / "jctb.prj").unlink()
    county = load_county(write_county(tmp_path, base_layers(tmp_path) + CHANGE))
    with pytest.raises(DataSourceError, match=r"^jctb.shp: 没有坐标系（缺少 .prj）；请补上 .prj，或在 county.toml 中为该图层写出它的真实坐标系，如 crs = \"EPSG:4546\"$"):
        ingest(conn, county)
    fixed = load_county(write_county(tmp_path, base_layers(tmp_path) + CHANGE + 'crs = "EPSG:4546"\n'))
    ingest(conn, fixed)
    assert count(conn, "change_polygon") == 1


def test_field_checks_from_csv_and_xlsx(tmp_path, conn):
    import openpyxl

    change_layer(tmp_path)
    (tmp_path / "wyhc.csv").write_text("jcbh,sfbh,pdlx\n1,是,违法用地\n2,否,\n3,也许,\n", encoding="utf-8-sig")
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["JCBH", "SFBH", "PDLX", "HCRQ"])
    ws.append([1, "是", "合法用地", None])
    wb.save(tmp_path / "wyhc.xlsx")
    layers = base_layers(tmp_path) + CHANGE + """
        [[layers]]
        kind = "field_check"
        path = "wyhc.csv"
        batch = "2022"

        [[layers]]
        kind = "field_check"
        path = "wyhc.xlsx"
        """
    reports = ingest(conn, load_county(write_county(tmp_path, layers)))
    fc = [r for r in reports if r.layer.kind == "field_check"]
    assert [(r.n_read, r.n_loaded, r.n_quarantined) for r in fc] == [(3, 2, 1), (1, 1, 0)]
    rows = conn.execute(
        "SELECT jcbh, sfbh, pdlx, batch FROM weipian.field_check ORDER BY layer_index, feature_index").fetchall()
    assert rows == [("1", "是", "illegal", "2022"), ("2", "否", None, "2022"), ("1", "是", "legal", None)]


def test_clean_parcels_copied_directly_match_those_repaired_in_postgis(tmp_path, conn):
    """Clean parcels skip the staging table; repaired ones go through it: same codes either way.

    Each attribute set is given twice: on a clean square (copied straight into
    weipian.landuse) and on a bow-tie (staged, repaired by PostGIS). The
    expected values are those of domain.md Decision 12 and the KCXS rule.
    """
    gpd.GeoDataFrame({"XZQDM": ["140824100"], "XZQMC": ["甲镇"]},
                     geometry=[box(X0, Y0, X0 + 1000, Y0 + 1000)], crs=CRS).to_file(tmp_path / "xzq.shp")
    cases = [  # DLBM as delivered, KCXS → dlbm, land_group, is_cultivated, kcxs
        ("103", 15.0, "0103", "agricultural", True, 0.15),
        (" 0201 ", None, "0201", "agricultural", False, 0.0),
        ("0702", 0.2, "0702", "construction", False, 0.2),
        ("9", None, "09", "construction", False, 0.0),
        ("ABCD", 1.0, "ABCD", "unused", False, 1.0),
    ]
    rows, geoms = [], []
    for i, (dlbm, kcxs, *_) in enumerate(cases):
        x = X0 + 100 * i
        rows += [{"BSM": f"c{i}", "DLBM": dlbm, "KCXS": kcxs}, {"BSM": f"b{i}", "DLBM": dlbm, "KCXS": kcxs}]
        geoms += [box(x, Y0, x + 10, Y0 + 10),
                  Polygon([(x, Y0 + 50), (x + 10, Y0 + 60), (x + 10, Y0 + 50), (x, Y0 + 60), (x, Y0 + 50)])]
    two_parts = box(X0, Y0 + 500, X0 + 10, Y0 + 510).union(box(X0 + 30, Y0 + 500, X0 + 40, Y0 + 510))
    rows += [{"BSM": "multi", "DLBM": "0101", "KCXS": None}, {"BSM": "far", "DLBM": "0101", "KCXS": None}]
    geoms += [two_parts, box(X0 + 9000, Y0, X0 + 9010, Y0 + 10)]  # the last: 8 km outside the county
    gpd.GeoDataFrame(rows, geometry=geoms, crs=CRS).to_file(tmp_path / "dltb.shp")
    change_layer(tmp_path)
    layers = """
        [[layers]]
        kind = "township"
        path = "xzq.shp"

        [[layers]]
        kind = "landuse"
        path = "dltb.shp"
        """ + CHANGE
    reports = {r.layer.kind: r for r in ingest(conn, load_county(write_county(tmp_path, layers)))}

    r = reports["landuse"]
    assert (r.n_read, r.n_loaded, r.n_repaired, r.n_quarantined, r.n_clipped) == (12, 6, 5, 0, 1)
    got = {row[0]: row[1:] for row in conn.execute(
        "SELECT bsm, dlbm, land_group, is_cultivated, kcxs, dlbm_source FROM weipian.landuse")}
    for i, (dlbm, _kcxs, want_dlbm, group, cultivated, kcxs) in enumerate(cases):
        for bsm in (f"c{i}", f"b{i}"):
            assert got[bsm][:3] == (want_dlbm, group, cultivated), bsm
            assert got[bsm][3] == pytest.approx(kcxs), bsm
            assert got[bsm][4] == dlbm.strip(), bsm
    assert "far" not in got
    # a polygon goes in as a one-part MultiPolygon, a MultiPolygon keeps its parts; both in the county's SRID
    shapes = dict(conn.execute(
        """SELECT bsm, (GeometryType(geom), ST_SRID(geom), ST_NumGeometries(geom), ST_Area(geom))::text
           FROM weipian.landuse WHERE bsm IN ('c0', 'multi')""").fetchall())
    assert shapes == {"c0": "(MULTIPOLYGON,4546,1,100)", "multi": "(MULTIPOLYGON,4546,2,200)"}
    exact = conn.execute(
        "SELECT ST_Equals(geom, ST_GeomFromText(%s, 4546)) FROM weipian.landuse WHERE bsm = 'multi'",
        (two_parts.wkt,)).fetchone()[0]
    assert exact


def test_outside_means_farther_than_the_tolerance_from_the_townships(tmp_path, conn):
    """990 m from the county is inside the default 1 000 m, 1 010 m is outside; clean or repaired alike."""
    gpd.GeoDataFrame({"XZQDM": ["140824100"], "XZQMC": ["甲镇"]},
                     geometry=[box(X0, Y0, X0 + 1000, Y0 + 1000)], crs=CRS).to_file(tmp_path / "xzq.shp")
    east = X0 + 1000

    def bowtie(x, y):
        return Polygon([(x, y), (x + 10, y + 10), (x + 10, y), (x, y + 10), (x, y)])

    geoms = [box(east + 990, Y0, east + 1000, Y0 + 10), box(east + 1010, Y0, east + 1020, Y0 + 10),
             bowtie(east + 990, Y0 + 100), bowtie(east + 1010, Y0 + 100)]
    gpd.GeoDataFrame({"BSM": ["near", "far", "near_bowtie", "far_bowtie"], "DLBM": ["0103"] * 4},
                     geometry=geoms, crs=CRS).to_file(tmp_path / "dltb.shp")
    change_layer(tmp_path, JCBH=["near", "far"], HSX=["20220601"] * 2, BHLX=["建设用地"] * 2,
                 geometry=[box(east + 990, Y0 + 200, east + 1000, Y0 + 210),
                           box(east + 1010, Y0 + 200, east + 1020, Y0 + 210)])
    layers = """
        [[layers]]
        kind = "township"
        path = "xzq.shp"

        [[layers]]
        kind = "landuse"
        path = "dltb.shp"
        """ + CHANGE
    reports = {r.layer.kind: r for r in ingest(conn, load_county(write_county(tmp_path, layers)))}
    lu, ch = reports["landuse"], reports["change"]
    assert (lu.n_read, lu.n_loaded, lu.n_repaired, lu.n_quarantined, lu.n_clipped) == (4, 1, 1, 0, 2)
    assert sorted(r[0] for r in conn.execute("SELECT bsm FROM weipian.landuse")) == ["near", "near_bowtie"]
    assert (ch.n_read, ch.n_loaded, ch.n_quarantined) == (2, 1, 1)
    assert conn.execute("SELECT jcbh FROM weipian.change_polygon").fetchall() == [("near",)]


def test_a_table_whose_analyze_was_rolled_back_is_analysed_before_classifying(tmp_path, conn):
    # ANALYZE in a transaction that is rolled back still tells the statistics
    # counters "analysed"; the statistics themselves are gone with the transaction
    from pipeline import classify

    change_layer(tmp_path)
    ingest(conn, load_county(write_county(tmp_path, base_layers(tmp_path) + CHANGE)))
    with conn.transaction(force_rollback=True):
        conn.execute("ANALYZE weipian.change_polygon")
    assert conn.execute("SELECT count(*) FROM pg_stats WHERE schemaname = 'weipian'"
                        " AND tablename = 'change_polygon'").fetchone()[0] == 0
    assert "change_polygon" in classify.analyze_stale(conn)
    assert conn.execute("SELECT count(*) FROM pg_stats WHERE schemaname = 'weipian'"
                        " AND tablename = 'change_polygon'").fetchone()[0] > 0
    assert "change_polygon" not in classify.analyze_stale(conn)
