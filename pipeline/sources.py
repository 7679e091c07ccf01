"""Opening one input layer and reading it in batches (no database here).

Vector layers come through pyogrio (GDAL) as Arrow batches: Shapefile (also
zipped), GeoPackage, File Geodatabase, GeoJSON.  Field checks may also be CSV
or XLSX without geometry.  Geometry stays as WKB; PostGIS transforms and
repairs it (domain.md Decision 11).

:func:`open_source` makes every check that concerns the layer as a whole
(files present and complete, layer named, text encoding, coordinate system
against the coordinates) and raises :class:`DataSourceError` with one line
naming the file; :meth:`Source.batches` then streams the features, so memory
stays flat however large the layer.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import numpy as np
import pandas as pd
import pyarrow as pa
import pyogrio
from pyproj import CRS
from pyproj.exceptions import CRSError

from pipeline import crs as crs_check
from pipeline import shapefile
from pipeline.config import LAYER_KINDS, Layer
from pipeline.errors import DataSourceError

TABLE_SUFFIXES = {".csv", ".xlsx", ".xls"}
NUMERIC_FIELDS = {"TBMJ", "KCXS", "KCMJ", "TBDLMJ", "JCMJ"}
VECTOR_SUFFIXES = (".shp", ".gpkg", ".geojson", ".json", ".gdb")
FORMATS = "Shapefile（.shp 或 .zip）、GeoPackage、File Geodatabase、GeoJSON"


@dataclass
class Batch:
    """Consecutive features: their source attributes, and WKB geometry when the layer has any."""

    start: int                 # feature index (0-based, in file order) of the first row
    columns: pd.DataFrame      # source field name → values (those asked for)
    wkb: pa.Array | None       # binary WKB per row (null: no geometry)
    geoms: object = None       # the same as shapely geometries, when the reader made them (numpy array)
    every_field: Callable[[list[int]], pd.DataFrame] | None = field(default=None, repr=False)

    @property
    def n(self) -> int:
        return len(self.columns)

    def all_fields(self, rows: list[int]) -> pd.DataFrame:
        """Every field of the file for these rows (positions in the batch), in their order.

        A batch read with only some fields (Source.batches' ``fields``) reads the
        rest again for just these rows: those of a feature set aside, which the
        quarantine keeps whole.
        """
        if self.every_field is None:
            return self.columns.iloc[rows].reset_index(drop=True)
        return self.every_field(rows)


@dataclass
class Source:
    """An opened layer whose whole-layer checks have passed."""

    layer: Layer
    fields: list[str]            # source field names, as in the file
    n: int | None                # feature count when known before reading
    epsg: int | None             # source CRS (None without geometry)
    excel: bool = False          # values come from an XLSX sheet
    _gdal_path: str | None = None
    _gdal_layer: str | None = None
    _table: pd.DataFrame | None = field(default=None, repr=False)
    _polygons: shapefile.PolygonRecords | None = field(default=None, repr=False)

    def batches(self, size: int = 50_000, fields: list[str] | None = None) -> Iterator[Batch]:
        """The features in batches of ``size``; with ``fields``, only those fields are read.

        A DLTB of 三调 carries some 30 fields, of which the pipeline uses 8: GDAL
        then converts only those (the rest of a row set aside is read again by
        its FID, Batch.all_fields).
        """
        if self._table is not None:
            yield Batch(0, self._table, None)
            return
        geometry = LAYER_KINDS[self.layer.kind]["geometry"]
        start = 0
        polygons = self._polygons if geometry else None
        some = fields is not None and set(fields) != set(self.fields)
        try:
            # the polygons of a plain Shapefile come from its own bytes (shapefile.PolygonRecords);
            # GDAL then reads the attributes and each row's FID (its record number)
            with pyogrio.raw.open_arrow(self._gdal_path, layer=self._gdal_layer, batch_size=size,
                                        read_geometry=geometry and polygons is None,
                                        return_fids=polygons is not None or some, use_pyarrow=True,
                                        columns=fields if some else None,
                                        **_gdal_encoding(self.layer)) as (meta, reader):
                geom_col = (meta.get("geometry_name") or "wkb_geometry") if geometry else None
                for rb in reader:
                    wkb = geoms = fids = None
                    if polygons is not None or some:
                        fids = rb.column(0).to_numpy()
                        rb = rb.remove_column(0)
                    if polygons is not None:
                        wkb, geoms = polygons.read(fids)
                    elif geom_col is not None and geom_col in rb.schema.names:
                        wkb = rb.column(geom_col)
                        rb = rb.drop_columns([geom_col])
                    every = (lambda rows, f=fids: self._fields_of(f[rows])) if some else None
                    yield Batch(start, rb.to_pandas(date_as_object=False), wkb, geoms, every)
                    start += rb.num_rows
        except DataSourceError:
            raise
        except Exception as e:  # GDAL reports a damaged file while reading it
            raise DataSourceError(
                f"{self.layer.label}: 读取第 {start + 1} 个要素附近时出错（{_one_line(e)}）；"
                "文件可能损坏或不完整，请重新复制或导出该图层") from None

    def _fields_of(self, fids: np.ndarray) -> pd.DataFrame:
        """Every field of the features with these FIDs, in that order."""
        df = pyogrio.read_dataframe(self._gdal_path, layer=self._gdal_layer, fids=fids, read_geometry=False,
                                    fid_as_index=True, **_gdal_encoding(self.layer))
        return pd.DataFrame(df).loc[fids].reset_index(drop=True)


def _gdal_encoding(layer: Layer) -> dict[str, str]:
    """pyogrio's ``encoding`` keyword when county.toml gives the layer's encoding (else GDAL's own reading)."""
    return {"encoding": layer.encoding} if layer.encoding else {}


def open_source(layer: Layer, work_srid: int) -> Source:
    """Open ``layer`` and check it as a whole; raise DataSourceError naming the file otherwise."""
    if not layer.path.exists():
        raise DataSourceError(f"{layer.label}: 文件不存在（{layer.path}）；请检查 county.toml 中的 path")
    if layer.path.suffix.lower() in TABLE_SUFFIXES:
        if LAYER_KINDS[layer.kind]["geometry"]:
            raise DataSourceError(
                f"{layer.label}: {layer.kind} 图层需要几何图形；CSV/XLSX 只能用于外业核查（field_check），"
                f"请提供 {FORMATS}")
        return _open_table(layer)
    return _open_vector(layer, work_srid)


# ------------------------------------------------------------------ tables

def _open_table(layer: Layer) -> Source:
    suffix = layer.path.suffix.lower()
    try:
        if suffix == ".csv":
            df = _read_csv(layer)
        else:
            df = pd.read_excel(layer.path, sheet_name=layer.layer or 0, dtype=object)
    except DataSourceError:
        raise
    except ImportError:
        raise DataSourceError(f"{layer.label}: 不支持旧版 .xls 文件；请在 Excel 中另存为 .xlsx") from None
    except ValueError as e:
        if layer.layer and "not found" in str(e):
            raise DataSourceError(f"{layer.label}: 没有名为 {layer.layer!r} 的工作表") from None
        raise DataSourceError(f"{layer.label}: 无法读取（{_one_line(e)}）；文件可能损坏或不完整") from None
    except Exception as e:  # pandas/openpyxl raise many kinds for a broken file
        raise DataSourceError(f"{layer.label}: 无法读取（{_one_line(e)}）；文件可能损坏或不完整") from None
    df.columns = [str(c).strip() for c in df.columns]
    return Source(layer, list(df.columns), len(df), None, excel=suffix != ".csv", _table=df)


def _read_csv(layer: Layer) -> pd.DataFrame:
    raw = layer.path.read_bytes()
    encoding = layer.encoding or "utf-8-sig"
    try:
        raw.decode(encoding)
    except LookupError:
        raise DataSourceError(f'{layer.label}: 未知的编码 encoding = "{layer.encoding}"；常用的有 "GBK"、"UTF-8"') from None
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        hint = '请确认文件的编码，并在 county.toml 中为该图层写 encoding = "..."'
        for codec, name in (("utf-8-sig", "UTF-8"), ("gbk", "GBK"), ("gb18030", "GB18030")):
            if codec == encoding:
                continue
            try:
                text = raw.decode(codec)
            except UnicodeDecodeError:
                continue
            sample = next((s for s in text.splitlines()[line - 1].split(",") if not s.isascii()), "")
            hint = f'按 {name} 可读作“{sample.strip()[:30]}”，请在 county.toml 中为该图层写 encoding = "{name}"'
            break
        raise DataSourceError(f"{layer.label}: 第 {line} 行按 {encoding.upper().replace('-SIG', '')} 无法解码；{hint}") from None
    import io

    return pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False, encoding=encoding)


# ------------------------------------------------------------------ vector

def _open_vector(layer: Layer, work_srid: int) -> Source:
    gdal_path, parts = _gdal_path(layer)
    if parts is not None:
        shapefile.check_complete(parts)
        shapefile.check_encoding(parts, layer.encoding)
    try:
        names = [str(n) for n in pyogrio.list_layers(gdal_path)[:, 0]]
    except Exception as e:
        raise DataSourceError(
            f"{layer.label}: GDAL 无法打开（{_one_line(e)}）；文件可能损坏、不完整，或不是支持的格式（{FORMATS}）"
        ) from None
    gdal_layer = None
    if parts is None:
        if layer.layer is None and len(names) > 1:
            raise DataSourceError(
                f"{layer.label}: 包含 {len(names)} 个图层（{', '.join(names)}）；请在 county.toml 中用 "
                'layer = "..." 指定其中一个')
        if layer.layer is not None and layer.layer not in names:
            raise DataSourceError(f"{layer.label}: 没有图层 {layer.layer!r}；现有图层：{', '.join(names)}")
        gdal_layer = layer.layer
    try:
        info = pyogrio.read_info(gdal_path, layer=gdal_layer, force_total_bounds=True,
                                 **_gdal_encoding(layer))
    except Exception as e:
        raise DataSourceError(f"{layer.label}: GDAL 无法读取图层信息（{_one_line(e)}）；文件可能损坏或不完整") from None
    n = int(info["features"]) if info.get("features", -1) >= 0 else None
    epsg = None
    if LAYER_KINDS[layer.kind]["geometry"]:
        if info.get("geometry_type") is None:
            raise DataSourceError(f"{layer.label}: 没有几何图形；{layer.kind} 图层需要面状图形")
        epsg, origin = (layer.crs, "county.toml 中的 crs ") if layer.crs else (_epsg_of(info.get("crs"), layer), ".prj ")
        if n:
            crs_check.check_coordinates(layer.label, epsg, info.get("total_bounds"), work_srid, origin)
    fields = [str(f) for f in info["fields"]]
    polygons = None
    if (parts is not None and epsg is not None and layer.path.suffix.lower() == ".shp"
            and shapefile.shape_type(parts) == shapefile.POLYGON):
        polygons = shapefile.PolygonRecords(parts, gdal_path, gdal_layer)
    return Source(layer, fields, n, epsg, _gdal_path=gdal_path, _gdal_layer=gdal_layer, _polygons=polygons)


def _gdal_path(layer: Layer) -> tuple[str, shapefile.Parts | None]:
    """The path GDAL opens, and the Shapefile parts to check when it is one."""
    path = layer.path
    if path.suffix.lower() == ".shp":
        return str(path), shapefile.parts_of(path, layer.label)
    if path.suffix.lower() != ".zip":
        return str(path), None
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError) as e:
        raise DataSourceError(f"{layer.label}: zip 文件损坏或不完整（{_one_line(e)}）；请重新复制或压缩") from None
    datasets = sorted({_dataset_of(n) for n in names} - {None})
    if not datasets:
        raise DataSourceError(f"{layer.label}: zip 中没有 {FORMATS} 数据；其中文件：{', '.join(names[:10])}")
    if len(datasets) > 1:
        stems = {PurePosixPath(d).stem: d for d in datasets}
        if layer.layer in stems:
            datasets = [stems[layer.layer]]
        else:
            raise DataSourceError(
                f"{layer.label}: zip 中有 {len(datasets)} 个数据集（{', '.join(datasets)}）；请在 county.toml 中用 "
                'layer = "..." 指定其中一个（写文件名，不带扩展名）')
    member = datasets[0]
    gdal = f"/vsizip/{path}/{member}"
    if member.lower().endswith(".shp"):
        return gdal, shapefile.parts_of(path, layer.label, member)
    return gdal, None


def _dataset_of(name: str) -> str | None:
    lower = name.lower()
    if ".gdb/" in lower:
        return name[:lower.index(".gdb/") + 4]
    if lower.endswith((".shp", ".gpkg", ".geojson", ".json")) and not lower.startswith("__macosx"):
        return name
    return None


def _epsg_of(crs_text: str | None, layer: Layer) -> int:
    if not crs_text:
        raise DataSourceError(
            f"{layer.label}: 没有坐标系（缺少 .prj）；请补上 .prj，或在 county.toml 中为该图层写出它的真实坐标系，"
            '如 crs = "EPSG:4546"')
    try:
        code = CRS.from_user_input(crs_text).to_epsg(min_confidence=70)
    except CRSError:
        code = None
    if code is None:
        raise DataSourceError(
            f"{layer.label}: 坐标系不是可识别的 EPSG 坐标系；请在 county.toml 中为该图层写出它的真实坐标系，"
            '如 crs = "EPSG:4546"')
    return code


def _one_line(e: object) -> str:
    return " ".join(str(e).split())[:300]
