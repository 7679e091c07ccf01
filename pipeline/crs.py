"""Does a layer's coordinate system fit its coordinates?

A .prj that disagrees with the numbers is the most common silent error in
county deliveries: a zone-prefixed Gauss-Kruger easting (37 512 345) under a
CRS without the prefix, longitudes under a projected CRS, metres under
EPSG:4490, or the wrong central meridian.  Transforming such a layer would put
it hundreds of kilometres away (or fail), so the layer is refused before it is
loaded, with what its numbers look like.

Checked: the layer's extent, read in its declared CRS and taken to CGCS2000
longitude/latitude, must lie within that CRS's area of use (EPSG) and near the
county's working CRS zone, each with a margin.
"""

from __future__ import annotations

import math

from pyproj import CRS, Transformer
from pyproj.exceptions import ProjError

from pipeline.errors import DataSourceError

#: Degrees a layer may reach beyond its CRS's area of use (zones are used a little past their edges).
MARGIN_DEG = 1.0
#: Degrees a layer may lie from the county's working zone.
WORK_MARGIN_DEG = 1.5


def check_coordinates(label: str, epsg: int, bounds, work_srid: int, origin: str) -> None:
    """Raise DataSourceError when ``bounds`` (xmin, ymin, xmax, ymax) do not fit EPSG:``epsg``.

    ``origin`` says where the CRS came from (".prj", "county.toml 中的 crs").
    """
    if bounds is None or not all(math.isfinite(v) for v in bounds):
        return
    src = CRS.from_epsg(epsg)
    lonlat = _to_lonlat(src, bounds)
    use = src.area_of_use.bounds if src.area_of_use else None
    work_use = CRS.from_epsg(work_srid).area_of_use
    fits_src = lonlat is not None and (use is None or _within(lonlat, use, MARGIN_DEG))
    fits_work = lonlat is not None and (work_use is None or _within(lonlat, work_use.bounds, WORK_MARGIN_DEG))
    if fits_src and fits_work:
        return
    guess_epsg, guess = looks_like(bounds, work_srid)
    xmin, ymin, xmax, ymax = bounds
    extent = f"坐标范围 X {_num(xmin)}–{_num(xmax)}、Y {_num(ymin)}–{_num(ymax)}"
    head = f"{label}: 坐标与坐标系不符：{origin}为 EPSG:{epsg}（{src.name}），{extent}"
    if guess_epsg == epsg:
        w = work_use.bounds if work_use else None
        raise DataSourceError(
            f"{head}，换算后位于东经 {lonlat[0]:.2f}°–{lonlat[2]:.2f}°、北纬 {lonlat[1]:.2f}°–{lonlat[3]:.2f}°，"
            f"不在县工作坐标系 EPSG:{work_srid} 的范围（东经 {w[0]:g}°–{w[2]:g}°）附近；"
            "请确认这是本县的数据，且 .prj 的中央经线正确")
    where = ("，不在该坐标系的适用范围内" if not fits_src else
             f"，换算后位于东经 {lonlat[0]:.2f}°–{lonlat[2]:.2f}°，离县工作坐标系 EPSG:{work_srid} 太远")
    fix = (f'请修正 .prj，或在 county.toml 中为该图层写 crs = "EPSG:{guess_epsg}"' if guess_epsg else
           '请确认坐标系，并在 county.toml 中为该图层写 crs = "EPSG:...."')
    raise DataSourceError(f"{head}{where}；这些数字看起来是{guess}；{fix}")


def looks_like(bounds, work_srid: int) -> tuple[int | None, str]:
    """(EPSG code or None, description) of the CGCS2000 CRS whose numbers ``bounds`` resemble."""
    xmin, ymin, xmax, ymax = bounds
    if -180 <= xmin <= xmax <= 180 and -90 <= ymin <= ymax <= 90:
        return 4490, "经纬度（CGCS2000 地理坐标 EPSG:4490）"
    northing = 1e6 < ymin <= ymax < 7e6
    zone = int(xmin // 1e6)
    if northing and zone == int(xmax // 1e6):
        if 25 <= zone <= 45:
            code = 4513 + zone - 25
            return code, f"带带号的 3 度带高斯-克吕格坐标（第 {zone} 带，中央经线 {3 * zone}°E，EPSG:{code}）"
        if 13 <= zone <= 23:
            code = 4491 + zone - 13
            return code, f"带带号的 6 度带高斯-克吕格坐标（第 {zone} 带，中央经线 {6 * zone - 3}°E，EPSG:{code}）"
    if northing and 0 < xmin <= xmax < 1e6:
        if 4534 <= work_srid <= 4554:
            cm = 75 + 3 * (work_srid - 4534)
            return work_srid, (f"不带带号的 3 度带高斯-克吕格坐标（若中央经线为 {cm}°E，即县工作坐标系 "
                               f"EPSG:{work_srid}）")
        return None, "不带带号的 3 度带高斯-克吕格坐标（EPSG:4534–4554，按中央经线选择）"
    return None, "无法判断的坐标"


def _to_lonlat(src: CRS, bounds) -> tuple[float, float, float, float] | None:
    if src.is_geographic:
        lonlat = tuple(bounds)
    else:
        try:
            t = Transformer.from_crs(src, CRS.from_epsg(4490), always_xy=True)
            lonlat = t.transform_bounds(*bounds, densify_pts=21)
        except (ProjError, ValueError):
            return None
    if not all(math.isfinite(v) for v in lonlat):
        return None
    w, s, e, n = lonlat
    if not (-180 <= w <= e <= 180 and -90 <= s <= n <= 90):
        return None
    return w, s, e, n


def _within(lonlat, use, margin: float) -> bool:
    w, s, e, n = lonlat
    return w >= use[0] - margin and e <= use[2] + margin and s >= use[1] - margin and n <= use[3] + margin


def _num(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 1000 else f"{v:.4f}".rstrip("0").rstrip(".")
