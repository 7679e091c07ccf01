"""The polygons of a Shapefile read from its own bytes (shapefile.PolygonRecords) are GDAL's.

No database here: each case writes a real Shapefile with GDAL (pyogrio), sometimes
patches its bytes as a broken export would leave them, and compares what
PolygonRecords reads with what GDAL reads from the same file, byte for byte.
"""

from __future__ import annotations

import struct

import geopandas as gpd
import numpy as np
import pyogrio
import pyogrio.raw
import pytest
import shapely
from shapely.geometry import MultiPolygon, Polygon, box

from pipeline import shapefile

CRS = "EPSG:4546"
X0, Y0 = 500000.0, 3940000.0


def parcel(i: int, n: int = 12) -> Polygon:
    """A closed ring of ``n`` vertices around a centre, clockwise as Shapefiles store outer rings."""
    t = -np.linspace(0, 2 * np.pi, n, endpoint=False)
    return Polygon(np.column_stack([X0 + 100 * i + 40 * np.cos(t), Y0 + 40 * np.sin(t)]))


def write(path, geoms) -> None:
    gpd.GeoDataFrame({"BSM": [str(i) for i in range(len(geoms))]}, geometry=list(geoms), crs=CRS).to_file(path)


def gdal_wkb(path, fids=None) -> list:
    _, _, wkb, _ = pyogrio.raw.read(str(path), columns=[], fids=fids)
    return list(wkb)


def records(path) -> shapefile.PolygonRecords:
    parts = shapefile.parts_of(path, path.name)
    assert shapefile.shape_type(parts) == shapefile.POLYGON
    return shapefile.PolygonRecords(parts, str(path))


def same(path, fids) -> None:
    wkb, geoms = records(path).read(np.asarray(fids))
    expected = gdal_wkb(path, np.asarray(fids))
    assert wkb.to_pylist() == expected
    for g, w in zip(geoms, expected):
        if w is None:
            assert g is None
        else:
            expected_g = shapely.from_wkb(w, on_invalid="ignore")
            assert g is None if expected_g is None else shapely.equals_exact(g, expected_g, tolerance=0)


def test_every_kind_of_record_reads_as_gdal_reads_it(tmp_path):
    holed = Polygon(box(X0, Y0 + 200, X0 + 50, Y0 + 250).exterior.coords[::-1],
                    [box(X0 + 10, Y0 + 210, X0 + 20, Y0 + 220).exterior.coords])
    two = MultiPolygon([box(X0, Y0 + 300, X0 + 10, Y0 + 310), box(X0 + 20, Y0 + 300, X0 + 30, Y0 + 310)])
    # a hole touching its shell at the shell's first point: the record's first and
    # last points are the same, as in a record of one closed ring
    corner = (X0, Y0 + 400)
    touching = Polygon([corner, (X0, Y0 + 450), (X0 + 50, Y0 + 450), (X0 + 50, Y0 + 400), corner],
                       [[corner, (X0 + 10, Y0 + 405), (X0 + 5, Y0 + 410), corner]])
    assert touching.is_valid
    geoms = [parcel(0), parcel(1, 5), holed, two, None, parcel(2, 200), parcel(3), touching]
    path = tmp_path / "dltb.shp"
    write(path, geoms)
    same(path, range(len(geoms)))
    same(path, [6, 0, 4, 2])  # any FIDs, in any order, a null shape among them
    wkb, geoms_read = records(path).read(np.array([0, 1, 5, 6]))  # rings of one part: none from GDAL
    assert [shapely.get_num_coordinates(g) for g in geoms_read] == [13, 6, 201, 13]


def test_a_ring_left_open_or_a_record_cut_short_is_left_to_gdal(tmp_path):
    path = tmp_path / "dltb.shp"
    write(path, [parcel(i) for i in range(4)])
    shx = np.fromfile(path.with_suffix(".shx"), dtype=">i4", offset=100).reshape(-1, 2) * 2
    raw = bytearray(path.read_bytes())
    # record 1: its last point moved, so the ring is not closed
    last = int(shx[1, 0]) + 56 + 16 * 12
    raw[last:last + 8] = struct.pack("<d", X0 + 100 + 41.0)
    # record 2: it claims more points than its content length holds
    raw[int(shx[2, 0]) + 48:int(shx[2, 0]) + 52] = struct.pack("<i", 500)
    path.write_bytes(bytes(raw))
    with pytest.warns(RuntimeWarning):  # GDAL's, about the open ring and the corrupt record
        same(path, range(4))
        wkb, geoms = records(path).read(np.arange(4))
    assert wkb[1].as_py() is not None and wkb[2].as_py() is None, "the open ring as GDAL reads it; no shape"
    assert geoms[1] is None and geoms[2] is None, "neither is a geometry GEOS accepts: both are checked in PostGIS"
    assert shapely.equals_exact(geoms[3], parcel(3), tolerance=0)


def test_the_bench_sized_batch_is_identical(tmp_path):
    """A batch of a few thousand parcels of tens of vertices (the benchmark's shape), end to end."""
    rng = np.random.default_rng(7)
    geoms = [parcel(i, int(n)) for i, n in enumerate(rng.integers(4, 80, 3000))]
    path = tmp_path / "dltb.shp"
    write(path, geoms)
    same(path, np.arange(3000))
    same(path, np.arange(1000, 2000))


def test_a_record_deleted_in_the_dbf_is_skipped_with_its_shape(tmp_path):
    """Editors leave deleted records in the .dbf (flag '*') until the file is packed; GDAL skips
    them, so FIDs jump, and each remaining row must get its own record's polygon."""
    path = tmp_path / "dltb.shp"
    write(path, [parcel(i) for i in range(5)])
    dbf = bytearray(path.with_suffix(".dbf").read_bytes())
    _, header, record = struct.unpack("<IHH", dbf[4:12])
    dbf[header + 2 * record] = ord("*")
    path.with_suffix(".dbf").write_bytes(bytes(dbf))
    with pyogrio.raw.open_arrow(str(path), read_geometry=False, return_fids=True, use_pyarrow=True) as (_, reader):
        batch = next(iter(reader))
    fids, bsm = batch.column(0).to_numpy(), batch.column("BSM").to_pylist()
    assert list(fids) == [0, 1, 3, 4] and bsm == ["0", "1", "3", "4"]
    wkb, geoms = records(path).read(fids)
    assert [shapely.equals_exact(g, parcel(int(b)), tolerance=0) for g, b in zip(geoms, bsm)] == [True] * 4
    assert wkb.to_pylist() == gdal_wkb(path)
