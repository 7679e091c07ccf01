"""Checks on a Shapefile's own bytes that GDAL does not make for us, and its polygons read fast.

GDAL reads a DBF without a .cpg as Latin-1, so GBK names come out garbled
without any error, and it reads a truncated .shp or .dbf as far as it can.
Before a Shapefile is loaded we therefore check that its parts are all there
and complete, and that the text in its DBF decodes with the encoding it will
be read with; when no encoding is declared (no .cpg, no code page in the DBF
header, no ``encoding`` in county.toml) any non-ASCII text stops the load with
the encoding it decodes as.
"""

from __future__ import annotations

import codecs
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Callable

import numpy as np
import pyarrow as pa

from pipeline.errors import DataSourceError

#: DBF header byte 29 (language driver id) → code page, for the ids Chinese data use.
LDID_CODEPAGES = {0x4D: "gbk", 0x7A: "gbk", 0x03: "cp1252", 0x57: None, 0x00: None}
#: Encodings tried, in order, to say what undeclared bytes are.
CANDIDATES = ("utf-8", "gbk", "gb18030")
SINGLE_BYTE_LATIN = {"latin_1", "iso8859_1", "cp1252"}
#: Bytes of the .dbf scanned at a time for its encoding: a 三调 DLTB's records
#: are over 1 kB wide, so a count of records would hold 75 MB at once.
CHUNK_BYTES = 4 << 20
#: Non-ASCII text collected before the scan stops: enough to tell an encoding,
#: without reading a whole 100 MB attribute table when its text is Chinese throughout.
SAMPLE_BYTES = 1 << 20


@dataclass
class Parts:
    """Openers for the parts of one Shapefile (plain files or members of a zip)."""

    label: str
    stem: str
    open: dict[str, Callable[[], BinaryIO]]  # ".shp" / ".shx" / ".dbf" / ".cpg" → opener
    size: dict[str, int]


def parts_of(path: Path, label: str, member: str | None = None) -> Parts:
    """The sidecars of ``path`` (a .shp) or of ``member`` (a .shp inside the zip ``path``)."""
    if member is None:
        found = {p.suffix.lower(): p for p in path.parent.glob(path.stem + ".*")
                 if p.stem == path.stem and p.is_file()}
        return Parts(label, path.name, {ext: (lambda p=p: open(p, "rb")) for ext, p in found.items()},
                     {ext: p.stat().st_size for ext, p in found.items()})
    zf = zipfile.ZipFile(path)
    stem = str(PurePosixPath(member).with_suffix(""))
    found = {PurePosixPath(i.filename).suffix.lower(): i for i in zf.infolist()
             if str(PurePosixPath(i.filename).with_suffix("")) == stem}
    return Parts(label, PurePosixPath(member).name,
                 {ext: (lambda i=i: zf.open(i)) for ext, i in found.items()},
                 {ext: i.file_size for ext, i in found.items()})


def check_complete(parts: Parts) -> None:
    """Refuse a Shapefile whose .shx or .dbf is missing, or whose files are cut short."""
    stem = parts.stem.rsplit(".", 1)[0]
    for ext, what in ((".shx", "索引文件"), (".dbf", "属性表")):
        if ext not in parts.open:
            raise DataSourceError(
                f"{parts.label}: 缺少 {stem}{ext}（Shapefile 的{what}）；请把同名的 .shp、.shx、.dbf、.prj"
                f"（以及 .cpg）放在同一文件夹中")
    shp_len = _shape_header_length(parts, ".shp")
    shx_len = _shape_header_length(parts, ".shx")
    with parts.open[".dbf"]() as f:
        head = f.read(32)
    if len(head) < 32:
        raise DataSourceError(f"{parts.label}: {stem}.dbf 不完整（只有 {len(head)} 字节）；请重新复制或导出该图层")
    n_records, header_len, record_len = struct.unpack("<IHH", head[4:12])
    dbf_expected = header_len + n_records * record_len
    if parts.size[".dbf"] < dbf_expected:
        raise DataSourceError(
            f"{parts.label}: {stem}.dbf 不完整（应有 {dbf_expected} 字节、{n_records} 条记录，实际只有 "
            f"{parts.size['.dbf']} 字节）；文件可能在复制中被截断，请重新复制或导出该图层")
    for ext, declared in ((".shp", shp_len), (".shx", shx_len)):
        if parts.size[ext] < declared:
            raise DataSourceError(
                f"{parts.label}: {stem}{ext} 不完整（文件头记载 {declared} 字节，实际只有 {parts.size[ext]} 字节）；"
                "文件可能在复制中被截断，请重新复制或导出该图层")
    n_shx = (shx_len - 100) // 8
    if n_shx != n_records:
        raise DataSourceError(
            f"{parts.label}: {stem}.shx 有 {n_shx} 条记录而 {stem}.dbf 有 {n_records} 条，二者不一致；"
            "文件可能不完整或来自不同的导出，请重新复制或导出该图层")


def _shape_header_length(parts: Parts, ext: str) -> int:
    with parts.open[ext]() as f:
        head = f.read(100)
    stem = parts.stem.rsplit(".", 1)[0]
    if len(head) < 100 or struct.unpack(">i", head[:4])[0] != 9994:
        raise DataSourceError(f"{parts.label}: {stem}{ext} 不是有效的 Shapefile 文件（文件头损坏或不完整）；"
                              "请重新复制或导出该图层")
    return struct.unpack(">i", head[24:28])[0] * 2


def declared_encoding(parts: Parts) -> tuple[str | None, str]:
    """(Python codec, where it was declared) from the .cpg or the DBF's code page byte."""
    if ".cpg" in parts.open:
        with parts.open[".cpg"]() as f:
            text = f.read(64).decode("ascii", "replace").strip()
        codec = _codec(text)
        if codec:
            return codec, f".cpg（{text}）"
    with parts.open[".dbf"]() as f:
        head = f.read(32)
    ldid = head[29] if len(head) > 29 else 0
    codec = LDID_CODEPAGES.get(ldid)
    if codec:
        return codec, f"DBF 文件头代码页（0x{ldid:02X}）"
    return None, ""


def _codec(name: str) -> str | None:
    name = name.strip().upper()
    aliases = {"936": "gbk", "CP936": "gbk", "65001": "utf-8", "UTF8": "utf-8", "54936": "gb18030",
               "1252": "cp1252", "ANSI 1252": "cp1252", "88591": "latin_1", "8859_1": "latin_1"}
    try:
        return codecs.lookup(aliases.get(name, name)).name
    except LookupError:
        return None


def check_encoding(parts: Parts, configured: str | None) -> None:
    """Refuse DBF text that would come out garbled; say which encoding it decodes as.

    ``configured`` is county.toml's ``encoding``, which overrides the .cpg.
    """
    stem = parts.stem.rsplit(".", 1)[0]
    if configured:
        codec, where = _codec(configured), f'county.toml 中的 encoding = "{configured}"'
        if codec is None:
            raise DataSourceError(
                f'{parts.label}: 未知的编码 encoding = "{configured}"；常用的有 "GBK"、"GB18030"、"UTF-8"')
    else:
        codec, where = declared_encoding(parts)
    samples = _non_ascii_fields(parts)
    if not samples:
        return
    if configured or (codec and codec not in SINGLE_BYTE_LATIN):
        bad = _first_undecodable(samples, codec)
        if bad is None:
            return
        field, record = bad
        fits = _decodes_as(samples, exclude=codec)
        hint = (f"；按 {_toml_name(fits[0])} 可读作“{fits[1]}”，请在 county.toml 中为该图层写 "
                f'encoding = "{_toml_name(fits[0])}"' if fits else
                '；请确认文件的编码，并在 county.toml 中为该图层写 encoding = "..."')
        raise DataSourceError(
            f"{parts.label}: {stem}.dbf 的字段 {field}（第 {record + 1} 条记录）按 {where} 指定的 "
            f"{_toml_name(codec)} 无法解码{hint}")
    fits = _decodes_as(samples)
    field = samples[0][0]
    if codec in SINGLE_BYTE_LATIN:
        if fits is None:
            return  # Western text, as declared
        raise DataSourceError(
            f"{parts.label}: {where}声明的编码是 {_toml_name(codec)}（西文），但字段 {field} 的文字按 "
            f"{_toml_name(fits[0])} 可读作“{fits[1]}”；请在 county.toml 中为该图层写 "
            f'encoding = "{_toml_name(fits[0])}"')
    if fits is None:
        raise DataSourceError(
            f"{parts.label}: {stem}.dbf 没有 .cpg 编码文件，字段 {field} 的文字按 UTF-8、GBK、GB18030 都无法解码；"
            '请确认文件的编码，并在 county.toml 中为该图层写 encoding = "..."')
    raise DataSourceError(
        f"{parts.label}: {stem}.dbf 没有 .cpg 编码文件，无法确定中文编码；字段 {field} 的文字按 "
        f"{_toml_name(fits[0])} 可读作“{fits[1]}”，请在 county.toml 中为该图层写 "
        f'encoding = "{_toml_name(fits[0])}"')


def _toml_name(codec: str) -> str:
    return {"utf-8": "UTF-8", "gbk": "GBK", "gb18030": "GB18030", "latin_1": "ISO-8859-1",
            "cp1252": "CP1252"}.get(codec, codec.upper())


def _decodes_as(samples, exclude: str | None = None) -> tuple[str, str] | None:
    """The first candidate encoding that decodes every sample, and the first value so decoded."""
    for codec in CANDIDATES:
        if codec != exclude and _first_undecodable(samples, codec) is None:
            _, _, raw, width = samples[0]
            return codec, raw[:width].decode(codec, "replace").strip(" \x00")[:30]
    return None


def _first_undecodable(samples, codec: str) -> tuple[str, int] | None:
    """(field, record) of the first value that does not decode as ``codec``, else None.

    A value whose only fault is a character cut in two at the field's width (a
    writer truncating by bytes) is accepted: GDAL drops that half character.
    """
    for field, records, raw, width in samples:
        try:
            raw.decode(codec)
            continue
        except UnicodeDecodeError:
            pass
        for row in range(len(records)):
            cell = raw[row * (width + 1):row * (width + 1) + width].rstrip(b" \x00")
            try:
                cell.decode(codec)
            except UnicodeDecodeError as e:
                if e.end < len(cell):
                    return field, int(records[row])
    return None


def _non_ascii_fields(parts: Parts) -> list[tuple[str, np.ndarray, bytes, int]]:
    """Per character field holding non-ASCII bytes: (name, record numbers, their values joined by newlines, width).

    Reads records until about SAMPLE_BYTES of non-ASCII text are collected (or
    the end): an ASCII-only table is read whole, a Chinese one only at its start.
    """
    with parts.open[".dbf"]() as f:
        head = f.read(32)
        n_records, header_len, record_len = struct.unpack("<IHH", head[4:12])
        desc = f.read(header_len - 32)
        fields, offset = [], 1
        for i in range(0, len(desc) - 31, 32):
            if desc[i] == 0x0D:
                break
            name = desc[i:i + 11].split(b"\x00")[0].decode("ascii", "replace")
            ftype, width = chr(desc[i + 11]), desc[i + 16]
            if ftype == "C":
                width += desc[i + 17] * 256  # long character fields keep the high byte in "decimals"
            if ftype in "CM":
                fields.append((name, offset, width))
            offset += width
        chunks: dict[str, list] = {name: [] for name, _, _ in fields}
        done = collected = 0
        while done < n_records and collected < SAMPLE_BYTES:
            want = min(max(1, CHUNK_BYTES // record_len), n_records - done)
            buf = f.read(want * record_len)
            got = len(buf) // record_len
            if got == 0:
                break
            block = np.frombuffer(buf[:got * record_len], dtype=np.uint8).reshape(got, record_len)
            for name, off, width in fields:
                cells = block[:, off:off + width]
                rows = np.flatnonzero((cells >= 0x80).any(axis=1))
                if len(rows):
                    chunks[name].append((rows + done, cells[rows]))
                    collected += len(rows) * width
            done += got
    out = []
    for name, off, width in fields:
        if chunks[name]:
            records = np.concatenate([r for r, _ in chunks[name]])
            cells = np.concatenate([c for _, c in chunks[name]])
            joined = np.hstack([cells, np.full((len(cells), 1), ord("\n"), dtype=np.uint8)]).tobytes()
            out.append((name, records, joined, width))
    return out


# ------------------------------------------------------------------ polygons read from the .shp

#: Shape type of a 2D polygon (the .shp header's and each record's).
POLYGON = 5
#: A record: number and length (8 bytes), shape type (4), box (32), number of
#: parts (4) and of points (4), the parts' first points (4 each), the points (16 each).
_HEAD = 56
#: ISO WKB of a polygon of one ring, little-endian, up to its number of points.
_WKB_HEAD = b"\x01\x03\x00\x00\x00\x01\x00\x00\x00"
#: Arrow's binary view: length, first four bytes, buffer, offset.
_VIEW = np.dtype([("len", "<i4"), ("prefix", "<u4"), ("buf", "<i4"), ("off", "<i4")])


def shape_type(parts: Parts) -> int:
    """The shape type in the header of the .shp."""
    with parts.open[".shp"]() as f:
        head = f.read(100)
    return struct.unpack("<i", head[32:36])[0] if len(head) == 100 else -1


class PolygonRecords:
    """The polygons of a Shapefile read from its own bytes, as GDAL reads them.

    GDAL makes an OGR geometry of every record and writes it out as WKB, which
    shapely then parses again: for 300 000 parcels of ~44 vertices, 1.3 s of
    the 1.6 s it takes to read them (attributes alone: 0.4 s). A record of one
    closed ring, as nearly every parcel is, already holds its points in the
    order WKB wants them: its WKB is the record with its 56-byte head replaced
    by the 13 bytes of a WKB head (byte for byte what GDAL writes), and its
    shapely polygon is made from the points directly (0.5 s in all). Every
    other record (a null shape, several rings: holes or parts, a ring that is
    not closed or too short, a record that does not fit its length) is left to
    GDAL, by FID (a Shapefile's FID is its record number).

    Only for a plain .shp whose header says Polygon (2D): others are read by
    GDAL whole.
    """

    def __init__(self, parts: Parts, gdal_path: str, gdal_layer: str | None = None):
        self.open_shp, self.gdal_path, self.gdal_layer = parts.open[".shp"], gdal_path, gdal_layer
        with parts.open[".shx"]() as f:
            shx = np.frombuffer(f.read(), dtype=">i4", offset=100)
        index = shx.reshape(-1, 2).astype(np.int64) * 2   # (offset, content length) in bytes
        self.offset, self.length = index[:, 0], index[:, 1]
        self.size = parts.size[".shp"]

    def read(self, fids: np.ndarray) -> tuple[pa.Array, np.ndarray]:
        """WKB (large binary, null for no shape) and shapely geometries of the records ``fids``."""
        import shapely

        fids = np.asarray(fids, dtype=np.int64)
        n = len(fids)
        geoms = np.full(n, None, dtype=object)
        if not n:
            return pa.nulls(0, pa.large_binary()), geoms
        off, length = self.offset[fids], self.length[fids]
        fits = (off >= 100) & (off + 8 + length <= self.size) & (length >= _HEAD - 8 + 16 * 4)
        start = int(off[fits].min()) if fits.any() else 0
        end = int((off + 8 + length)[fits].max()) if fits.any() else 0
        if end - start >= 2**31:  # beyond the 32-bit offsets of Arrow's binary views: all to GDAL
            fits[:], start, end = False, 0, 0
        buf = np.empty(end - start, dtype=np.uint8)
        with self.open_shp() as f:
            f.seek(start)
            f.readinto(buf)
        o = np.where(fits, off - start, 0)

        def int32_at(at: int) -> np.ndarray:
            return buf[(o + at)[:, None] + np.arange(4)].view("<i4").ravel()

        fast = fits.copy()
        if fits.any():
            k = int32_at(48).astype(np.int64)
            fast &= (int32_at(8) == POLYGON) & (int32_at(44) == 1) & (int32_at(52) == 0)
            fast &= (k >= 4) & (_HEAD + 16 * k <= 8 + length)
            ix = np.flatnonzero(fast)
            first = (o[ix] + _HEAD)[:, None] + np.arange(16)
            last = (o[ix] + _HEAD + 16 * (k[ix] - 1))[:, None] + np.arange(16)
            fast[ix[~(buf[first] == buf[last]).all(axis=1)]] = False
        ix = np.flatnonzero(fast)
        if len(ix):
            k = k[ix]
            at = o[ix]
            head = np.empty((len(ix), 13), dtype=np.uint8)
            head[:, :9] = np.frombuffer(_WKB_HEAD, dtype=np.uint8)
            head[:, 9:] = k.astype("<u4").view(np.uint8).reshape(-1, 4)
            buf[(at + _HEAD - 13)[:, None] + np.arange(13)] = head
            data = pa.py_buffer(buf)
            fast_wkb = _slices(data, at + _HEAD - 13, 13 + 16 * k,
                               np.frombuffer(_WKB_HEAD[:4], dtype="<u4")[0])
            points = _slices(data, at + _HEAD, 16 * k, buf[(at + _HEAD)[:, None] + np.arange(4)].view("<u4").ravel())
            xy = np.frombuffer(points.buffers()[2], dtype="<f8", count=2 * int(k.sum())).reshape(-1, 2)
            rings = np.zeros(len(ix) + 1, dtype=np.int64)
            np.cumsum(k, out=rings[1:])
            geoms[ix] = shapely.from_ragged_array(shapely.GeometryType.POLYGON, xy,
                                                  (rings, np.arange(len(ix) + 1)))
        rest = np.flatnonzero(~fast)
        if len(rest):
            import pyogrio.raw

            _, _, other, _ = pyogrio.raw.read(self.gdal_path, layer=self.gdal_layer, fids=fids[rest],
                                              columns=[], read_geometry=True)
            geoms[rest] = shapely.from_wkb(other, on_invalid="ignore")  # as geos_flags reads WKB
            other = pa.array(other, type=pa.large_binary())
        if not len(rest):
            return fast_wkb, geoms
        if not len(ix):
            return other, geoms
        order = np.empty(n, dtype=np.int64)
        order[ix] = np.arange(len(ix))
        order[rest] = len(ix) + np.arange(len(rest))
        return pa.concat_arrays([fast_wkb, other]).take(pa.array(order)), geoms


def _slices(data: pa.Buffer, offsets: np.ndarray, lengths: np.ndarray, prefixes) -> pa.Array:
    """The byte ranges (``offsets``, ``lengths``) of ``data`` as one large binary array (one copy)."""
    views = np.zeros(len(offsets), dtype=_VIEW)
    views["len"], views["off"], views["prefix"] = lengths, offsets, prefixes
    return pa.Array.from_buffers(pa.binary_view(), len(offsets), [None, pa.py_buffer(views), data]
                                 ).cast(pa.large_binary())
