"""Attribute values as deliveries write them, parsed a column at a time.

Codes and names arrive as text or as numbers (DLBM 103, XZQDM 140824100.0) with
stray spaces; dates as 20220315, 2022-03-15, 2022/3/15, date or datetime fields,
or Excel date cells.  Each parser takes one column (a pandas Series) and returns
the parsed column and, for dates, which present values were not readable, so
that only those features are set aside.
"""

from __future__ import annotations

import math
from datetime import date, datetime

import numpy as np
import pandas as pd

DATE_HINT = "应为 20220315、2022-03-15 或 2022/3/15 格式"
_YMD8 = r"^(\d{4})(\d{2})(\d{2})(?:\.0+)?$"
_YMD_SEP = r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?(?:[ T].*)?$"
#: Excel stores dates as days since 1899-12-30; a bare number in this range in an
#: XLSX date column is a date cell that lost its format (1927-05-18 .. 2064-11-20).
EXCEL_SERIALS = (10000, 60000)
_EXCEL_EPOCH = np.datetime64("1899-12-30", "D")

SFBH_VALUES = {"是": "是", "Y": "是", "YES": "是", "1": "是", "TRUE": "是",
               "否": "否", "N": "否", "NO": "否", "0": "否", "FALSE": "否"}
PDLX_VALUES = {"合法用地": "legal", "实地未变化": "unchanged", "农业结构调整": "agri_adjust",
               "违法用地": "illegal", "legal": "legal", "unchanged": "unchanged",
               "agri_adjust": "agri_adjust", "illegal": "illegal"}


def is_missing(v) -> bool:
    if v is None or v is pd.NaT:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    return isinstance(v, str) and not v.strip()


def to_text(v) -> str | None:
    """One value as text: stray spaces removed, 140824.0 read as 140824."""
    if is_missing(v):
        return None
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    if isinstance(v, (datetime, pd.Timestamp)):
        return v.date().isoformat()
    if isinstance(v, np.datetime64):
        return str(v)[:10]
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    s = str(v).strip()
    return s or None


def text(col: pd.Series) -> pd.Series:
    """A code or name column as text (str dtype, NA for blank)."""
    if pd.api.types.is_float_dtype(col.dtype):
        out = pd.Series(pd.NA, index=col.index, dtype="str")
        whole = col.notna() & (col == np.floor(col)) & (col.abs() < 2**53)
        out[whole] = col[whole].astype("int64").astype("str")
        rest = col.notna() & ~whole
        out[rest] = col[rest].astype("str")
        return out
    if pd.api.types.is_integer_dtype(col.dtype) or pd.api.types.is_bool_dtype(col.dtype):
        return col.astype("str").where(col.notna())
    if pd.api.types.is_datetime64_any_dtype(col.dtype):
        return col.dt.strftime("%Y-%m-%d").astype("str")
    if pd.api.types.is_string_dtype(col.dtype) and col.dtype != object:
        s = col.str.strip()
        return s.where(s != "")
    return pd.Series([to_text(v) for v in col], index=col.index, dtype="str")


def numbers(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """``(floats, bad)``: missing values are NaN; ``bad`` marks present values that are not numbers."""
    if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
        return col.to_numpy(dtype=float, na_value=np.nan), np.zeros(len(col), dtype=bool)
    given = text(col)
    out = pd.to_numeric(given, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return out, given.notna().to_numpy() & np.isnan(out)


def kcxs_fraction(kcxs: np.ndarray) -> np.ndarray:
    """扣除系数 as a fraction: above 1 it is a percentage, missing is 0.

    The rule of sql/10_ingest/landuse.sql, for the parcels ingest copies
    straight into weipian.landuse (tests/test_ingest.py checks both agree).
    """
    v = np.asarray(kcxs, dtype=float)
    return np.where(np.isnan(v), 0.0, np.where(v > 1, v / 100, v))


def dates(col: pd.Series, excel: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(datetime64[D] values, bad)``: ``bad`` marks present values that are not dates.

    ``excel``: the column comes from an XLSX sheet, where a bare number in
    EXCEL_SERIALS is a date cell (days since 1899-12-30).
    """
    n = len(col)
    out = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
    if pd.api.types.is_datetime64_any_dtype(col.dtype):
        values = col.dt.tz_localize(None) if getattr(col.dt, "tz", None) is not None else col
        return values.to_numpy(dtype="datetime64[D]"), np.zeros(n, dtype=bool)
    if col.dtype == object:
        kinds = col.map(_kind).to_numpy()
        typed = (kinds == "date") | ((kinds == "serial") & excel)
        if typed.any():
            out[typed] = [_from_object(v) for v in col[typed]]
        textual = (kinds == "text") | ((kinds == "serial") & (not excel))
    else:
        textual = np.ones(n, dtype=bool)
    s = text(col[textual])
    parsed = _parse_text_dates(s)
    out[textual] = parsed
    bad = np.zeros(n, dtype=bool)
    bad[np.flatnonzero(textual)[s.notna().to_numpy() & np.isnat(parsed)]] = True
    return out, bad


def _kind(v) -> str:
    if is_missing(v):
        return "missing"
    if isinstance(v, (datetime, date, pd.Timestamp, np.datetime64)):
        return "date"
    if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool):
        f = float(v)
        if f.is_integer() and EXCEL_SERIALS[0] <= f < EXCEL_SERIALS[1]:
            return "serial"
    return "text"


def _from_object(v) -> np.datetime64:
    if isinstance(v, (int, float, np.integer, np.floating)):
        return _EXCEL_EPOCH + np.timedelta64(int(v), "D")
    if isinstance(v, datetime):
        v = v.date()
    elif not isinstance(v, date):
        v = pd.Timestamp(v).date()
    return np.datetime64(v, "D")


def _parse_text_dates(s: pd.Series) -> np.ndarray:
    """20220315, 2022-03-15, 2022/3/15, 2022.3.15, 2022年3月15日 (a time may follow); else NaT."""
    out = np.full(len(s), np.datetime64("NaT"), dtype="datetime64[D]")
    if not len(s):
        return out
    s = s.astype("str")
    parts = s.str.extract(_YMD8)
    sep = s.str.extract(_YMD_SEP)
    parts = parts.fillna(sep)
    ymd = parts.apply(pd.to_numeric, errors="coerce")
    ok = ymd.notna().all(axis=1).to_numpy()
    if ok.any():
        y, m, d = (ymd.loc[ok, i].to_numpy(dtype=np.int64) for i in range(3))
        stamp = pd.to_datetime(pd.DataFrame({"year": y, "month": m, "day": d}), errors="coerce")
        out[ok] = stamp.to_numpy(dtype="datetime64[D]")
    return out


def mapped(col: pd.Series, table: dict[str, str], upper: bool = False) -> tuple[pd.Series, np.ndarray]:
    """Values looked up in ``table``: (normalised values, bad = present but not in the table)."""
    keys = col.str.upper() if upper else col
    out = keys.map(table)
    bad = (col.notna() & out.isna()).to_numpy()
    return out.astype("str"), bad
