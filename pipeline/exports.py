"""The classified polygons for other GIS software, beside classified.gpkg.

- ``classified.shp`` (+ .shx .dbf .prj .cpg) for older systems: attributes in GBK
  (the code page county PCs and older ArcGIS/MapGIS read), declared in the .cpg;
  field names of at most 10 characters, as dBASE allows. The short names are
  fixed in :data:`SHP_FIELDS` and written beside the layer as
  ``classified_shp_fields.csv`` (short name, full name, meaning), so a reader can
  map them back to polygons.csv / classified.gpkg.
- ``classified.gdb`` (Esri File Geodatabase, GDAL's OpenFileGDB driver), layer
  ``change_class``, with the same column names as classified.gpkg.

Both add the Chinese class names (``class_zh``/``auto_class_zh``; in the
Shapefile ``RDLX``/``NYPD``) that the English ids of the contract lack.
"""

from __future__ import annotations

import csv
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import WeipianError

if TYPE_CHECKING:  # the layers come from pipeline.report; geopandas loads with them
    import geopandas as gpd

SHP_ENCODING = "GBK"
FIELD_MAP_CSV = "classified_shp_fields.csv"

#: classified.gpkg column → (Shapefile field, 中文含义), in the layer's column order.
SHP_FIELDS: dict[str, tuple[str, str]] = {
    "jcbh": ("JCBH", "监测编号"),
    "batch": ("PC", "批次"),
    "xzqdm": ("XZQDM", "所属乡镇代码"),
    "xzqmc": ("XZQMC", "所属乡镇名称"),
    "class": ("CLASS", "最终认定类型代码（legal/unchanged/agri_adjust/illegal）"),
    "auto_class": ("AUTO_CLASS", "内业判定类型代码"),
    "area_m2": ("AREA_M2", "图斑面积（平方米）"),
    "legal_m2": ("LEGAL_M2", "合法用地面积（平方米）"),
    "unchanged_m2": ("UNCHG_M2", "实地未变化面积（平方米）"),
    "agri_m2": ("AGRI_M2", "农业结构调整面积（平方米）"),
    "illegal_m2": ("ILLEG_M2", "违法用地面积（平方米）"),
    "cultivated_m2": ("GD_M2", "耕地面积（平方米，扣除田坎）"),
    "farmland_m2": ("YJJBNT_M2", "永久基本农田面积（平方米）"),
    "legal_cultivated_m2": ("LEGAL_GD", "合法用地中耕地面积（平方米）"),
    "illegal_cultivated_m2": ("ILLEG_GD", "违法用地中耕地面积（平方米）"),
    "illegal_farmland_m2": ("ILLEG_YJJB", "违法用地中永久基本农田面积（平方米）"),
    "bnpbj_m2": ("BNPBJ_M2", "本年批准本年建设面积（平方米）"),
    "wnpbj_m2": ("WNPBJ_M2", "往年批准本年建设面积（平方米）"),
    "wpxj_m2": ("WPXJ_M2", "未批先建面积（平方米）"),
    "lsyd_cq_m2": ("LSYDCQ_M2", "临时用地超期面积（平方米）"),
    "wbjy_m2": ("WBJY_M2", "未报即用面积（平方米）"),
    "ssny_wba_m2": ("SSNYWBA_M2", "未备案设施农用地面积（平方米）"),
    "illegal_outside_ubg_m2": ("ILLEG_UBGW", "违法用地中城镇开发边界外面积（平方米；无规划图层时为空）"),
    "illegal_in_eco_m2": ("ILLEG_ECO", "违法用地中生态保护红线内面积（平方米；无规划图层时为空）"),
    "class_zh": ("RDLX", "最终认定类型（中文）"),
    "auto_class_zh": ("NYPD", "内业判定类型（中文）"),
}


class ExportError(WeipianError):
    """A layer could not be written in the format older systems need."""


def write_shapefile(out: Path, gdf: gpd.GeoDataFrame, name: str = "classified") -> None:
    """``out/<name>.shp`` and its companions in GBK, plus the field-name map (CSV, UTF-8 with BOM)."""
    for column in gdf.columns:
        if column != gdf.geometry.name and gdf[column].dtype == object:
            bad = {v for v in gdf[column].dropna().astype(str) if not _gbk(v)}
            if bad:
                raise ExportError(f"{name}.shp: {column} value {sorted(bad)[0]!r} has characters GBK cannot "
                                  "encode; use classified.gpkg or classified.gdb (UTF-8) instead")
    shp = gdf.rename(columns={k: v[0] for k, v in SHP_FIELDS.items()})
    shp = shp[[v[0] for k, v in SHP_FIELDS.items() if k in gdf.columns] + [gdf.geometry.name]]
    with tempfile.TemporaryDirectory(dir=out, prefix=f".{name}.shp.") as tmp:
        shp.to_file(Path(tmp) / f"{name}.shp", engine="pyogrio", encoding=SHP_ENCODING)
        for f in sorted(Path(tmp).iterdir()):
            f.replace(out / f.name)
    with open(out / f".{FIELD_MAP_CSV}.tmp", "w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["shp_field", "gpkg_column", "含义"])
        for column, (field, meaning) in SHP_FIELDS.items():
            if column in gdf.columns:
                w.writerow([field, column, meaning])
    (out / f".{FIELD_MAP_CSV}.tmp").replace(out / FIELD_MAP_CSV)


def write_filegdb(out: Path, gdf: gpd.GeoDataFrame, name: str = "classified") -> None:
    """``out/<name>.gdb`` with layer ``change_class``; the old folder is replaced whole."""
    target = out / f"{name}.gdb"
    with tempfile.TemporaryDirectory(dir=out, prefix=f".{name}.gdb.") as tmp:
        staged = Path(tmp) / f"{name}.gdb"
        gdf.to_file(staged, layer="change_class", driver="OpenFileGDB", engine="pyogrio")
        if target.exists():
            shutil.rmtree(target)
        staged.replace(target)


def _gbk(text: str) -> bool:
    try:
        text.encode(SHP_ENCODING)
        return True
    except UnicodeEncodeError:
        return False
