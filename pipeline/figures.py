"""The report's figures (PNG, beside report.md): the county map and the township chart.

Drawn with matplotlib's Agg backend (no display needed) in the Chinese font of
:mod:`pipeline.fonts`. Change polygons are tens of metres across on a map of tens
of kilometres, so each is drawn as its shape and as a marker at its
representative point, coloured by final class, or most would be invisible.
A glyph the font lacks makes matplotlib warn ("Glyph ... missing"); such warnings
are collected and returned, so the caller can report them and tests can fail on them.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: files only, never a window

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.path import Path as MplPath  # noqa: E402
from matplotlib.patches import Polygon as MplPolygon, Rectangle  # noqa: E402
import shapely  # noqa: E402

from pipeline import fonts  # noqa: E402
from pipeline.report_data import CLASSES, ReportData  # noqa: E402
from pipeline.report_tables import CLASS_ZH  # noqa: E402

COLOURS = {"legal": "#2e8b57", "unchanged": "#8c8c8c", "agri_adjust": "#e6a817", "illegal": "#d62728"}
#: drawing order: the class that matters most on top
DRAW_ORDER = ("unchanged", "agri_adjust", "legal", "illegal")
DPI = 200


def render(data: ReportData, map_path: Path, chart_path: Path) -> list[str]:
    """Write the map and the chart; return the glyph warnings matplotlib gave (none expected)."""
    fonts.use_in_matplotlib()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _save(county_map(data), map_path)
        _save(township_chart(data), chart_path)
    return [str(w.message) for w in caught if "missing from" in str(w.message) or "Glyph" in str(w.message)]


def _save(fig, path: Path) -> None:
    # no timestamps in the PNG: the same data give the same bytes
    fig.savefig(path, dpi=DPI, metadata={"Software": None}, bbox_inches="tight", pad_inches=0.06)
    plt.close(fig)


def _patches(geom):
    """One patch per polygon (its outer ring) of ``geom``. Added with ``ax.add_artist``:
    ``add_patch`` would also walk every segment to update the data limits, which the map
    sets itself."""
    for ring in _exteriors([geom]):
        yield MplPolygon(shapely.get_coordinates(ring), closed=True)


def _exteriors(geoms) -> list:
    """The outer rings of the non-empty polygons of ``geoms`` (holes are not drawn)."""
    parts = shapely.get_parts(geoms)
    parts = parts[(shapely.get_type_id(parts) == 3) & ~shapely.is_empty(parts)]
    return list(shapely.get_exterior_ring(parts))


def county_map(data: ReportData):
    """Townships (borders, names), the county outline, the polygons by class; legend,
    scale bar and north arrow."""
    fig, ax = plt.subplots(figsize=(7.0, 6.2))
    fig.subplots_adjust(left=0.02, right=0.98, top=0.98, bottom=0.1)
    towns = data.township_shapes
    for code, (name, geom) in towns.items():
        for patch in _patches(geom):
            patch.set(facecolor="#f4f1ea", edgecolor="#7a7a7a", linewidth=0.7, linestyle=(0, (4, 2)))
            ax.add_artist(patch)
    if towns:
        outline = shapely.union_all([g for _, g in towns.values()])
        for patch in _patches(outline):
            patch.set(facecolor="none", edgecolor="#333333", linewidth=1.6)
            ax.add_artist(patch)
        for code, (name, geom) in towns.items():
            p = geom.representative_point()
            ax.text(p.x, p.y, name, ha="center", va="center", fontsize=10, color="#555555",
                    bbox=dict(facecolor="white", edgecolor="none", alpha=0.55, pad=1.0), zorder=2)
    counts = {c: 0 for c in CLASSES}
    for cls in DRAW_ORDER:
        geoms = [p["geom"] for p in data.polygons if p["class"] == cls]
        counts[cls] = len(geoms)
        # one collection per class: the same paths, colours and line style as a patch each,
        # drawn in one call (thousands of patches took seconds to add and to draw)
        paths = [MplPath(shapely.get_coordinates(ring), closed=True) for ring in _exteriors(geoms)]
        if paths:
            ax.add_collection(PathCollection(paths, facecolors=COLOURS[cls], edgecolors=COLOURS[cls],
                                             linewidths=0.4, joinstyle="miter", capstyle="butt", zorder=3),
                              autolim=False)
        if geoms:
            pts = shapely.point_on_surface(geoms)
            ax.scatter(shapely.get_x(pts), shapely.get_y(pts), s=16, c=COLOURS[cls], edgecolors="white",
                       linewidths=0.4, zorder=4 + DRAW_ORDER.index(cls))
    everything = [g for _, g in towns.values()] + [p["geom"] for p in data.polygons]
    if everything:
        x0, y0, x1, y1 = shapely.total_bounds(everything)
    else:
        x0, y0, x1, y1 = 0.0, 0.0, 1000.0, 1000.0
    pad = 0.04 * max(x1 - x0, y1 - y0, 1.0)
    ax.set_xlim(x0 - pad, x1 + pad)
    ax.set_ylim(y0 - pad * 3.2, y1 + pad)  # room for the scale bar below
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_linewidth(1.2)
    handles = [Line2D([], [], marker="o", linestyle="none", markersize=7, markerfacecolor=COLOURS[c],
                      markeredgecolor="white", label=f"{CLASS_ZH[c]}（{counts[c]} 宗）") for c in reversed(DRAW_ORDER)]
    handles += [Line2D([], [], color="#7a7a7a", linewidth=0.8, linestyle=(0, (4, 2)), label="乡镇界"),
                Line2D([], [], color="#333333", linewidth=1.6, label="县界")]
    # below the map, where it hides no polygon
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.01), ncol=3, fontsize=9,
              frameon=False, columnspacing=1.6, handletextpad=0.4)
    _scale_bar(ax)
    _north_arrow(ax)
    return fig


def _nice_length(span_m: float) -> float:
    """A round scale-bar length near a fifth of the map width: 1, 2 or 5 × 10ⁿ metres."""
    target = span_m / 5
    exp = 10 ** math.floor(math.log10(target))
    return max(m * exp for m in (1, 2, 5) if m * exp <= target)


def _scale_bar(ax) -> None:
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    length = _nice_length(x1 - x0)
    h = (y1 - y0) * 0.012
    bx, by = x0 + (x1 - x0) * 0.05, y0 + (y1 - y0) * 0.045
    for i in range(4):
        ax.add_patch(Rectangle((bx + i * length / 4, by), length / 4, h, facecolor="black" if i % 2 == 0 else "white",
                               edgecolor="black", linewidth=0.6, zorder=6))
    km = length / 1000
    for i, frac in enumerate((0, 0.5, 1)):
        v = km * frac
        label = f"{v:g}" + (" 千米" if frac == 1 else "")
        ax.text(bx + length * frac, by + h * 1.6, label, ha="left" if frac == 1 else "center", va="bottom",
                fontsize=8, zorder=6)


def _north_arrow(ax) -> None:
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    w, h = (x1 - x0) * 0.025, (y1 - y0) * 0.075
    cx, top = x1 - (x1 - x0) * 0.06, y1 - (y1 - y0) * 0.05
    ax.add_patch(MplPolygon([(cx, top), (cx - w, top - h), (cx, top - h * 0.7)], closed=True,
                            facecolor="black", edgecolor="black", linewidth=0.6, zorder=6))
    ax.add_patch(MplPolygon([(cx, top), (cx + w, top - h), (cx, top - h * 0.7)], closed=True,
                            facecolor="white", edgecolor="black", linewidth=0.6, zorder=6))
    ax.text(cx, top + (y1 - y0) * 0.008, "北", ha="center", va="bottom", fontsize=11, zorder=6)


def township_chart(data: ReportData):
    """Illegal area and its 耕地 by township (rank order), ratios over the 15 % line marked."""
    towns = sorted((t for t in data.towns if t["rank"] is not None), key=lambda t: t["rank"])
    names = [t["xzqmc"] for t in towns]
    illegal = [float(t["illegal_mu"]) for t in towns]
    cultivated = [float(t["illegal_cultivated_mu"]) for t in towns]
    fig, ax = plt.subplots(figsize=(7.0, 3.6))
    fig.subplots_adjust(left=0.09, right=0.98, top=0.9, bottom=0.16)
    xs = range(len(towns))
    w = 0.38
    b1 = ax.bar([x - w / 2 for x in xs], illegal, w, color="#d62728", label="违法用地面积")
    b2 = ax.bar([x + w / 2 for x in xs], cultivated, w, color="#8c564b", label="其中占用耕地面积")
    for bars in (b1, b2):
        for bar in bars:
            v = bar.get_height()
            ax.text(bar.get_x() + bar.get_width() / 2, v, f"{v:.2f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(list(xs))
    ax.set_xticklabels(names, fontsize=9)
    for label, t in zip(ax.get_xticklabels(), towns):
        r = t["illegal_cultivated_ratio"]
        if r is not None and r >= 0.15:
            label.set_color("#b22222")
    ax.set_ylabel("面积（亩）", fontsize=9)
    ax.set_ylim(0, max(illegal + [1.0]) * 1.18)
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", linewidth=0.4, alpha=0.6)
    ax.set_axisbelow(True)
    ax.legend(fontsize=8.5, frameon=False, loc="upper right")
    if any(t["illegal_cultivated_ratio"] is not None and t["illegal_cultivated_ratio"] >= 0.15 for t in towns):
        ax.set_title("红色乡镇名称：违法占用耕地比例达到 15%", fontsize=8, color="#b22222", loc="left")
    return fig
