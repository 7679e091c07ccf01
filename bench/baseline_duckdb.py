"""Baseline: the classification of domain.md in DuckDB's spatial extension.

The same rules as weipian's SQL, written set-based for DuckDB: spatial joins
(ST_Intersects, DuckDB's spatial join operator) find each change polygon's
construction parcels and approvals, ST_Union_Agg builds each polygon's sets,
the desk pieces come from ST_Intersection / ST_Difference stage by stage, the
final pieces are cut by township and measured against the cultivated parcels
and the farmland. DuckDB runs every statement on all cores.

Ellipsoidal areas: ST_Transform to EPSG:4490 and ST_Area_Spheroid (GeographicLib
on WGS84; WGS84 and CGCS2000 differ in the 10th digit of the flattening, which
changes areas by less than 1e-9 relative).

The extension comes from PyPI (duckdb-ext-spatial, version pinned to the duckdb
package in pyproject's `bench` extra) and is loaded from that package's folder:
nothing is downloaded at run time. Not covered (nor compared): the plan-layer
measures (城镇开发边界 / 生态保护红线).

    python bench/baseline_duckdb.py COUNTY_CODE BATCH [--csv results.csv] [--threads N]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import duckdb
import pandas as pd
import shapely

try:
    from bench.layers import RESULT_COLUMNS, Layers
except ImportError:
    from layers import RESULT_COLUMNS, Layers


def connect(threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the spatial extension of the duckdb-ext-spatial package."""
    import duckdb_ext

    version = "v" + duckdb.__version__
    found = [Path(p) / "extensions" / version for p in duckdb_ext.__path__]
    paths = [p / d / "spatial.duckdb_extension" for p in found if p.is_dir() for d in sorted(p.iterdir())]
    paths = [p for p in paths if p.is_file()]
    if not paths:
        raise RuntimeError(f"no spatial extension for duckdb {duckdb.__version__} in duckdb_ext "
                           f"({list(duckdb_ext.__path__)}); pip install 'duckdb-ext-spatial=={duckdb.__version__}.*'")
    con = duckdb.connect(config={"allow_unsigned_extensions": "true", "autoinstall_known_extensions": "false",
                                 "autoload_known_extensions": "false"})
    con.execute(f"LOAD '{paths[0]}'")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    return con


def _register(con, name: str, df: pd.DataFrame) -> None:
    frame = df.copy()
    frame["wkb"] = shapely.to_wkb(frame.pop("geom").to_numpy())
    con.register(f"{name}_in", frame)
    cols = ", ".join(f'"{c}"' for c in frame.columns if c != "wkb")
    con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT {cols}{', ' if cols else ''}ST_GeomFromWKB(wkb) AS geom FROM {name}_in")
    con.unregister(f"{name}_in")


def load(con, L: Layers) -> None:
    """Copy the layers into DuckDB tables (timed apart from the classification)."""
    p = L.polygons[["id", "jcbh", "hsx", "y", "rule", "geom"]].copy()
    p["hsx"] = p.hsx.dt.date
    _register(con, "p", p)
    _register(con, "lu", L.landuse)
    a = L.approvals.copy()
    a["pzrq"], a["yxqz"] = a.pzrq.dt.date, a.yxqz.dt.date
    _register(con, "a", a)
    _register(con, "fm", L.farmland)
    _register(con, "t", L.townships)
    con.register("fc_in", L.field)
    con.execute("CREATE OR REPLACE TABLE fc AS SELECT * FROM fc_in")
    con.unregister("fc_in")


SQL = r"""
CREATE OR REPLACE MACRO polygonal(g) AS
    CASE WHEN g IS NULL OR ST_IsEmpty(ST_CollectionExtract(g, 3)) THEN NULL ELSE ST_CollectionExtract(g, 3) END;
CREATE OR REPLACE MACRO inter_raw(a, b) AS CASE WHEN a IS NULL OR b IS NULL THEN NULL ELSE ST_Intersection(a, b) END;
CREATE OR REPLACE MACRO diff_raw(a, b) AS
    CASE WHEN a IS NULL THEN NULL WHEN b IS NULL THEN a ELSE ST_Difference(a, b) END;
CREATE OR REPLACE MACRO area_m2(g) AS
    coalesce(ST_Area_Spheroid(ST_FlipCoordinates(ST_Transform(g, 'EPSG:{srid}', 'EPSG:4490', always_xy := true))), 0);

CREATE OR REPLACE TABLE c_sets AS
SELECT p.id, ST_Union_Agg(lu.geom) AS c
FROM p JOIN lu ON ST_Intersects(p.geom, lu.geom)
WHERE lu.construction
GROUP BY p.id;

CREATE OR REPLACE TABLE a_pairs AS
SELECT p.id, a.geom,
       a.pzrq <= p.hsx AND a.role <> 'facility'
           AND NOT (a.role = 'temporary' AND a.yxqz IS NOT NULL AND a.yxqz < p.hsx) AS v,
       year(a.pzrq) = p.y AS same_year,
       a.role = 'facility' AND a.pzrq <= p.hsx AS f,
       a.pzrq > p.hsx AS l,
       a.role = 'temporary' AND a.yxqz IS NOT NULL AND a.yxqz < p.hsx AS e
FROM p JOIN a ON ST_Intersects(p.geom, a.geom);

CREATE OR REPLACE TABLE a_sets AS
SELECT id,
       ST_Union_Agg(geom) FILTER (WHERE v) AS v,
       ST_Union_Agg(geom) FILTER (WHERE v AND same_year) AS vy,
       ST_Union_Agg(geom) FILTER (WHERE f) AS f,
       ST_Union_Agg(geom) FILTER (WHERE l) AS l,
       ST_Union_Agg(geom) FILTER (WHERE e) AS e
FROM a_pairs GROUP BY id;

CREATE OR REPLACE TABLE s1 AS
SELECT p.id, p.rule, p.geom, c.c, s.v, s.vy, s.f, s.l, s.e,
       CASE WHEN p.rule <> 'agricultural' THEN polygonal(inter_raw(p.geom, c.c)) END AS unchanged,
       CASE WHEN p.rule <> 'agricultural' THEN polygonal(diff_raw(p.geom, c.c)) END AS rest
FROM p LEFT JOIN c_sets c USING (id) LEFT JOIN a_sets s USING (id);

CREATE OR REPLACE TABLE s2 AS
SELECT *,
       CASE WHEN rule = 'facility' THEN polygonal(inter_raw(rest, f)) END AS agri,
       CASE WHEN rule = 'facility' THEN polygonal(diff_raw(rest, f)) END AS unfiled,
       CASE WHEN rule = 'construction' THEN polygonal(inter_raw(rest, v)) END AS legal,
       CASE WHEN rule = 'construction' THEN polygonal(diff_raw(rest, v)) END AS illegal
FROM s1;

CREATE OR REPLACE TABLE s3 AS
SELECT *,
       polygonal(inter_raw(illegal, l)) AS late, polygonal(diff_raw(illegal, l)) AS not_late,
       polygonal(inter_raw(legal, vy)) AS bnpbj, polygonal(diff_raw(legal, vy)) AS wnpbj
FROM s2;

CREATE OR REPLACE TABLE desk AS
WITH s4 AS (
    SELECT *, polygonal(inter_raw(not_late, e)) AS lsyd_cq, polygonal(diff_raw(not_late, e)) AS wbjy FROM s3
),
pieces AS (
    SELECT id, 'agri_adjust' AS class, NULL AS subtype, CASE WHEN rule = 'agricultural' THEN geom END AS g FROM s4
    UNION ALL SELECT id, 'unchanged', NULL, unchanged FROM s4
    UNION ALL SELECT id, 'agri_adjust', NULL, agri FROM s4
    UNION ALL SELECT id, 'illegal', 'ssny_wba', unfiled FROM s4
    UNION ALL SELECT id, 'legal', 'bnpbj', bnpbj FROM s4
    UNION ALL SELECT id, 'legal', 'wnpbj', wnpbj FROM s4
    UNION ALL SELECT id, 'illegal', 'wpxj', late FROM s4
    UNION ALL SELECT id, 'illegal', 'lsyd_cq', lsyd_cq FROM s4
    UNION ALL SELECT id, 'illegal', 'wbjy', wbjy FROM s4
)
SELECT id, class, subtype, g AS geom, area_m2(g) AS area_m2 FROM pieces WHERE g IS NOT NULL;

CREATE OR REPLACE TABLE judgement AS
WITH prio(class, priority) AS (VALUES ('illegal', 1), ('legal', 2), ('agri_adjust', 3), ('unchanged', 4)),
ca AS (
    SELECT p.id, p.jcbh, pr.class, pr.priority, coalesce(sum(d.area_m2), 0) AS a
    FROM p CROSS JOIN prio pr LEFT JOIN desk d ON d.id = p.id AND d.class = pr.class
    GROUP BY ALL
),
ranked AS (
    SELECT *, row_number() OVER (PARTITION BY id ORDER BY a >= {min_part} DESC,
                                 CASE WHEN a >= {min_part} THEN priority ELSE 0 END, a DESC, priority) AS r
    FROM ca
)
SELECT r.id, r.class AS auto_class, fc.sfbh, fc.pdlx,
       CASE WHEN fc.sfbh = '否' THEN 'unchanged'
            WHEN fc.pdlx IS NOT NULL AND fc.pdlx <> r.class THEN fc.pdlx
            ELSE r.class END AS class
FROM ranked r LEFT JOIN fc ON fc.jcbh = r.jcbh
WHERE r.r = 1;

CREATE OR REPLACE TABLE final AS
WITH o AS (
    SELECT s.id, s.rule, s.geom, s.vy, s.l, s.e, j.class,
           j.class = 'illegal' AND s.rule <> 'facility' AS by_approval
    FROM s1 s JOIN judgement j USING (id)
    WHERE j.class <> j.auto_class OR j.sfbh IS NOT DISTINCT FROM '否'
),
o2 AS (SELECT *, CASE WHEN by_approval THEN polygonal(diff_raw(geom, l)) END AS not_late FROM o),
pieces AS (
    SELECT id, 'unchanged' AS class, NULL AS subtype, CASE WHEN class = 'unchanged' THEN geom END AS g FROM o2
    UNION ALL SELECT id, 'agri_adjust', NULL, CASE WHEN class = 'agri_adjust' THEN geom END FROM o2
    UNION ALL SELECT id, 'legal', 'bnpbj', CASE WHEN class = 'legal' THEN polygonal(inter_raw(geom, vy)) END FROM o2
    UNION ALL SELECT id, 'legal', 'wnpbj', CASE WHEN class = 'legal' THEN polygonal(diff_raw(geom, vy)) END FROM o2
    UNION ALL SELECT id, 'illegal', 'ssny_wba', CASE WHEN class = 'illegal' AND rule = 'facility' THEN geom END FROM o2
    UNION ALL SELECT id, 'illegal', 'wpxj', CASE WHEN by_approval THEN polygonal(inter_raw(geom, l)) END FROM o2
    UNION ALL SELECT id, 'illegal', 'lsyd_cq', CASE WHEN by_approval THEN polygonal(inter_raw(not_late, e)) END FROM o2
    UNION ALL SELECT id, 'illegal', 'wbjy', CASE WHEN by_approval THEN polygonal(diff_raw(not_late, e)) END FROM o2
)
SELECT d.id, d.class, d.subtype, d.geom FROM desk d JOIN judgement j USING (id)
WHERE j.class = j.auto_class AND j.sfbh IS DISTINCT FROM '否'
UNION ALL
SELECT id, class, subtype, g FROM pieces WHERE g IS NOT NULL;

CREATE OR REPLACE TABLE tp AS
WITH f AS (SELECT row_number() OVER () AS k, * FROM final),
touch AS (SELECT f.k, t.xzqdm, t.geom AS tg FROM f JOIN t ON ST_Intersects(f.geom, t.geom)),
cut AS (
    SELECT f.k, f.id, f.class, f.subtype, tc.xzqdm, polygonal(ST_Intersection(f.geom, tc.tg)) AS geom
    FROM f JOIN touch tc USING (k)
    UNION ALL
    SELECT f.k, f.id, f.class, f.subtype, NULL, polygonal(diff_raw(f.geom, u.tu))
    FROM f LEFT JOIN (SELECT k, ST_Union_Agg(tg) AS tu FROM touch GROUP BY k) u USING (k)
)
SELECT row_number() OVER () AS pk, id, class, subtype, xzqdm, geom, area_m2(geom) AS area_m2
FROM cut WHERE geom IS NOT NULL;

CREATE OR REPLACE TABLE cult AS
SELECT tp.pk, sum(area_m2(polygonal(ST_Intersection(tp.geom, lu.geom))) * (1 - lu.kcxs)) AS m2
FROM tp JOIN lu ON ST_Intersects(tp.geom, lu.geom)
WHERE lu.cultivated
GROUP BY tp.pk;

CREATE OR REPLACE TABLE farm AS
WITH u AS (SELECT tp.pk, ST_Union_Agg(fm.geom) AS g FROM tp JOIN fm ON ST_Intersects(tp.geom, fm.geom) GROUP BY tp.pk)
SELECT u.pk, area_m2(polygonal(ST_Intersection(tp.geom, u.g))) AS m2 FROM u JOIN tp USING (pk);
"""

RESULTS = """
WITH pc AS (
    SELECT tp.*, coalesce(c.m2, 0) AS cultivated_m2, coalesce(f.m2, 0) AS farmland_m2
    FROM tp LEFT JOIN cult c USING (pk) LEFT JOIN farm f USING (pk)
),
sums AS (
    SELECT id,
           sum(area_m2) FILTER (WHERE class = 'legal') AS legal_m2,
           sum(area_m2) FILTER (WHERE class = 'unchanged') AS unchanged_m2,
           sum(area_m2) FILTER (WHERE class = 'agri_adjust') AS agri_m2,
           sum(area_m2) FILTER (WHERE class = 'illegal') AS illegal_m2,
           sum(cultivated_m2) AS cultivated_m2, sum(farmland_m2) AS farmland_m2,
           sum(cultivated_m2) FILTER (WHERE class = 'illegal') AS illegal_cultivated_m2,
           sum(area_m2) FILTER (WHERE subtype = 'bnpbj') AS bnpbj_m2,
           sum(area_m2) FILTER (WHERE subtype = 'wnpbj') AS wnpbj_m2,
           sum(area_m2) FILTER (WHERE subtype = 'wpxj') AS wpxj_m2,
           sum(area_m2) FILTER (WHERE subtype = 'lsyd_cq') AS lsyd_cq_m2,
           sum(area_m2) FILTER (WHERE subtype = 'wbjy') AS wbjy_m2,
           sum(area_m2) FILTER (WHERE subtype = 'ssny_wba') AS ssny_wba_m2
    FROM pc GROUP BY id
),
share AS (
    SELECT id, xzqdm, row_number() OVER (PARTITION BY id ORDER BY round(a, 4) DESC, xzqdm) AS r
    FROM (SELECT id, xzqdm, sum(area_m2) AS a FROM pc WHERE xzqdm IS NOT NULL GROUP BY id, xzqdm)
)
SELECT p.id AS change_id, p.jcbh, j.class, j.auto_class, sh.xzqdm, area_m2(p.geom) AS area_m2,
       coalesce(legal_m2, 0) AS legal_m2, coalesce(unchanged_m2, 0) AS unchanged_m2,
       coalesce(agri_m2, 0) AS agri_m2, coalesce(illegal_m2, 0) AS illegal_m2,
       coalesce(cultivated_m2, 0) AS cultivated_m2, coalesce(farmland_m2, 0) AS farmland_m2,
       coalesce(illegal_cultivated_m2, 0) AS illegal_cultivated_m2,
       coalesce(bnpbj_m2, 0) AS bnpbj_m2, coalesce(wnpbj_m2, 0) AS wnpbj_m2, coalesce(wpxj_m2, 0) AS wpxj_m2,
       coalesce(lsyd_cq_m2, 0) AS lsyd_cq_m2, coalesce(wbjy_m2, 0) AS wbjy_m2,
       coalesce(ssny_wba_m2, 0) AS ssny_wba_m2
FROM p JOIN judgement j USING (id) LEFT JOIN sums s USING (id) LEFT JOIN share sh ON sh.id = p.id AND sh.r = 1
ORDER BY p.id
"""


def classify(con, L: Layers) -> pd.DataFrame:
    con.execute(SQL.replace("{srid}", str(L.srid)).replace("{min_part}", repr(float(L.min_part_m2))))
    return con.execute(RESULTS).df()[RESULT_COLUMNS]


def main(argv=None) -> int:
    import argparse
    import json

    from pipeline import db

    try:
        from bench.layers import load as load_layers
    except ImportError:
        from layers import load as load_layers
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("county")
    ap.add_argument("batch")
    ap.add_argument("--csv", help="write the per-polygon results here")
    ap.add_argument("--threads", type=int, help="DuckDB threads (default: all cores)")
    args = ap.parse_args(argv)
    with db.connect() as conn:
        layers = load_layers(conn, args.county, args.batch)
    t0 = time.time()
    con = connect(args.threads)
    load(con, layers)
    t1, c1 = time.time(), time.process_time()
    res = classify(con, layers)
    t2, c2 = time.time(), time.process_time()
    if args.csv:
        res.to_csv(args.csv, index=False)
    print(json.dumps({"load_s": round(t1 - t0, 3), "classify_s": round(t2 - t1, 3),
                      "classify_cpu_s": round(c2 - c1, 3), "polygons": len(res),
                      "classes": res["class"].value_counts().to_dict()}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
