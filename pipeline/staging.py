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
import threading
from queue import Empty, Full, Queue

import numpy as np
import pandas as pd
import pyarrow as pa

from pipeline import pgcopy
from pipeline import values as V
from pipeline.config import LAYER_KINDS, Layer
from pipeline.sources import NUMERIC_FIELDS, Batch


def parse_batch(layer: Layer, mapping: dict, batch: Batch, excel: bool) -> tuple[dict, list]:
    """Standard columns of one batch, and each row's reject reason (None when usable).

    A value that is present but unreadable (a date that is not a date, a code
    outside its allowed values) or a required value that is missing rejects
    only its feature; the reason names the field and the value.
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
            cols[std] = V.number(src) if src is not None else np.full(n, np.nan)
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
    for i in reasons:
        attrs[i] = json.dumps({k: V.to_text(batch.columns[k].iloc[i]) for k in batch.columns},
                              ensure_ascii=False)
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


def copy_payload(kind: str, start: int, cols: dict, rejects: list) -> list:
    """The COPY columns of stage up to the standard fields, for the rows of one batch."""
    n = len(rejects[0])
    out = [pgcopy.int4(np.arange(start, start + n)),
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


def geos_flags(wkb: pa.Array, county) -> tuple[np.ndarray, np.ndarray]:
    """(clean, outside) per feature, checked with GEOS as PostGIS would.

    Clean: a valid, non-empty 2D polygon or multipolygon, used as it is. The
    others go to weipian.ingest_geometry. Outside (of clean features): not
    touching ``county``.
    """
    import shapely

    if isinstance(wkb, pa.ChunkedArray):
        wkb = wkb.combine_chunks()
    g = shapely.from_wkb(wkb.to_numpy(zero_copy_only=False), on_invalid="ignore")
    types = shapely.get_type_id(g)
    clean = ((types == 3) | (types == 6)) & ~shapely.is_empty(g)
    clean &= ~shapely.has_z(g) & ~shapely.has_m(g)
    clean[clean] = shapely.is_valid(g[clean])
    outside = np.zeros(len(g), dtype=bool)
    if county is not None and clean.any():
        outside[clean] = ~shapely.intersects(county, g[clean])
    return clean, outside


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

    thread = threading.Thread(target=work, name="ingest-read", daemon=True)
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
