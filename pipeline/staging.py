"""What goes into the staging table, a batch at a time (no database here).

For each batch of features read from a layer: the standard fields parsed a
column at a time (pipeline.values) with a reject reason for each feature that
cannot be used; the GEOS check of its geometry (clean or not, outside the
county or not); and the binary COPY payload of the rows. ``read_ahead`` runs
all of it in a thread, ahead of the database work on the previous batch.
"""

from __future__ import annotations

import contextlib
import json
import struct
import threading
from dataclasses import dataclass
from queue import Empty, Full, Queue

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline import pgcopy
from pipeline import values as V
from pipeline.config import LAYER_KINDS, Layer
from pipeline.sources import NUMERIC_FIELDS, Batch


def parse_batch(layer: Layer, mapping: dict, batch: Batch, excel: bool) -> tuple[dict, list]:
    """Standard columns of one batch, and each row's reject reason (None when usable).

    A value that is present but unreadable (a date that is not a date, a
    number that is not a number, a code outside its allowed values) or a
    required value that is missing rejects only its feature; the reason names
    the field and the value.
    """
    spec = LAYER_KINDS[layer.kind]
    dates, allowed = set(spec.get("dates", [])), spec.get("allowed", {})
    n = batch.n
    reasons: dict[int, list[str]] = {}
    unreadable: dict[int, set[str]] = {}

    def reject(rows, field_name: str, message) -> None:
        for i in np.flatnonzero(rows):
            reasons.setdefault(i, []).append(message(i))
            unreadable.setdefault(i, set()).add(field_name)

    cols: dict[str, object] = {}
    for std in spec["fields"]:
        src = batch.columns[mapping[std]] if mapping[std] else None
        if std in dates:
            if src is None:
                cols[std] = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
                continue
            cols[std], bad = V.dates(src, excel=excel)
            reject(bad, std, lambda i, s=src, f=std: f"{f} '{V.to_text(s.iloc[i])}' 不是日期，{V.DATE_HINT}")
        elif std in NUMERIC_FIELDS:
            if src is None:
                cols[std] = np.full(n, np.nan)
                continue
            cols[std], bad = V.numbers(src)
            reject(bad, std, lambda i, s=src, f=std: f"{f} '{V.to_text(s.iloc[i])}' 不是数字，请改为数值或留空")
        else:
            cols[std] = V.text(src) if src is not None else pd.Series(pd.NA, index=range(n), dtype="str")

    if layer.kind == "approval" and layer.pzlx:
        cols["PZLX"] = cols["PZLX"].fillna(layer.pzlx)
    if layer.kind == "field_check":
        for std, table, upper, expect in (
                ("SFBH", V.SFBH_VALUES, True, "应为 是 或 否"),
                ("PDLX", V.PDLX_VALUES, False, "应为 合法用地、实地未变化、农业结构调整 或 违法用地")):
            given = cols[std]
            cols[std], bad = V.mapped(given, table, upper=upper)
            reject(bad, std, lambda i, g=given, f=std, e=expect: f"{f} '{g.iloc[i]}' {e}")
        both = (cols["SFBH"].isna() & cols["PDLX"].isna()).to_numpy()
        reject(both & ~np.isin(np.arange(n), list(unreadable)), "SFBH", lambda i: "SFBH 与 PDLX 均为空")
    for std, values in allowed.items():
        given = cols[std]
        bad = (given.notna() & ~given.isin(values)).to_numpy()
        reject(bad, std, lambda i, g=given, f=std, vs=values: f"{f} '{g.iloc[i]}' 应为 {' 或 '.join(vs)}")
    for std in spec["required"]:
        missing = _isna(cols[std]).copy()
        for i in np.flatnonzero(missing):
            missing[i] = std not in unreadable.get(i, ())
        reject(missing, std, lambda i, f=std: f"{f} 为空")

    rows = [None] * n
    for i, rs in reasons.items():
        rows[i] = "；".join(rs)
    attrs = [None] * n
    if reasons:
        # a feature set aside keeps every field of the file, read or not
        set_aside = sorted(reasons)
        every = batch.all_fields(set_aside)
        for pos, i in enumerate(set_aside):
            attrs[i] = json.dumps({k: V.to_text(every[k].iloc[pos]) for k in every.columns}, ensure_ascii=False)
    return cols, [rows, attrs]


def _isna(col) -> np.ndarray:
    if isinstance(col, pd.Series):
        return col.isna().to_numpy()
    if col.dtype.kind == "M":
        return np.isnat(col)
    return np.isnan(col)


def stage_type(kind: str, std: str) -> str:
    if std in LAYER_KINDS[kind].get("dates", []):
        return "date"
    if std in NUMERIC_FIELDS:
        return "double precision"
    return "text"


def copy_payload(kind: str, index: np.ndarray, cols: dict, rejects: list) -> list:
    """The COPY columns of stage up to the standard fields, for the rows of one batch.

    ``index``: each row's feature_index.
    """
    out = [pgcopy.int4(index),
           pgcopy.varlen(pa.array(rejects[0], type=pa.large_string())),
           pgcopy.varlen(pa.array(rejects[1], type=pa.large_string()))]
    for std in LAYER_KINDS[kind]["fields"]:
        kind_of = stage_type(kind, std)
        if kind_of == "date":
            out.append(pgcopy.date_(cols[std]))
        elif kind_of == "double precision":
            out.append(pgcopy.float8(cols[std]))
        else:
            out.append(pgcopy.varlen(pa.array(cols[std], type=pa.large_string(), from_pandas=True)))
    return out


def transformer(src_epsg: int, work_srid: int):
    """Coordinates from ``src_epsg`` to the working CRS, as arrays (pyproj, x/y order)."""
    from pyproj import Transformer

    tf = Transformer.from_crs(src_epsg, work_srid, always_xy=True)

    def transform(xy: np.ndarray) -> np.ndarray:
        return np.column_stack(tf.transform(xy[:, 0], xy[:, 1]))
    return transform


def geos_flags(wkb: pa.Array, county, tolerance_m: float = 0.0,
               reproject=None, geoms: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, pa.Array]:
    """(clean, outside, WKB in the working CRS) per feature, checked with GEOS as PostGIS would.

    Clean: a valid, non-empty 2D polygon or multipolygon (valid once in the
    working CRS), used as it is. The others go to weipian.ingest_geometry.
    Outside (of clean features): not touching ``county`` (prepared) and farther
    from it than ``tolerance_m``, the test of weipian.ingest_geometry (migration
    0023). ``reproject``: a function of transformer(); then the WKB returned
    holds the clean features transformed (the others are not used).
    ``geoms``: the same geometries already made by the reader (then the WKB
    is not parsed again).
    """
    import shapely

    if isinstance(wkb, pa.ChunkedArray):
        wkb = wkb.combine_chunks()
    g = geoms if geoms is not None else shapely.from_wkb(wkb.to_numpy(zero_copy_only=False), on_invalid="ignore")
    types = shapely.get_type_id(g)
    clean = ((types == 3) | (types == 6)) & ~shapely.is_empty(g)
    clean &= ~shapely.has_z(g) & ~shapely.has_m(g)
    if reproject is not None:
        g = np.where(clean, g, None)
        g[clean] = shapely.transform(g[clean], reproject)
    clean[clean] = shapely.is_valid(g[clean])
    outside = np.zeros(len(g), dtype=bool)
    if county is not None and clean.any():
        away = np.flatnonzero(clean)
        away = away[~shapely.intersects(county, g[away])]
        if len(away):
            outside[away] = ~shapely.dwithin(county, g[away], tolerance_m)
    if reproject is not None:
        wkb = pa.array(shapely.to_wkb(np.where(clean, g, None), byte_order=1), type=pa.large_binary())
    return clean, outside, wkb


def read_ahead(make_items, depth: int):
    """Iterate ``make_items(backlog)`` computed in a background thread, at most ``depth`` ahead.

    ``backlog()`` tells the producer how many items wait for the consumer: with
    a backlog it has time to spare. An exception in the thread is raised here;
    leaving the loop early stops the thread.
    """
    done = object()
    queue: Queue = Queue(maxsize=depth)
    stop = threading.Event()

    def work():
        try:
            for item in make_items(queue.qsize):
                while not stop.is_set():
                    try:
                        queue.put(item, timeout=0.2)
                        break
                    except Full:
                        continue
                if stop.is_set():
                    return
            queue.put(done)
        except BaseException as e:  # handed to the consumer
            queue.put(e)

    thread = threading.Thread(target=work, name=f"ingest-{getattr(make_items, '__name__', 'read')}", daemon=True)
    thread.start()
    try:
        while True:
            item = queue.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        with contextlib.suppress(Empty):
            while True:
                queue.get_nowait()
        thread.join(timeout=5)


# ------------------------------------------------------------ straight into the layer's table

#: The bulk layers whose clean features skip the staging table: each column of
#: the layer's table after county_code, source_id and feature_index, as
#: (column, how it is made). "field:X" is standard field X as parsed; "code:X"
#: is X of weipian.dlbm_codes for the feature's DLBM; "kcxs" is
#: values.kcxs_fraction of KCXS. sql/10_ingest/<kind>.sql says the same for the
#: features that go through the staging table.
DIRECT_COLUMNS = {
    "landuse": [("bsm", "field:BSM"), ("dlbm", "code:dlbm"), ("dlbm_source", "field:DLBM"),
                ("dlmc", "field:DLMC"), ("zldwdm", "field:ZLDWDM"), ("tbmj", "field:TBMJ"),
                ("kcxs", "kcxs"), ("kcmj", "field:KCMJ"), ("tbdlmj", "field:TBDLMJ"),
                ("land_group", "code:land_group"), ("is_cultivated", "code:is_cultivated")],
    "farmland": [("bsm", "field:BSM"), ("dlbm", "code:dlbm")],
}

_LE_POLYGON = b"\x01\x03\x00\x00\x00"
_LE_MULTIPOLYGON = b"\x01\x06\x00\x00\x00"


@dataclass
class Direct:
    """The features of one batch that go straight into the layer's table."""

    index: np.ndarray          # feature_index of each
    cols: dict                 # their standard fields, as parse_batch makes them
    ewkb: pa.Array             # their geometry as MultiPolygon EWKB with the working SRID

    @property
    def n(self) -> int:
        return len(self.index)


def split_direct(kind: str, start: int, cols: dict, rejects: list, wkb, clean: np.ndarray,
                 outside: np.ndarray, srid: int) -> tuple[Direct | None, np.ndarray]:
    """Set apart the features that need nothing from PostGIS but storing.

    Those are the features of a DIRECT_COLUMNS layer that are clean (valid 2D
    polygons, checked with GEOS), inside the county and not rejected for a
    value, in little-endian WKB (what GDAL writes). Returns them and the mask
    of the others, which go through the staging table as before.
    """
    n = len(clean)
    if kind not in DIRECT_COLUMNS or not n:
        return None, np.ones(n, dtype=bool)
    if isinstance(wkb, pa.ChunkedArray):
        wkb = wkb.combine_chunks()
    head = pc.binary_slice(wkb, 0, 5)
    poly = pc.equal(head, pa.scalar(_LE_POLYGON, pa.binary())).fill_null(False).to_numpy(zero_copy_only=False)
    multi = pc.equal(head, pa.scalar(_LE_MULTIPOLYGON, pa.binary())).fill_null(False).to_numpy(zero_copy_only=False)
    take = clean & ~outside & (poly | multi)
    take &= pd.isna(pd.Series(rejects[0], dtype=object)).to_numpy()
    if not take.any():
        return None, ~take
    idx = np.flatnonzero(take)
    whole = len(idx) == n
    sub = wkb if whole else wkb.take(pa.array(idx))
    # MultiPolygon EWKB: byte order, type 6 with the SRID flag, the SRID, then
    # the parts: a Polygon becomes the one part of a count-1 MultiPolygon, a
    # MultiPolygon keeps its count and parts (one pass over the bytes when the
    # batch holds only one of the two, as most do)
    header = b"\x01" + struct.pack("<Ii", 6 | 0x20000000, srid)
    polys = poly if whole else poly[idx]
    if polys.all():
        ewkb = pc.binary_replace_slice(sub, 0, 0, header + struct.pack("<I", 1))
    elif not polys.any():
        ewkb = pc.binary_replace_slice(sub, 0, 5, header)
    else:
        ewkb = pc.if_else(pa.array(polys),
                          pc.binary_replace_slice(sub, 0, 0, header + struct.pack("<I", 1)),
                          pc.binary_replace_slice(sub, 0, 5, header))
    sub_cols = cols if whole else {k: (v.iloc[idx].reset_index(drop=True) if isinstance(v, pd.Series)
                                       else v[idx]) for k, v in cols.items()}
    return Direct(start + idx, sub_cols, ewkb), ~take


def direct_payload(kind: str, county_code: str, source_id: int, d: Direct, codes: dict) -> memoryview:
    """The binary COPY rows of ``d`` for the layer's table (columns: direct_columns(kind)).

    ``codes``: weipian.dlbm_codes as {DLBM as read or '': (dlbm, land_group, is_cultivated)},
    holding every DLBM of ``d``.
    """
    out = [pgcopy.text_constant(county_code), pgcopy.int8_constant(source_id), pgcopy.int4(d.index)]
    code_cols = {}
    if "DLBM" in d.cols:
        at, keys = pd.factorize(d.cols["DLBM"].fillna(""), sort=False)
        for j, name in enumerate(("dlbm", "land_group", "is_cultivated")):
            meaning = np.array([codes[k][j] for k in keys], dtype=object)
            code_cols[name] = pd.Series(meaning[at], dtype=bool if name == "is_cultivated" else "str")
    for column, how in DIRECT_COLUMNS[kind]:
        what, _, name = how.partition(":")
        if what == "field":
            kind_of = stage_type(kind, name)
            v = d.cols[name]
            if kind_of == "double precision":
                out.append(pgcopy.float8(v))
            else:
                out.append(pgcopy.varlen(pa.array(v, type=pa.large_string(), from_pandas=True)))
        elif what == "kcxs":
            out.append(pgcopy.float8(V.kcxs_fraction(d.cols["KCXS"])))
        elif name == "is_cultivated":
            out.append(pgcopy.boolean(code_cols[name].to_numpy(dtype=bool)))
        else:
            out.append(pgcopy.varlen(pa.array(code_cols[name], type=pa.large_string(), from_pandas=True)))
    out.append(pgcopy.varlen(d.ewkb))
    return pgcopy.rows(out)


def direct_columns(kind: str) -> list[str]:
    return ["county_code", "source_id", "feature_index", *(c for c, _ in DIRECT_COLUMNS[kind]), "geom"]
