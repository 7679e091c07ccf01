"""Baseline: the classification of domain.md written the way a geopandas user would.

Spatial joins (gpd.sjoin) find each change polygon's construction parcels and
approvals; the date rules pick, per polygon, which approvals count; each set is
unioned per polygon and the desk pieces come from vectorised shapely
intersection / difference; the final pieces are cut by township with
gpd.overlay(how="identity"), and 耕地 / 永久基本农田 come from gpd.overlay
against the cultivated parcels and the farmland. Ellipsoidal areas: pyproj
transforms to EPSG:4490 and Geod(GRS80) measures each piece (as
ST_Area(geography) does, up to the algorithm's last digits).

Not covered here (nor compared): the plan-layer measures (城镇开发边界 /
生态保护红线), which only add two columns for illegal pieces.

    python bench/baseline_geopandas.py COUNTY_CODE BATCH [--csv results.csv]   # times it, prints JSON
"""

from __future__ import annotations

import sys
import time

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Geod, Transformer

try:
    from bench.layers import CLASSES, RESULT_COLUMNS, SUBTYPES, Layers, polygonal
except ImportError:  # run as a script from bench/
    from layers import CLASSES, RESULT_COLUMNS, SUBTYPES, Layers, polygonal

GEOD = Geod(ellps="GRS80")  # the CGCS2000 ellipsoid


def ell_area(geoms, srid: int) -> np.ndarray:
    """Geodesic area (m²) of each geometry on the CGCS2000 ellipsoid; 0 for None."""
    geoms = np.asarray(geoms, dtype=object)
    out = np.zeros(len(geoms))
    ok = np.flatnonzero(~shapely.is_missing(geoms))
    if not len(ok):
        return out
    tf = Transformer.from_crs(srid, 4490, always_xy=True)
    geo = shapely.transform(geoms[ok], lambda xy: np.column_stack(tf.transform(xy[:, 0], xy[:, 1])))
    out[ok] = [abs(GEOD.geometry_area_perimeter(g)[0]) for g in geo]
    return out


def inter(a, b) -> np.ndarray:
    a, b = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
    out = np.full(len(a), None, dtype=object)
    m = ~shapely.is_missing(a) & ~shapely.is_missing(b)
    out[m] = polygonal(shapely.intersection(a[m], b[m]))
    return out


def diff(a, b) -> np.ndarray:
    a, b = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
    out = np.where(shapely.is_missing(b), a, None)
    m = ~shapely.is_missing(a) & ~shapely.is_missing(b)
    out[m] = polygonal(shapely.difference(a[m], b[m]))
    out[shapely.is_missing(a)] = None
    return out


def union_per(n: int, left: np.ndarray, geoms: np.ndarray) -> np.ndarray:
    """For rows 0..n-1: the union of geoms[k] over the pairs k whose left is that row (None if none)."""
    out = np.full(n, None, dtype=object)
    if not len(left):
        return out
    order = np.argsort(left, kind="stable")
    left, geoms = left[order], geoms[order]
    starts = np.flatnonzero(np.r_[True, left[1:] != left[:-1]])
    for s0, s1 in zip(starts, np.r_[starts[1:], len(left)]):
        out[left[s0]] = geoms[s0] if s1 - s0 == 1 else shapely.union_all(geoms[s0:s1])
    return out


def classify(L: Layers) -> pd.DataFrame:
    srid = L.srid
    P = gpd.GeoDataFrame(L.polygons.reset_index(drop=True), geometry="geom", crs=srid)
    n = len(P)
    G = np.asarray(P.geom.values, dtype=object)
    rule = P.rule.to_numpy()
    hsx = P.hsx.to_numpy()
    year = P.y.to_numpy()

    # construction parcels and approvals near each polygon
    LU = gpd.GeoDataFrame(L.landuse, geometry="geom", crs=srid)
    C = LU[LU.construction]
    j = gpd.sjoin(P[["geom"]], C[["geom"]], predicate="intersects")
    Cu = union_per(n, j.index.to_numpy(), np.asarray(C.geom.values, dtype=object)[C.index.get_indexer(j.index_right)])

    A = gpd.GeoDataFrame(L.approvals, geometry="geom", crs=srid)
    j = gpd.sjoin(P[["geom"]], A[["geom"]], predicate="intersects")
    i, k = j.index.to_numpy(), j.index_right.to_numpy()
    ph, py = hsx[i], year[i]
    pzrq, role, yxqz = A.pzrq.to_numpy()[k], A.role.to_numpy()[k], A.yxqz.to_numpy()[k]
    expired = (role == "temporary") & ~pd.isna(yxqz) & (yxqz < ph)
    v = (pzrq <= ph) & (role != "facility") & ~expired
    sets = {
        "v": v,
        "vy": v & (pd.DatetimeIndex(pzrq).year.to_numpy() == py),
        "f": (role == "facility") & (pzrq <= ph),
        "l": pzrq > ph,
        "e": expired,
    }
    ag = np.asarray(A.geom.values, dtype=object)[k]
    U = {name: union_per(n, i[m], ag[m]) for name, m in sets.items()}

    # desk pieces
    none = np.full(n, None, dtype=object)
    is_agri, is_fac, is_con = rule == "agricultural", rule == "facility", rule == "construction"
    unchanged = np.where(is_agri, None, inter(G, Cu))
    rest = np.where(is_agri, None, diff(G, Cu))
    agri = np.where(is_fac, inter(rest, U["f"]), None)
    unfiled = np.where(is_fac, diff(rest, U["f"]), None)
    legal = np.where(is_con, inter(rest, U["v"]), None)
    illegal = np.where(is_con, diff(rest, U["v"]), None)
    late, not_late = inter(illegal, U["l"]), diff(illegal, U["l"])
    desk = [("agri_adjust", None, np.where(is_agri, G, None)), ("unchanged", None, unchanged),
            ("agri_adjust", None, agri), ("illegal", "ssny_wba", unfiled),
            ("legal", "bnpbj", inter(legal, U["vy"])), ("legal", "wnpbj", diff(legal, U["vy"])),
            ("illegal", "wpxj", late), ("illegal", "lsyd_cq", inter(not_late, U["e"])),
            ("illegal", "wbjy", diff(not_late, U["e"]))]
    D = _pieces(desk)
    D["area_m2"] = ell_area(D.geom.to_numpy(), srid)

    # judgement (Decision 6), then the field check (Decision 1)
    ca = D.pivot_table(index="i", columns="class", values="area_m2", aggfunc="sum").reindex(
        index=range(n), columns=list(CLASSES)).fillna(0.0).to_numpy()
    reach = ca >= L.min_part_m2
    first = np.where(reach.any(axis=1), reach.argmax(axis=1), -1)
    largest = ca.argmax(axis=1)  # ties: first in priority order
    auto = np.array(CLASSES, dtype=object)[np.where(first >= 0, first, largest)]
    fc = P[["jcbh"]].merge(L.field, on="jcbh", how="left")
    sfbh, pdlx = fc.sfbh.to_numpy(), fc.pdlx.to_numpy()
    final = np.where(sfbh == "否", "unchanged", np.where(~pd.isna(pdlx) & (pdlx != auto), pdlx, auto))

    # final pieces: desk pieces where confirmed, else all of P in the final class (Decision 2)
    over = (final != auto) | (sfbh == "否")  # SFBH 否: all of P unchanged, whatever the desk pieces
    keep = ~over[D.i.to_numpy()]
    ill = over & (final == "illegal") & ~is_fac
    nl = np.where(ill, diff(G, U["l"]), None)
    override = [("unchanged", None, np.where(over & (final == "unchanged"), G, None)),
                ("agri_adjust", None, np.where(over & (final == "agri_adjust"), G, None)),
                ("legal", "bnpbj", np.where(over & (final == "legal"), inter(G, U["vy"]), None)),
                ("legal", "wnpbj", np.where(over & (final == "legal"), diff(G, U["vy"]), None)),
                ("illegal", "ssny_wba", np.where(over & (final == "illegal") & is_fac, G, None)),
                ("illegal", "wpxj", np.where(ill, inter(G, U["l"]), None)),
                ("illegal", "lsyd_cq", np.where(ill, inter(nl, U["e"]), None)),
                ("illegal", "wbjy", np.where(ill, diff(nl, U["e"]), None))]
    F = pd.concat([D[keep].drop(columns="area_m2"), _pieces(override)], ignore_index=True)
    F["k"] = np.arange(len(F))

    # township pieces and their measures
    T = gpd.GeoDataFrame(L.townships, geometry="geom", crs=srid)
    Fg = gpd.GeoDataFrame(F, geometry="geom", crs=srid)
    TP = gpd.overlay(Fg, T, how="identity", keep_geom_type=True)
    TP["area_m2"] = ell_area(np.asarray(TP.geometry.values, dtype=object), srid)
    TP["pk"] = np.arange(len(TP))
    cult = gpd.overlay(TP[["pk", "geometry"]], LU[LU.cultivated][["kcxs", "geom"]].rename_geometry("geometry"),
                       how="intersection", keep_geom_type=True)
    cult["m2"] = ell_area(np.asarray(cult.geometry.values, dtype=object), srid) * (1 - cult.kcxs.to_numpy())
    TP["cultivated_m2"] = cult.groupby("pk").m2.sum().reindex(TP.pk).fillna(0.0).to_numpy()
    FM = gpd.GeoDataFrame(L.farmland, geometry="geom", crs=srid).rename_geometry("geometry")
    farm = gpd.overlay(TP[["pk", "geometry"]], FM, how="intersection", keep_geom_type=True).dissolve(by="pk")
    farm["m2"] = ell_area(np.asarray(farm.geometry.values, dtype=object), srid)
    TP["farmland_m2"] = farm.m2.reindex(TP.pk).fillna(0.0).to_numpy()
    return _results(P, G, TP, auto, final, srid)


def _pieces(items) -> pd.DataFrame:
    frames = []
    for cls, sub, geoms in items:
        geoms = np.asarray(geoms, dtype=object)
        m = np.flatnonzero(~shapely.is_missing(geoms))
        frames.append(pd.DataFrame({"i": m, "class": cls, "subtype": sub, "geom": geoms[m]}))
    return pd.concat(frames, ignore_index=True)


def _results(P, G, TP, auto, final, srid) -> pd.DataFrame:
    tp = pd.DataFrame(TP.drop(columns="geometry"))
    out = pd.DataFrame({"change_id": P.id.to_numpy(), "jcbh": P.jcbh.to_numpy(), "class": final,
                        "auto_class": auto, "area_m2": ell_area(G, srid)})
    by_i = tp.groupby("i")
    col = {"legal": "legal_m2", "unchanged": "unchanged_m2", "agri_adjust": "agri_m2", "illegal": "illegal_m2"}
    for cls, name in col.items():
        out[name] = tp[tp["class"] == cls].groupby("i").area_m2.sum().reindex(out.index).fillna(0.0).to_numpy()
    out["cultivated_m2"] = by_i.cultivated_m2.sum().reindex(out.index).fillna(0.0).to_numpy()
    out["farmland_m2"] = by_i.farmland_m2.sum().reindex(out.index).fillna(0.0).to_numpy()
    out["illegal_cultivated_m2"] = tp[tp["class"] == "illegal"].groupby("i").cultivated_m2.sum() \
        .reindex(out.index).fillna(0.0).to_numpy()
    for sub in SUBTYPES:
        out[f"{sub}_m2"] = tp[tp.subtype == sub].groupby("i").area_m2.sum().reindex(out.index).fillna(0.0).to_numpy()
    share = tp.dropna(subset=["xzqdm"]).groupby(["i", "xzqdm"]).area_m2.sum().round(4).reset_index()
    share = share.sort_values(["i", "area_m2", "xzqdm"], ascending=[True, False, True]).drop_duplicates("i")
    out["xzqdm"] = share.set_index("i").xzqdm.reindex(out.index).to_numpy()
    return out[RESULT_COLUMNS]


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
    args = ap.parse_args(argv)
    t0 = time.time()
    with db.connect() as conn:
        layers = load_layers(conn, args.county, args.batch)
    t1, c1 = time.time(), time.process_time()
    res = classify(layers)
    t2, c2 = time.time(), time.process_time()
    if args.csv:
        res.to_csv(args.csv, index=False)
    print(json.dumps({"load_s": round(t1 - t0, 3), "classify_s": round(t2 - t1, 3),
                      "classify_cpu_s": round(c2 - c1, 3), "polygons": len(res),
                      "classes": res["class"].value_counts().to_dict()}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
