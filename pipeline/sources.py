"""Reading one input layer from its file into plain columns (no database here).

Vector layers come through pyogrio (GDAL): Shapefile (also zipped), GeoPackage,
File Geodatabase, GeoJSON. Field checks may also be CSV or XLSX without geometry.
Geometry stays as WKB; PostGIS transforms and repairs it (domain.md Decision 11).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio
from pyproj import CRS
from pyproj.exceptions import CRSError

from pipeline.config import LAYER_KINDS, Layer
from pipeline.errors import DataSourceError

TABLE_SUFFIXES = {".csv", ".xlsx", ".xls"}
NUMERIC_FIELDS = {"TBMJ", "KCXS", "KCMJ", "TBDLMJ", "JCMJ"}


@dataclass
class RawLayer:
    """A layer as read: source field names → value arrays, WKB geometries, source CRS."""

    columns: dict[str, np.ndarray]
    wkb: np.ndarray | None
    epsg: int | None
    n: int


def checksum(layer: Layer) -> str:
    """SHA-256 of the layer's files and of how county.toml reads them.

    A Shapefile is its .shp and every sidecar of the same stem; a File
    Geodatabase is every file of its folder.
    """
    h = hashlib.sha256()
    if layer.path.is_dir():
        files = sorted(p for p in layer.path.rglob("*") if p.is_file())
    elif layer.path.suffix.lower() == ".shp":
        files = sorted(p for p in layer.path.parent.glob(layer.path.stem + ".*") if p.is_file())
    else:
        files = [layer.path]
    for p in files:
        h.update(p.name.encode())
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    settings = {
        "kind": layer.kind, "layer": layer.layer, "encoding": layer.encoding, "crs": layer.crs,
        "fields": layer.fields, "pzlx": layer.pzlx, "batch": layer.batch, "index": layer.index,
    }
    h.update(json.dumps(settings, sort_keys=True, ensure_ascii=False).encode())
    return h.hexdigest()


def read_layer(layer: Layer) -> RawLayer:
    if layer.path.suffix.lower() in TABLE_SUFFIXES:
        if LAYER_KINDS[layer.kind]["geometry"]:
            raise DataSourceError(
                f"{layer.label}: a {layer.kind} layer needs geometry; CSV/XLSX are only for field_check"
            )
        return _read_table(layer)
    return _read_vector(layer)


def _read_table(layer: Layer) -> RawLayer:
    try:
        if layer.path.suffix.lower() == ".csv":
            df = pd.read_csv(layer.path, dtype=str, keep_default_na=False,
                             encoding=layer.encoding or "utf-8-sig")
        else:
            df = pd.read_excel(layer.path, sheet_name=layer.layer or 0, dtype=object)
    except UnicodeDecodeError:
        raise DataSourceError(
            f"{layer.label}: not readable as {layer.encoding or 'UTF-8'}; "
            "set encoding = \"GBK\" for this layer in county.toml"
        ) from None
    except Exception as e:  # pandas/openpyxl raise many kinds for a broken file
        raise DataSourceError(f"{layer.label}: cannot be read ({e})") from None
    columns = {str(c).strip(): df[c].to_numpy(dtype=object) for c in df.columns}
    return RawLayer(columns=columns, wkb=None, epsg=None, n=len(df))


def _vector_path(path: Path) -> str:
    if path.suffix.lower() == ".zip":
        return f"/vsizip/{path}"
    return str(path)


def _read_vector(layer: Layer) -> RawLayer:
    src = _vector_path(layer.path)
    try:
        layers = pyogrio.list_layers(src)
    except Exception as e:
        raise DataSourceError(f"{layer.label}: cannot be opened by GDAL ({e})") from None
    names = [str(n) for n in layers[:, 0]]
    if layer.layer is None and len(names) > 1:
        raise DataSourceError(
            f"{layer.label}: holds {len(names)} layers ({', '.join(names)}); "
            "name one with layer = \"...\" in county.toml"
        )
    if layer.layer is not None and layer.layer not in names:
        raise DataSourceError(
            f"{layer.label}: no layer {layer.layer!r}; it has {', '.join(names)}"
        )
    kwargs = {"encoding": layer.encoding} if layer.encoding else {}
    try:
        meta, _fids, geometry, field_data = pyogrio.raw.read(
            src, layer=layer.layer, read_geometry=LAYER_KINDS[layer.kind]["geometry"], **kwargs
        )
    except Exception as e:
        raise DataSourceError(f"{layer.label}: cannot be read ({e})") from None
    columns = {str(name): np.asarray(values, dtype=object)
               for name, values in zip(meta["fields"], field_data)}
    n = len(field_data[0]) if field_data else (len(geometry) if geometry is not None else 0)
    epsg = None
    if geometry is not None:
        epsg = layer.crs or _epsg_of_source(meta.get("crs"), layer)
    return RawLayer(columns=columns, wkb=geometry, epsg=epsg, n=n)


def _epsg_of_source(crs_text: str | None, layer: Layer) -> int:
    if not crs_text:
        raise DataSourceError(
            f"{layer.label}: no coordinate system (.prj missing); "
            "add crs = \"EPSG:4546\" (the layer's real CRS) to this layer in county.toml"
        )
    try:
        code = CRS.from_user_input(crs_text).to_epsg(min_confidence=70)
    except CRSError:
        code = None
    if code is None:
        raise DataSourceError(
            f"{layer.label}: coordinate system is not a known EPSG CRS; "
            "add crs = \"EPSG:....\" to this layer in county.toml"
        )
    return code


# ---------------------------------------------------------------- value parsing

DATE_HINT = "应为 20220315、2022-03-15 或 2022/3/15 格式"
_DATE_RE = re.compile(r"^(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?(?:[ T].*)?$")


def is_missing(v) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    if v is pd.NaT:
        return True
    return isinstance(v, str) and not v.strip()


def to_text(v) -> str | None:
    """A code or name as text: stray spaces removed, 140824.0 read as 140824."""
    if is_missing(v):
        return None
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (datetime, pd.Timestamp)):
        return v.date().isoformat()
    if isinstance(v, np.datetime64):
        return str(v)[:10]
    s = str(v).strip()
    return s or None


def to_number(v) -> float | None:
    if is_missing(v):
        return None
    try:
        return float(str(v).strip()) if isinstance(v, str) else float(v)
    except (TypeError, ValueError):
        return None


class BadValue(ValueError):
    pass


def to_date(v) -> date | None:
    """A date from 20220315, 2022-03-15, 2022/3/15, a date or datetime value.

    Raises BadValue for a value that is present but not a date.
    """
    if is_missing(v):
        return None
    if isinstance(v, np.datetime64):
        v = pd.Timestamp(v)
    if isinstance(v, (datetime, pd.Timestamp)):
        return v.date()
    if isinstance(v, date):
        return v
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    s = str(v).strip()
    try:
        if re.fullmatch(r"\d{8}", s):
            return date(int(s[:4]), int(s[4:6]), int(s[6:]))
        m = _DATE_RE.match(s)
        if m:
            return date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        pass
    raise BadValue(s)


SFBH_VALUES = {"是": "是", "Y": "是", "YES": "是", "1": "是", "TRUE": "是",
               "否": "否", "N": "否", "NO": "否", "0": "否", "FALSE": "否"}
PDLX_VALUES = {"合法用地": "legal", "实地未变化": "unchanged", "农业结构调整": "agri_adjust",
               "违法用地": "illegal", "legal": "legal", "unchanged": "unchanged",
               "agri_adjust": "agri_adjust", "illegal": "illegal"}
