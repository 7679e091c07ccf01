"""Ingest stage: load the layers of county.toml into PostGIS.

Each layer is read (pipeline.sources), its fields mapped to the standard names,
its values parsed, and then streamed with COPY into a staging table; the SQL of
sql/10_ingest/ transforms to the working CRS, repairs geometry and moves rows
into the layer's table, setting unusable features aside in weipian.quarantine.
A layer whose files and settings have not changed (same checksum) is skipped;
a changed one replaces its previous load in the same transaction.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import psycopg
from psycopg import sql

from pipeline import SQL_DIR
from pipeline.config import LAYER_KINDS, County, Layer
from pipeline.db import run_sql_file
from pipeline.errors import DataSourceError
from pipeline.sources import (
    DATE_HINT, NUMERIC_FIELDS, PDLX_VALUES, SFBH_VALUES, BadValue, RawLayer, checksum,
    read_layer, to_date, to_number, to_text,
)

log = logging.getLogger(__name__)
INGEST_SQL = SQL_DIR / "10_ingest"


@dataclass
class LoadReport:
    layer: Layer
    skipped: bool
    n_read: int
    n_loaded: int
    n_repaired: int
    n_quarantined: int

    @property
    def balanced(self) -> bool:
        return self.n_read == self.n_loaded + self.n_repaired + self.n_quarantined

    def line(self) -> str:
        head = f"{self.layer.kind:<11} {self.layer.label}"
        if self.skipped:
            return f"{head}: 未变化，跳过（读取 {self.n_read}，入库 {self.n_loaded + self.n_repaired}，隔离 {self.n_quarantined}）"
        return (f"{head}: 读取 {self.n_read}，原样入库 {self.n_loaded}，修复后入库 {self.n_repaired}，"
                f"隔离 {self.n_quarantined}")


def register_county(conn: psycopg.Connection, county: County) -> None:
    conn.execute(
        """INSERT INTO weipian.county (code, name, srid, toml_path) VALUES (%s, %s, %s, %s)
           ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, srid = EXCLUDED.srid,
               toml_path = EXCLUDED.toml_path, updated_at = now()""",
        (county.code, county.name, county.srid, str(county.toml_path)),
    )


def ingest(conn: psycopg.Connection, county: County) -> list[LoadReport]:
    """Load every layer of the county that is new or changed; drop layers no longer listed.

    Every layer is read and checked before anything is written, so a layer that
    cannot be used stops the run with the database untouched.
    """
    prepared = []
    for layer in county.layers:
        digest = checksum(layer)
        previous = _previous(conn, county, layer)
        if previous and previous[1] == digest:
            prepared.append((layer, digest, None, previous))
            continue
        raw = read_layer(layer)
        rows = _rows(layer, raw)
        prepared.append((layer, digest, (raw, rows), previous))

    reports = []
    with conn.transaction():
        register_county(conn, county)
        _drop_unlisted(conn, county)
        for layer, digest, loaded, previous in prepared:
            if loaded is None:
                reports.append(LoadReport(layer, True, *previous[2:]))
                continue
            raw, rows = loaded
            reports.append(_load(conn, county, layer, digest, raw, rows, previous))
    for r in reports:
        if not r.balanced:
            raise DataSourceError(
                f"{r.layer.label}: 读取 {r.n_read} ≠ 入库 {r.n_loaded} + 修复 {r.n_repaired} + 隔离 {r.n_quarantined}"
            )
    return reports


def _previous(conn, county: County, layer: Layer):
    return conn.execute(
        """SELECT id, checksum, n_read, n_loaded, n_repaired, n_quarantined FROM weipian.source
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


# ------------------------------------------------------------ field mapping

def _field_map(layer: Layer, raw: RawLayer) -> dict[str, str | None]:
    """Standard field → source column name (case-insensitive), None when absent."""
    spec = LAYER_KINDS[layer.kind]
    by_upper = {name.upper(): name for name in raw.columns}
    mapping = {}
    for std in spec["fields"]:
        wanted = layer.fields.get(std, std)
        mapping[std] = by_upper.get(wanted.upper())
        if std in layer.fields and mapping[std] is None:
            raise DataSourceError(
                f"{layer.label}: fields maps {std} to {wanted!r}, which is not a field of this layer "
                f"(fields: {', '.join(raw.columns)})"
            )
    missing = [f for f in spec["required"] if mapping[f] is None
               and not (f == "PZLX" and layer.pzlx)]
    if missing:
        raise DataSourceError(
            f"{layer.label}: required field {missing[0]} not found (fields: {', '.join(raw.columns)}); "
            f"if it has another name, map it in county.toml: fields = {{ {missing[0]} = \"源字段名\" }}"
        )
    one_of = spec.get("one_of")
    if one_of and all(mapping[f] is None for f in one_of):
        raise DataSourceError(
            f"{layer.label}: needs field {' or '.join(one_of)} (fields: {', '.join(raw.columns)})"
        )
    return mapping


def _rows(layer: Layer, raw: RawLayer) -> list[tuple]:
    """Parse values row by row into staging tuples; a bad value rejects only its feature.

    Tuple: (feature_index, reject_reason, raw_attrs_json, wkb, *standard fields).
    """
    spec = LAYER_KINDS[layer.kind]
    mapping = _field_map(layer, raw)
    dates = set(spec.get("dates", []))
    out = []
    for i in range(raw.n):
        values, reasons = [], []
        for std in spec["fields"]:
            col = mapping[std]
            v = raw.columns[col][i] if col else None
            if std in dates:
                try:
                    v = to_date(v)
                except BadValue as e:
                    reasons.append(f"{std} '{e}' 不是日期，{DATE_HINT}")
                    v = None
            elif std in NUMERIC_FIELDS:
                v = to_number(v)
            else:
                v = to_text(v)
            values.append(v)
        rec = dict(zip(spec["fields"], values))
        if layer.kind == "approval" and rec["PZLX"] is None and layer.pzlx:
            rec["PZLX"] = values[spec["fields"].index("PZLX")] = layer.pzlx
        reasons += _missing_required(layer, rec, reasons)
        if layer.kind == "field_check":
            _normalise_field_check(rec, values, spec, reasons)
        wkb = raw.wkb[i] if raw.wkb is not None else None
        reject = "；".join(reasons) if reasons else None
        attrs = None
        if reject:
            attrs = json.dumps({k: to_text(raw.columns[k][i]) for k in raw.columns}, ensure_ascii=False)
        out.append((i, reject, attrs, wkb, *values))
    return out


def _missing_required(layer: Layer, rec: dict, reasons: list[str]) -> list[str]:
    """'X 为空' for each required value missing, unless X was already named as unreadable."""
    return [f"{f} 为空" for f in LAYER_KINDS[layer.kind]["required"]
            if rec.get(f) is None and not any(r.startswith(f + " ") for r in reasons)]


def _normalise_field_check(rec: dict, values: list, spec: dict, reasons: list[str]) -> None:
    fields = spec["fields"]
    sfbh, pdlx = rec.get("SFBH"), rec.get("PDLX")
    if sfbh is not None:
        norm = SFBH_VALUES.get(sfbh.upper())
        if norm is None:
            reasons.append(f"SFBH '{sfbh}' 应为 是 或 否")
        values[fields.index("SFBH")] = norm
    if pdlx is not None:
        norm = PDLX_VALUES.get(pdlx)
        if norm is None:
            reasons.append(f"PDLX '{pdlx}' 应为 合法用地、实地未变化、农业结构调整 或 违法用地")
        values[fields.index("PDLX")] = norm
    if sfbh is None and pdlx is None:
        reasons.append("SFBH 与 PDLX 均为空")


# ------------------------------------------------------------------ loading

def _stage_type(kind: str, std: str) -> str:
    if std in LAYER_KINDS[kind].get("dates", []):
        return "date"
    if std in NUMERIC_FIELDS:
        return "double precision"
    return "text"


def _load(conn, county: County, layer: Layer, digest: str, raw: RawLayer, rows, previous) -> LoadReport:
    spec = LAYER_KINDS[layer.kind]
    if previous:
        conn.execute("DELETE FROM weipian.source WHERE id = %s", (previous[0],))
    source_id = conn.execute(
        """INSERT INTO weipian.source (county_code, kind, path, layer, batch, layer_index, checksum, n_read)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
        (county.code, layer.kind, str(layer.path), layer.layer or "", layer.batch or "",
         layer.index, digest, raw.n),
    ).fetchone()[0]

    cols = [sql.SQL("{} {}").format(sql.Identifier(f.lower()), sql.SQL(_stage_type(layer.kind, f)))
            for f in spec["fields"]]
    conn.execute("DROP TABLE IF EXISTS stage")
    conn.execute(sql.SQL(
        "CREATE TEMP TABLE stage (feature_index integer, reject text, raw_attrs jsonb, wkb bytea, {}) ON COMMIT DROP"
    ).format(sql.SQL(", ").join(cols)))
    names = sql.SQL(", ").join(sql.Identifier(c) for c in
                               ["feature_index", "reject", "raw_attrs", "wkb", *[f.lower() for f in spec["fields"]]])
    with conn.cursor().copy(sql.SQL("COPY stage ({}) FROM STDIN").format(names)) as copy:
        for row in rows:
            copy.write_row(row)

    params = {
        "weipian.county_code": county.code,
        "weipian.source_id": str(source_id),
        "weipian.src_srid": str(raw.epsg or 0),
        "weipian.work_srid": str(county.srid),
        "weipian.batch": layer.batch or "",
        "weipian.layer_index": str(layer.index),
    }
    for name, value in params.items():
        conn.execute("SELECT set_config(%s, %s, true)", (name, value))
    if layer.kind == "change":
        _refuse_duplicate_jcbh(conn, layer)
    first = "00_repair_geometry.sql" if spec["geometry"] else "00_no_geometry.sql"
    run_sql_file(conn, INGEST_SQL / first)
    try:
        run_sql_file(conn, INGEST_SQL / f"{layer.kind}.sql")
    except psycopg.errors.UniqueViolation:
        raise DataSourceError(
            f"{layer.label}: 批次 {layer.batch} 的监测编号与同批次另一图层重复；同一批次的 JCBH 必须唯一"
        ) from None
    run_sql_file(conn, INGEST_SQL / "90_account.sql")
    n = conn.execute(
        "SELECT n_read, n_loaded, n_repaired, n_quarantined FROM weipian.source WHERE id = %s",
        (source_id,),
    ).fetchone()
    return LoadReport(layer, False, *n)


def _refuse_duplicate_jcbh(conn, layer: Layer) -> None:
    dups = conn.execute(
        """SELECT jcbh, count(*) FROM stage WHERE jcbh IS NOT NULL
           GROUP BY jcbh HAVING count(*) > 1 ORDER BY jcbh""",
    ).fetchall()
    if dups:
        listed = ", ".join(f"{j}（{n} 次）" for j, n in dups[:20])
        more = f" 等 {len(dups)} 个" if len(dups) > 20 else ""
        raise DataSourceError(
            f"{layer.label}: 批次 {layer.batch} 中监测编号 JCBH 重复：{listed}{more}；请修正后重新运行"
        )
