"""The loaded layers of one county and batch, for the baselines (and their comparison).

The baselines start from what weipian's ingest stage left in PostGIS (features
transformed to the working CRS, repaired, DLBM grouped, dates parsed), so the
comparison is about the classification alone. Reading is timed apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import psycopg
import shapely

CLASSES = ("illegal", "legal", "agri_adjust", "unchanged")  # priority order (Decision 6)
SUBTYPES = ("bnpbj", "wnpbj", "wpxj", "lsyd_cq", "wbjy", "ssny_wba")
#: The per-polygon columns every implementation reports (and the comparison reads).
RESULT_COLUMNS = ["change_id", "jcbh", "class", "auto_class", "xzqdm", "area_m2", "legal_m2", "unchanged_m2",
                  "agri_m2", "illegal_m2", "cultivated_m2", "farmland_m2", "illegal_cultivated_m2",
                  "bnpbj_m2", "wnpbj_m2", "wpxj_m2", "lsyd_cq_m2", "wbjy_m2", "ssny_wba_m2"]
AREA_COLUMNS = [c for c in RESULT_COLUMNS if c.endswith("_m2")]


@dataclass
class Layers:
    srid: int
    min_part_m2: float
    polygons: pd.DataFrame   # id, jcbh, batch, hsx, y, rule, geom
    landuse: pd.DataFrame    # geom, construction, cultivated, kcxs
    approvals: pd.DataFrame  # geom, pzrq, role, yxqz
    farmland: pd.DataFrame   # geom
    townships: pd.DataFrame  # xzqdm, geom
    field: pd.DataFrame      # jcbh, sfbh, pdlx (the effective row per JCBH)

    @property
    def n_rows(self) -> int:
        return sum(len(x) for x in (self.polygons, self.landuse, self.approvals, self.farmland, self.townships))


def _frame(conn, query: str, params) -> pd.DataFrame:
    cur = conn.execute(query, params)
    cols = [d.name for d in cur.description]
    df = pd.DataFrame(cur.fetchall(), columns=cols)
    if "wkb" in df:
        df["geom"] = shapely.from_wkb(df.pop("wkb").to_numpy())
    return df


def load(conn: psycopg.Connection, county: str, batch: str, min_part_m2: float = 10.0) -> Layers:
    srid = conn.execute("SELECT srid FROM weipian.county WHERE code = %s", (county,)).fetchone()[0]
    polygons = _frame(conn, """
        SELECT c.id, c.jcbh, c.batch, c.hsx, coalesce(t.rule, 'construction') AS rule, ST_AsBinary(c.geom) AS wkb
        FROM weipian.change_polygon c LEFT JOIN weipian.change_type t ON t.bhlx = c.bhlx
        WHERE c.county_code = %s AND c.batch = %s ORDER BY c.id""", (county, batch))
    polygons["hsx"] = pd.to_datetime(polygons.hsx)
    polygons["y"] = polygons.hsx.dt.year
    landuse = _frame(conn, """
        SELECT land_group = 'construction' AS construction, is_cultivated AS cultivated, kcxs, ST_AsBinary(geom) AS wkb
        FROM weipian.landuse WHERE county_code = %s""", (county,))
    approvals = _frame(conn, """
        SELECT a.pzrq, coalesce(t.role, 'construction') AS role, a.yxqz, ST_AsBinary(a.geom) AS wkb
        FROM weipian.approval a LEFT JOIN weipian.approval_type t ON t.pzlx = a.pzlx
        WHERE a.county_code = %s""", (county,))
    approvals["pzrq"] = pd.to_datetime(approvals.pzrq)
    approvals["yxqz"] = pd.to_datetime(approvals.yxqz)
    farmland = _frame(conn, "SELECT ST_AsBinary(geom) AS wkb FROM weipian.farmland WHERE county_code = %s", (county,))
    townships = _frame(conn, "SELECT xzqdm, ST_AsBinary(geom) AS wkb FROM weipian.township WHERE county_code = %s",
                       (county,))
    field = _frame(conn, """
        SELECT DISTINCT ON (jcbh) jcbh, sfbh, pdlx FROM weipian.field_check
        WHERE county_code = %s AND (batch IS NULL OR batch = %s)
        ORDER BY jcbh, layer_index DESC, feature_index DESC""", (county, batch))
    return Layers(srid, min_part_m2, polygons, landuse, approvals, farmland, townships, field)


def polygonal(geoms) -> np.ndarray:
    """The polygonal part of each geometry (as ST_CollectionExtract(g, 3)); None where nothing is left."""
    geoms = np.asarray(geoms, dtype=object)
    out = np.full(len(geoms), None, dtype=object)
    idx = np.flatnonzero(~shapely.is_missing(geoms))
    t = shapely.get_type_id(geoms[idx])
    empty = shapely.is_empty(geoms[idx])
    keep = idx[((t == 3) | (t == 6)) & ~empty]
    out[keep] = geoms[keep]
    for i in idx[(t == 7) & ~empty]:
        parts = [g for g in shapely.get_parts(geoms[i]) if shapely.get_type_id(g) in (3, 6) and not g.is_empty]
        if parts:
            out[i] = shapely.multipolygons(shapely.get_parts(np.array(parts, dtype=object)))
    return out


def compare(ours: pd.DataFrame, theirs: pd.DataFrame, abs_m2: float, rel: float) -> dict:
    """Per class totals and per polygon differences between two result frames."""
    a = ours.set_index("change_id")[AREA_COLUMNS + ["class"]]
    b = theirs.set_index("change_id")[AREA_COLUMNS + ["class"]].reindex(a.index)
    diff = (a[AREA_COLUMNS] - b[AREA_COLUMNS].astype(float)).abs()
    allowed = np.maximum(abs_m2, rel * a[AREA_COLUMNS].abs())
    bad = (diff > allowed) | b[AREA_COLUMNS].isna()
    totals = {c: {"weipian": float(a[c].sum()), "other": float(b[c].sum()),
                  "rel_diff": float(abs(a[c].sum() - b[c].sum()) / max(abs(a[c].sum()), 1e-9))}
              for c in ("area_m2", "legal_m2", "unchanged_m2", "agri_m2", "illegal_m2", "cultivated_m2", "farmland_m2")}
    worst = diff.max()
    return {
        "polygons": int(len(a)),
        "missing": int(b["class"].isna().sum()),
        "class_mismatches": int((a["class"] != b["class"]).sum()),
        "polygons_outside_tolerance": int(bad.any(axis=1).sum()),
        "max_abs_diff_m2": {c: float(worst[c]) for c in AREA_COLUMNS},
        "class_totals_m2": totals,
        "tolerance": f"|Δ| ≤ max({abs_m2} m², {rel:g} × value) per polygon and column",
        "ok": bool(not bad.any(axis=None) and (a["class"] == b["class"]).all()),
    }
