"""Ingest stage: load the layers of county.toml into PostGIS, accounting for every feature.

For each layer that is new or changed (by checksum of its files and settings):

1. :func:`pipeline.sources.open_source` checks the layer as a whole (files
   complete, encoding, CRS against the coordinates) and the field mapping is
   resolved, for every layer, before anything is written;
2. in one transaction, the features stream in batches (a reader thread keeps
   one or two batches ahead): values are parsed a column at a time
   (pipeline.values), geometry in the working CRS is checked with GEOS here
   (valid 2D polygons are "clean"). The clean features of the bulk layers
   (DLTB, farmland; transformed here when their CRS differs) go by binary COPY
   straight into the layer's table; the others go by binary COPY into an
   unlogged staging table of a schema private to this session, and on into the
   layer's table while the next batch is read;
3. the SQL of sql/10_ingest/ transforms and repairs what was not clean
   (weipian.ingest_geometry), moves the usable staged rows into the layer's
   table and sets the rest aside in weipian.quarantine;
4. every layer must account for each feature read:
   read = loaded + repaired + quarantined + clipped, or the run fails.

The township layers load first: their union is the county, and a feature wholly
outside it (beyond ``[settings] outside_tolerance_m``) is quarantined when it is
a change polygon and dropped and counted when it belongs to a reference layer.

A changed layer replaces its previous load inside the same transaction, so a
crash or a kill mid-load leaves the previous data in place; ``dry_run`` does all
of it and rolls back.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import logging
import sys
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
from psycopg import sql

from pipeline import SQL_DIR, digests, pgcopy, staging
from pipeline.config import LAYER_KINDS, County, Layer
from pipeline.db import run_sql_file
from pipeline.errors import DatabaseError, DataSourceError
from pipeline.sources import Source, open_source

log = logging.getLogger(__name__)
INGEST_SQL = SQL_DIR / "10_ingest"
#: Features per batch. Measured on 300 000 parcels (4 alternating pairs each):
#: 25 000 peaks at 540–640 MB and 4.1–4.3 s, 12 500 at 450–480 MB and 3.8–4.2 s
#: (the three threads and the server start sooner and drain sooner), 6 250 at
#: 370 MB and no faster.
BATCH_SIZE = 12_500
#: From this many new rows on, a layer's GiST indexes are dropped and rebuilt
#: (a sorted build) instead of being updated row by row, when the new rows are at
#: least as many as the table holds.
BULK_INDEX_MIN = 50_000
#: How many quarantined features the summary names per layer.
LISTED = 20
#: PostGIS messages about unreadable WKB, as users read them.
WKB_PROBLEMS = {
    "Polygon must have closed rings": "环未闭合",
    "Polygon must have at least four points in each ring": "环的顶点少于 4 个",
    "geometry requires more points": "顶点太少",
}


@dataclass
class LoadReport:
    """What happened to one layer: every feature read is loaded, repaired, quarantined or clipped."""

    layer: Layer
    skipped: bool
    n_read: int
    n_loaded: int
    n_repaired: int
    n_quarantined: int
    n_clipped: int = 0
    quarantined: list[str] = field(default_factory=list)  # the summary's lines naming them

    @property
    def balanced(self) -> bool:
        return self.n_read == self.n_loaded + self.n_repaired + self.n_quarantined + self.n_clipped

    def counts(self) -> str:
        clipped = f" + 县域外裁除 {self.n_clipped}" if self.n_clipped else ""
        return (f"读取 {self.n_read} = 原样入库 {self.n_loaded} + 修复后入库 {self.n_repaired} + "
                f"隔离 {self.n_quarantined}{clipped}")

    def line(self) -> str:
        """The summary of this layer: the reconciliation line, then each quarantined feature named."""
        head = f"{self.layer.kind:<11} {self.layer.label}"
        if self.skipped:
            return f"{head}: 未变化，跳过（{self.counts()}）"
        return "\n".join([f"{head}: {self.counts()}", *self.quarantined])


def register_county(conn: psycopg.Connection, county: County) -> None:
    conn.execute(
        """INSERT INTO weipian.county (code, name, srid, toml_path) VALUES (%s, %s, %s, %s)
           ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, srid = EXCLUDED.srid,
               toml_path = EXCLUDED.toml_path, updated_at = now()""",
        (county.code, county.name, county.srid, str(county.toml_path)),
    )


def ingest(conn: psycopg.Connection, county: County, dry_run: bool = False) -> list[LoadReport]:
    """Load every layer of the county that is new or changed; drop layers no longer listed.

    Parameters
    ----------
    conn : psycopg.Connection
        In autocommit mode or idle; the whole ingest is one transaction.
    county : County
    dry_run : bool
        Do everything, report, and roll back: the database is left as it was.

    Returns
    -------
    list of LoadReport, in county.toml order.

    Raises
    ------
    DataSourceError
        A layer cannot be used as a whole (checked before anything is written),
        a change layer repeats a JCBH, or a layer's counts do not add up; the
        transaction is rolled back, so the previous loads stay in place.
    """
    _tune_memory()
    plan = _plan(conn, county)
    opened = {}
    for layer, _digest, _previous, changed in plan:
        if changed:
            source = open_source(layer, county.srid)
            opened[layer.index] = (source, _field_map(layer, source.fields))

    reports: dict[int, LoadReport] = {}
    with conn.transaction() as tx:
        _prepare_session(conn)
        register_county(conn, county)
        _drop_unlisted(conn, county)
        area_ready = False
        for layer, digest, previous, changed in sorted(plan, key=lambda p: p[0].kind != "township"):
            if not changed:
                reports[layer.index] = LoadReport(layer, True, *previous[2:])
                continue
            if layer.kind != "township" and not area_ready:
                _county_area(conn, county)
                area_ready = True
            source, mapping = opened[layer.index]
            reports[layer.index] = _load(conn, county, layer, digest, source, mapping, previous)
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(_stage_schema(conn))))
        for r in reports.values():
            if not r.balanced:
                raise DataSourceError(f"{r.layer.label}: 要素数对不上：{r.counts()}；已回滚，数据库未改动")
        if dry_run:
            raise psycopg.Rollback(tx)
    return [reports[layer.index] for layer in county.layers]


def _tune_memory() -> None:
    """Allocation settings for a load of many batches of many small objects.

    Measured on 300 000 parcels (CPU of the process, medians of alternating runs):
    - Every batch allocates the same large buffers (WKB, COPY payload); with
      Arrow's jemalloc pool and glibc's defaults they go back to the kernel
      and are faulted in again for the next batch (0.88 s of system time
      instead of 0.70). Arrow allocates with malloc, and glibc keeps freed
      memory: buffers up to 32 MB come from the heap, which is not trimmed.
    - GEOS frees hundreds of thousands of small blocks per batch into glibc's
      fast bins, which every large allocation then walks to merge (13 % of
      the process's CPU in malloc_consolidate and its kin): no fast bins
      (0.4 s less CPU).
    - Python's cyclic garbage collector, set off by the containers pandas
      makes, traversed every object of the imported libraries again and
      again (5 % of the CPU): those are frozen out of its reach (0.3 s less),
      once per process (a long-lived caller's later garbage stays collectable).
    The peak memory stays what it was.
    """
    if not gc.get_freeze_count():
        gc.freeze()
    pa.set_memory_pool(pa.system_memory_pool())
    with contextlib.suppress(OSError, AttributeError):  # not glibc: its own defaults
        libc = ctypes.CDLL(None)
        libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
        libc.mallopt(_M_MMAP_THRESHOLD, 32 * 2**20)  # glibc's largest
        libc.mallopt(_M_MXFAST, 0)


_M_MXFAST, _M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = 1, -1, -3


def _plan(conn, county: County):
    """(layer, digest, previous load or None, changed) per layer.

    A layer's digest covers its files and settings and, for every layer but the
    township layers, the township layers' digests and the tolerance: they decide
    what lies outside the county.
    """
    towns = {l.index: digests.digest(l) for l in county.layers_of("township")}
    extra = digests.township_extra(county, towns.values())
    plan = []
    for layer in county.layers:
        previous = _previous(conn, county, layer)
        if layer.index in towns:
            digest = towns[layer.index]
        else:
            # a layer loaded for the first time is loaded whatever its digest:
            # the files are hashed while they load
            digest = digests.digest(layer, extra, wait=previous is not None)
        plan.append((layer, digest, previous, previous is None or previous[1] != digest))
    return plan


def _resolved(digest) -> str:
    return digest.result() if isinstance(digest, Future) else digest


def _previous(conn, county: County, layer: Layer):
    return conn.execute(
        """SELECT id, checksum, n_read, n_loaded, n_repaired, n_quarantined, n_clipped FROM weipian.source
           WHERE county_code = %s AND kind = %s AND path = %s AND layer = %s AND batch = %s""",
        (county.code, layer.kind, str(layer.path), layer.layer or "", layer.batch or ""),
    ).fetchone()


def _drop_unlisted(conn, county: County) -> None:
    """Forget loads of layers that county.toml no longer lists (their rows cascade)."""
    keys = [(l.kind, str(l.path), l.layer or "", l.batch or "") for l in county.layers]
    existing = conn.execute(
        "SELECT id, kind, path, layer, batch FROM weipian.source WHERE county_code = %s",
        (county.code,),
    ).fetchall()
    gone = [row[0] for row in existing if tuple(row[1:]) not in keys]
    if gone:
        conn.execute("DELETE FROM weipian.source WHERE id = ANY(%s)", (gone,))


# ------------------------------------------------------------ session

def _stage_schema(conn) -> str:
    return f"weipian_ingest_{conn.info.backend_pid}"


def _prepare_session(conn) -> None:
    """A schema private to this session for the staging tables, first on the search path.

    Unlogged tables there (not temporary ones) write no WAL and can be read by
    parallel workers. They are created in the ingest transaction, so a killed
    run leaves nothing behind. ``client_connection_check_interval`` makes the
    server notice a killed client during a long statement and roll back at once.
    """
    schema = _stage_schema(conn)
    conn.execute("SELECT set_config('client_connection_check_interval', '1s', true)")
    conn.execute("SELECT set_config('jit', 'off', true)")  # compiling costs seconds, bulk statements gain nothing
    # every join here is a bulk join; estimates over the staging tables are rough
    conn.execute("SELECT set_config('enable_nestloop', 'off', true)")
    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    path = conn.execute("SELECT current_setting('search_path')").fetchone()[0]
    conn.execute("SELECT set_config('search_path', %s, true)",
                 (f"{sql.Identifier(schema).as_string(conn)}, {path}",))
    conn.execute("CREATE UNLOGGED TABLE county_area (area geometry)")
    conn.execute("INSERT INTO county_area VALUES (NULL)")


def _county_area(conn, county: County) -> None:
    """The county: the union of its township layer, for the outside check (see migration 0023)."""
    conn.execute(
        """UPDATE county_area SET area = (
               SELECT ST_Union(geom) FROM weipian.township WHERE county_code = %s)""",
        (county.code,))


def _params(conn, values: dict[str, object]) -> None:
    for name, value in values.items():
        conn.execute("SELECT set_config(%s, %s, true)", (f"weipian.{name}", str(value)))


# ------------------------------------------------------------ field mapping

def _field_map(layer: Layer, source_fields: list[str]) -> dict[str, str | None]:
    """Standard field → source field name (case-insensitive), None when absent."""
    spec = LAYER_KINDS[layer.kind]
    by_upper = {name.upper(): name for name in source_fields}
    have = "、".join(source_fields) or "无"
    mapping = {}
    for std in spec["fields"]:
        wanted = layer.fields.get(std, std)
        mapping[std] = by_upper.get(wanted.upper())
        if std in layer.fields and mapping[std] is None:
            raise DataSourceError(
                f"{layer.label}: county.toml 的 fields 把 {std} 映射到 {wanted!r}，但该图层没有这个字段"
                f"（现有字段：{have}）")
    missing = [f for f in spec["required"] if mapping[f] is None and not (f == "PZLX" and layer.pzlx)]
    if missing:
        f = missing[0]
        extra = "，或用 pzlx = \"临时用地\" 给出整层的批准类型" if f == "PZLX" else ""
        raise DataSourceError(
            f"{layer.label}: 缺少必填字段 {f}（现有字段：{have}）；如果它用了别的名字，请在 county.toml 中"
            f"为该图层写 fields = {{ {f} = \"源字段名\" }}{extra}")
    one_of = spec.get("one_of")
    if one_of and all(mapping[f] is None for f in one_of):
        raise DataSourceError(
            f"{layer.label}: 缺少字段 {' 或 '.join(one_of)}（现有字段：{have}）；至少需要其中一个，"
            f"字段名不同时请在 county.toml 中用 fields = {{ {one_of[0]} = \"源字段名\" }} 映射")
    return mapping


# ------------------------------------------------------------ loading

def _load(conn, county: County, layer: Layer, digest: str | Future, source: Source, mapping: dict,
          previous) -> LoadReport:
    spec = LAYER_KINDS[layer.kind]
    # before the previous load's rows go: when they are all the table holds, the
    # table is emptied at once instead of row by row
    dropped, emptied = _take_table(conn, spec["table"], source.n or 0, previous[0] if previous else None)
    if previous:
        conn.execute("DELETE FROM weipian.source WHERE id = %s", (previous[0],))
    source_id = conn.execute(
        """INSERT INTO weipian.source (county_code, kind, path, layer, batch, layer_index, checksum)
           VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id""",
        (county.code, layer.kind, str(layer.path), layer.layer or "", layer.batch or "",
         layer.index, digest if isinstance(digest, str) else ""),
    ).fetchone()[0]
    _params(conn, {
        "county_code": county.code,
        "source_id": source_id,
        "src_srid": source.epsg or 0,
        "work_srid": county.srid,
        "batch": layer.batch or "",
        "layer_index": layer.index,
        "outside_rule": spec["outside"] if _has_county(conn) else "none",
        "outside_m": f"{county.settings['outside_tolerance_m']:g}",
        "source_names": json.dumps({std.lower(): src for std, src in mapping.items() if src},
                                   ensure_ascii=False),
    })
    _create_stage(conn, layer)
    run_sql_file(conn, INGEST_SQL / ("00_repair_geometry.sql" if spec["geometry"] else "00_no_geometry.sql"))
    # The features of each batch go into the layer's table while the next batch is
    # read, except change polygons (a JCBH twice is refused before any is written).
    per_batch = spec["geometry"] and layer.kind != "change"
    n_read, n_direct = _stream(conn, county, layer, source, mapping, source_id,
                               geos_here=source.epsg == county.srid, per_batch=per_batch, frozen=emptied)
    conn.execute("UPDATE weipian.source SET n_read = %s, checksum = %s WHERE id = %s",
                 (n_read, _resolved(digest), source_id))
    with _steps(layer, 3) as step:
        if not per_batch:
            if layer.kind == "change":
                _refuse_duplicate_jcbh(conn, layer)
            _params(conn, {"first": 0, "last": 2**31 - 1})
            try:
                with _trusted_source_id(conn):
                    run_sql_file(conn, INGEST_SQL / f"{layer.kind}.sql")
            except DatabaseError as e:
                if isinstance(e.__cause__, psycopg.errors.UniqueViolation):
                    raise DataSourceError(
                        f"{layer.label}: 批次 {layer.batch} 的监测编号 JCBH 与同批次另一图层重复；"
                        "同一批次的 JCBH 必须唯一，请修正后重新运行") from None
                raise
        step("写入")
        report = _account(conn, layer, mapping, source_id, n_direct)
        step("核对")
        # no ANALYZE here: the classify stage analyses the tables it reads that
        # changed (classify.analyze_stale), and autovacuum the others
        _rebuild_indexes(conn, dropped)
        step("索引")
    return report


def _account(conn, layer: Layer, mapping: dict, source_id: int, n_direct: int) -> LoadReport:
    """Quarantine and count what went through the staging table; add the features copied directly.

    ``n_direct`` is the count the server reported for the direct COPYs (clean
    features, loaded as they are).
    """
    _params(conn, {"first": 0, "last": 2**31 - 1})
    run_sql_file(conn, INGEST_SQL / "90_account.sql")
    conn.execute("UPDATE weipian.source SET n_loaded = n_loaded + %s WHERE id = %s", (n_direct, source_id))
    counts = conn.execute(
        "SELECT n_read, n_loaded, n_repaired, n_quarantined, n_clipped FROM weipian.source WHERE id = %s",
        (source_id,),
    ).fetchone()
    report = LoadReport(layer, False, *counts)
    report.quarantined = _quarantine_lines(conn, layer, mapping, source_id, report.n_quarantined)
    return report


def _create_stage(conn, layer: Layer) -> None:
    """``stage`` (one row per feature: attributes and geometry as read) and ``stage_check``."""
    conn.execute("DROP TABLE IF EXISTS stage, stage_check CASCADE")
    cols = [sql.SQL("{} {}").format(sql.Identifier(f.lower()), sql.SQL(staging.stage_type(layer.kind, f)))
            for f in LAYER_KINDS[layer.kind]["fields"]]
    conn.execute(sql.SQL(
        """CREATE UNLOGGED TABLE stage (feature_index integer NOT NULL, reject text, raw_attrs text, {},
               wkb bytea, clean boolean NOT NULL, outside boolean NOT NULL,
               wkb_repaired boolean NOT NULL DEFAULT false, wkb_error text)"""
    ).format(sql.SQL(", ").join(cols)))
    conn.execute("CREATE INDEX ON stage (feature_index)")
    conn.execute("""CREATE UNLOGGED TABLE stage_check (feature_index integer NOT NULL, clean boolean NOT NULL,
                    repaired geometry, reason text, outside boolean NOT NULL)""")


def _stream(conn, county: County, layer: Layer, source: Source, mapping: dict, source_id: int,
            geos_here: bool, per_batch: bool, frozen: bool = False) -> tuple[int, int]:
    """COPY every feature into ``stage`` or its table, batch by batch; return (read, copied directly).

    The clean features of a bulk layer (staging.DIRECT_COLUMNS: valid 2D
    polygons in the working CRS, inside the county, every value readable) need
    nothing from PostGIS but storing: they go by binary COPY straight into the
    layer's table, and only the others are staged, checked and repaired. This
    halves what the server writes for a layer of clean parcels.

    A thread reads and prepares the next batch (GDAL, parsing, the COPY
    payload) while the server takes this one: copies it, checks the geometry
    not yet found clean, and (``per_batch``) inserts its usable features into
    the layer's table. Reading and the database work overlap, and at most two
    prepared batches wait, so memory stays flat however large the layer.

    The GEOS check of a feature costs about as much in Python as in PostGIS; it
    is done here (``geos_here``: same CRS, no transformation needed) whenever
    the reader is ahead of the database, so the two share it.

    ``frozen``: the table was emptied in this transaction (_take_table), so the
    direct COPY writes its rows frozen and all-visible (COPY FREEZE): the first
    query to read them does not rewrite every page to set hint bits, and VACUUM
    has nothing to freeze later.
    """
    geometry = LAYER_KINDS[layer.kind]["geometry"]
    names = ["feature_index", "reject", "raw_attrs", *[f.lower() for f in LAYER_KINDS[layer.kind]["fields"]],
             "wkb", "clean", "outside"]
    copy_stage = sql.SQL("COPY stage ({}) FROM STDIN (FORMAT binary)").format(
        sql.SQL(", ").join(map(sql.Identifier, names)))
    county_code, county_srid, n_direct = county.code, county.srid, 0
    # the clean features of a bulk layer go straight into its table (see
    # staging.split_direct), transformed here from another CRS (pyproj: the same
    # PROJ operation as PostGIS's ST_Transform, and the same coordinates)
    direct = per_batch and layer.kind in staging.DIRECT_COLUMNS and (geos_here or source.epsg is not None)
    reproject = staging.transformer(source.epsg, county_srid) if direct and not geos_here else None
    area = _county_geometry(conn) if geometry and (geos_here or direct) else None
    tolerance = county.settings["outside_tolerance_m"]
    copy_direct = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary{})").format(
        sql.Identifier("weipian", LAYER_KINDS[layer.kind]["table"]),
        sql.SQL(", ").join(map(sql.Identifier, staging.direct_columns(layer.kind))),
        sql.SQL(", FREEZE" if frozen else "")) if direct else None
    codes = _Codes()

    def read(backlog):
        # only the fields the pipeline uses (the rest of a feature set aside is read again)
        yield from source.batches(BATCH_SIZE, fields=list(dict.fromkeys(f for f in mapping.values() if f)))

    def prepared(backlog):
        # GDAL reads the next batches in a thread of its own while this one
        # checks and encodes (both mostly outside the GIL)
        for batch in staging.read_ahead(read, depth=2):
            cols, rejects = staging.parse_batch(layer, mapping, batch, source.excel)
            wkb = batch.wkb if batch.wkb is not None else pa.nulls(batch.n, pa.large_binary())
            work_wkb = wkb
            if direct:
                clean, outside, work_wkb = staging.geos_flags(wkb, area, tolerance, reproject, batch.geoms)
            elif geometry and geos_here and backlog() > 0:
                clean, outside, _ = staging.geos_flags(wkb, area, tolerance, geoms=batch.geoms)
            else:
                clean = outside = np.zeros(batch.n, dtype=bool)
            these, rest = (staging.split_direct(layer.kind, batch.start, cols, rejects, work_wkb, clean, outside,
                                                county_srid) if direct else (None, None))
            if reproject is not None:
                # staged features are transformed and checked by PostGIS
                clean = outside = np.zeros(batch.n, dtype=bool)
            if rest is not None and not rest.all():
                ix = np.flatnonzero(rest)
                cols = {k: (v.iloc[ix].reset_index(drop=True) if isinstance(v, pd.Series) else v[ix])
                        for k, v in cols.items()}
                rejects = [[r[i] for i in ix] for r in rejects]
                wkb, clean, outside = wkb.take(pa.array(ix)), clean[ix], outside[ix]
                index = batch.start + ix
            else:
                index = np.arange(batch.start, batch.start + batch.n)
            payload = None
            if len(index):
                columns = staging.copy_payload(layer.kind, index, cols, rejects)
                columns += [pgcopy.varlen(wkb), pgcopy.boolean(clean), pgcopy.boolean(outside)]
                payload = pgcopy.rows(columns)
            rows = None
            if these is not None:
                # a new DLBM value is looked up in the database from this thread:
                # psycopg serialises it with the main thread's statements
                rows = staging.direct_payload(layer.kind, county_code, source_id, these,
                                              codes.of(conn, these.cols["DLBM"]) if "DLBM" in these.cols else {})
            yield batch.start, batch.n, payload, these, rows

    n_read = 0
    with _bar(source.n, layer.label) as bar:
        for start, n, payload, these, rows in staging.read_ahead(prepared, depth=2):
            if these is not None:
                with _trusted_source_id(conn), conn.cursor() as cur:
                    with cur.copy(copy_direct) as copy:
                        copy.write(pgcopy.HEADER)
                        copy.write(rows)
                        copy.write(pgcopy.TRAILER)
                    if cur.rowcount != these.n:
                        raise DatabaseError(f"{layer.label}: 写入 {cur.rowcount} 行，应为 {these.n} 行")
                n_direct += these.n
            if payload is not None:
                with conn.cursor().copy(copy_stage) as copy:
                    copy.write(pgcopy.HEADER)
                    copy.write(payload)
                    copy.write(pgcopy.TRAILER)
                if geometry and n:
                    _check_batch(conn, layer, start, start + n - 1)
                if per_batch and n:
                    with _trusted_source_id(conn):
                        run_sql_file(conn, INGEST_SQL / f"{layer.kind}.sql")
            n_read += n
            bar.update(n)
    return n_read, n_direct


class _Codes:
    """weipian.dlbm_codes of each DLBM value met, asked once per new value."""

    def __init__(self):
        self.known: dict[str, tuple] = {}

    def of(self, conn, dlbm: pd.Series) -> dict[str, tuple]:
        new = [k for k in dlbm.fillna("").unique() if k not in self.known]
        if new:
            for source, *meaning in conn.execute(
                    "SELECT dlbm_source, dlbm, land_group, is_cultivated FROM weipian.dlbm_codes(%s)", (new,)):
                self.known[source] = tuple(meaning)
        return self.known


def _county_geometry(conn):
    """county_area as a prepared shapely geometry (None: no outside check)."""
    import shapely

    wkb = conn.execute("SELECT ST_AsBinary(area) FROM county_area").fetchone()[0]
    if wkb is None:
        return None
    g = shapely.from_wkb(bytes(wkb))
    shapely.prepare(g)
    return g


def _has_county(conn) -> bool:
    return conn.execute("SELECT area IS NOT NULL FROM county_area").fetchone()[0]


def _refuse_duplicate_jcbh(conn, layer: Layer) -> None:
    dups = conn.execute(
        """SELECT jcbh, count(*) FROM stage WHERE jcbh IS NOT NULL
           GROUP BY jcbh HAVING count(*) > 1 ORDER BY jcbh""",
    ).fetchall()
    if dups:
        listed = "、".join(f"{j}（{n} 次）" for j, n in dups[:20])
        more = f" 等 {len(dups)} 个" if len(dups) > 20 else ""
        raise DataSourceError(
            f"{layer.label}: 批次 {layer.batch} 中监测编号 JCBH 重复：{listed}{more}；请修正后重新运行")


def _check_batch(conn, layer: Layer, first: int, last: int) -> None:
    """Run 00_check_geometry.sql on features ``first``..``last``; mend what stops it first.

    PostGIS refuses a polygon whose ring is not closed or has fewer than four
    points, which stops the whole statement; then the features at fault are
    found one by one, unclosed rings are closed (the feature counts as
    repaired), the rest are set aside with the reason, and the batch is checked
    again.
    """
    _params(conn, {"first": first, "last": last})
    try:
        with conn.transaction():
            run_sql_file(conn, INGEST_SQL / "00_check_geometry.sql")
        return
    except DatabaseError as e:
        if not _is_data_error(e):
            raise
        first_error = str(e)
    _mend_wkb(conn)
    try:
        with conn.transaction():
            run_sql_file(conn, INGEST_SQL / "00_check_geometry.sql")
    except DatabaseError as e:
        if not _is_data_error(e):
            raise
        raise DataSourceError(
            f"{layer.label}: 要素 {first}–{last} 的几何数据无法处理（{e}；最初：{first_error}）；"
            "文件可能损坏，请用 GIS 软件检查几何后重新导出") from None


def _is_data_error(e: DatabaseError) -> bool:
    cause = e.__cause__
    state = getattr(getattr(cause, "diag", None), "sqlstate", None) or ""
    return state.startswith(("XX", "22"))


def _mend_wkb(conn) -> None:
    import shapely

    rows = conn.execute(
        """SELECT feature_index, wkb, problem FROM (
               SELECT feature_index, wkb,
                      weipian.wkb_problem(wkb, current_setting('weipian.src_srid')::integer,
                                          current_setting('weipian.work_srid')::integer) AS problem
               FROM stage
               WHERE feature_index BETWEEN current_setting('weipian.first')::integer
                                       AND current_setting('weipian.last')::integer) q
           WHERE problem IS NOT NULL""").fetchall()
    fixed_ix, fixed_wkb, bad_ix, bad_reason = [], [], [], []
    for index, wkb, problem in rows:
        mended = None
        with contextlib.suppress(Exception):
            g = shapely.from_wkb(bytes(wkb), on_invalid="fix")
            if g is not None and not g.is_empty:
                mended = shapely.to_wkb(g)
        if mended is not None and conn.execute(
                "SELECT weipian.wkb_problem(%s, current_setting('weipian.src_srid')::integer, "
                "current_setting('weipian.work_srid')::integer)", (mended,)).fetchone()[0] is None:
            fixed_ix.append(index)
            fixed_wkb.append(mended)
        else:
            bad_ix.append(index)
            bad_reason.append(WKB_PROBLEMS.get(problem, problem))
    conn.execute(
        """UPDATE stage w SET wkb = f.wkb, wkb_repaired = true
           FROM unnest(%s::integer[], %s::bytea[]) AS f(feature_index, wkb)
           WHERE w.feature_index = f.feature_index""", (fixed_ix, fixed_wkb))
    conn.execute(
        """UPDATE stage w SET wkb = NULL, wkb_error = b.reason
           FROM unnest(%s::integer[], %s::text[]) AS b(feature_index, reason)
           WHERE w.feature_index = b.feature_index""", (bad_ix, bad_reason))


@contextlib.contextmanager
def _trusted_source_id(conn):
    """Skip the per-row foreign-key check of source_id while a layer's rows go in.

    Every row inserted carries the id of the weipian.source row this
    transaction just inserted, so the check cannot fail; made row by row it
    costs a fifth of a large load. Skipping it takes ``session_replication_role
    = replica`` (what pg_restore does), which only a superuser may set (the
    embedded database's account is one); otherwise the check runs.
    """
    superuser = conn.execute("SELECT current_setting('is_superuser') = 'on'").fetchone()[0]
    if superuser:
        conn.execute("SELECT set_config('session_replication_role', 'replica', true)")
    try:
        yield
    finally:
        if superuser and not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS:
            conn.execute("SELECT set_config('session_replication_role', 'origin', true)")


def _take_table(conn, table: str, n_new: int, replaced: int | None) -> tuple[list[sql.Composable], bool]:
    """Before a large load: drop the indexes of ``table``, and empty it when it holds nothing else.

    Returns the statements that build again the indexes and keys dropped, and
    whether the table was emptied. ``replaced``: the source id of the load this one replaces.

    A sorted build of the GiST index of 300 000 parcels takes under a second;
    updating it row by row takes about ten times longer (B-trees gain less, but
    gain). Only when the new rows are at least as many as the table already
    holds (other counties, other layers), so that rebuilding costs less than
    maintaining. The primary key (an identity column, which a load cannot
    repeat) goes and comes back the same way: maintained row by row it cost a
    tenth of the server's time in the load. Other constraints stay, with their
    indexes. The drop holds an exclusive lock on the table until the ingest
    commits, and a rollback restores the indexes.

    When the table holds no rows but those of the replaced load (the first
    load of a county's database, or a changed file of the only county), it is
    emptied with TRUNCATE: a new, empty file for the table in this transaction
    (a rollback keeps the old one). Its old rows are not deleted one by one,
    and on a server with ``wal_level = minimal`` (the embedded database) what
    is loaded into it is not written to the WAL, only synced once at commit
    (300 000 parcels: 0.2 s less). Like every TRUNCATE, it is not MVCC-safe
    for a transaction that took its snapshot before this one committed and
    reads the table only after.
    """
    if n_new < BULK_INDEX_MIN:
        return [], False
    name = f"weipian.{table}"
    ident = sql.Identifier("weipian", table)
    held = conn.execute("SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = %s::regclass",
                        (name,)).fetchone()[0]
    # DROP INDEX and TRUNCATE need this lock, and taking it first means no other
    # county's load drops these very indexes under us ("cache lookup failed").
    # Only if it is free at once: another county reading or loading the table (a
    # province run) would otherwise wait for this whole ingest while it holds
    # locks this ingest may need next (a deadlock); then the indexes are kept and
    # maintained, and the table is not emptied.
    try:
        with conn.transaction():
            conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE NOWAIT").format(ident))
    except psycopg.errors.LockNotAvailable:
        log.info("weipian.%s is in use by another session: its indexes are kept during the load", table)
        return [], False
    emptied = conn.execute(
        sql.SQL("SELECT NOT EXISTS (SELECT 1 FROM {} WHERE source_id IS DISTINCT FROM %s)").format(ident),
        (replaced,)).fetchone()[0]
    if emptied:
        conn.execute(sql.SQL("TRUNCATE {}").format(ident))
    elif n_new < held:
        return [], False
    keys = conn.execute(
        """SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
           WHERE conrelid = %s::regclass AND contype = 'p'""", (name,)).fetchall()
    indexes = conn.execute(
        """SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i
           WHERE i.indrelid = %s::regclass
             AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)""",
        (name,)).fetchall()
    for key, _ in keys:
        conn.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(ident, sql.Identifier(key)))
    for index, _ in indexes:
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.SQL(index)))
    rebuild = [sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(ident, sql.Identifier(key), sql.SQL(d))
               for key, d in keys]
    return rebuild + [sql.SQL(definition) for _, definition in indexes], emptied


def _rebuild_indexes(conn, definitions: list[sql.Composable]) -> None:
    """Build the indexes _take_table dropped."""
    for definition in definitions:
        conn.execute(definition)


def _quarantine_lines(conn, layer: Layer, mapping: dict, source_id: int, total: int) -> list[str]:
    """``隔离 FILE 要素 17（JCBH …）：reason`` for the first LISTED quarantined features."""
    if not total:
        return []
    key = LAYER_KINDS[layer.kind]["key"]
    names = [k for k in (mapping.get(key), key.lower()) if k]
    lines = []
    for index, reason, attrs in conn.execute(
            """SELECT feature_index, reason, attributes FROM weipian.quarantine
               WHERE source_id = %s ORDER BY feature_index LIMIT %s""", (source_id, LISTED)):
        value = next((attrs.get(k) for k in names if attrs and attrs.get(k)), None)
        named = f"（{key} {value}）" if value else ""
        lines.append(f"  隔离 {layer.label} 要素 {index}{named}：{reason}")
    if total > LISTED:
        lines.append(f"  ……另有 {total - LISTED} 个隔离要素，见数据库表 weipian.quarantine")
    return lines


# ------------------------------------------------------------ progress

class _NoBar:
    def update(self, n: int = 1) -> None:
        pass


@contextlib.contextmanager
def _bar(total: int | None, label: str):
    """A progress bar on stderr when it is a terminal (tqdm), else nothing."""
    if not sys.stderr.isatty():
        yield _NoBar()
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=f"读取 {label}", unit=" 要素", unit_scale=True, leave=False,
              file=sys.stderr, mininterval=0.5) as bar:
        yield bar


@contextlib.contextmanager
def _steps(layer: Layer, total: int):
    """A bar over the SQL steps of one layer (each may take seconds on a large layer)."""
    with _bar(None, layer.label) as bar:
        if isinstance(bar, _NoBar):
            yield lambda name: None
            return
        bar.unit, bar.unit_scale = " 步", False
        bar.reset(total=total)
        bar.set_description(f"入库 {layer.label}")

        def step(name: str) -> None:
            bar.set_postfix_str(name)
            bar.update(1)

        yield step
