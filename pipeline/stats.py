"""Statistics stage: which batches a selection means, and the township table.

A selection is one batch (`2022`, `2025Q2`), a year (`2024`: the batch of that
name, or else every batch of that year) or a year range (`2018-2021`, also
`2018—2021` / `2018~2021`: every batch whose leading year lies in it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import psycopg

from pipeline import SQL_DIR
from pipeline.classify import set_params
from pipeline.config import County
from pipeline.db import run_sql_file
from pipeline.errors import ConfigError

_RANGE = re.compile(r"^\s*(\d{4})\s*[-—–~～至]\s*(\d{4})\s*$")


@dataclass(frozen=True)
class Selection:
    label: str  # as the report reads it: "2022", "2025Q2", "2018—2021"
    folder: str  # output folder name: "2022", "2025Q2", "2018-2021"
    batches: tuple[str, ...]
    is_range: bool = False


def resolve(spec: str, batches: list[str]) -> Selection:
    """The batches a `--batch` value selects, among the county's batches."""
    spec = spec.strip()
    m = _RANGE.match(spec)
    if m:
        lo, hi = int(m[1]), int(m[2])
        if lo > hi:
            raise ConfigError(f"--batch {spec}: the range runs backwards; write {hi}-{lo}")
        chosen = [b for b in batches if lo <= int(b[:4]) <= hi]
        label, folder = f"{lo}—{hi}", f"{lo}-{hi}"
        if lo == hi:
            label = folder = str(lo)
        is_range = lo != hi
    elif spec in batches:
        chosen, label, folder, is_range = [spec], spec, spec, False
    elif re.fullmatch(r"\d{4}", spec):
        chosen = [b for b in batches if b[:4] == spec]
        label, folder, is_range = spec, spec, False
    else:
        chosen = []
        label = folder = spec
        is_range = False
    if not chosen:
        known = "、".join(batches) or "无"
        raise ConfigError(f"--batch {spec}: no change layer of this county has that batch (batches: {known})")
    return Selection(label=label, folder=folder, batches=tuple(sorted(chosen)), is_range=is_range)


def compute(conn: psycopg.Connection, county: County, sel: Selection) -> None:
    """Write weipian.township_stat rows for the selection, in one transaction."""
    with conn.transaction():
        set_params(conn, {
            "county_code": county.code,
            "selection": sel.label,
            "batches": ",".join(sel.batches),
        })
        run_sql_file(conn, SQL_DIR / "30_statistics" / "10_township_stat.sql")
