"""The `weipian` command line: one command per stage, and `run` for all of them.

Commands parse their arguments, call the stage, and report. Errors about the
user's data or setup print one line and exit non-zero (a traceback only with
`--debug`).
"""

from __future__ import annotations

import functools
import logging
import sys
from pathlib import Path

import click

from pipeline import classify as classify_stage
from pipeline import db, embedded, ingest as ingest_stage, report as report_stage, stats as stats_stage
from pipeline.config import County, load_county
from pipeline.errors import WeipianError

log = logging.getLogger("weipian")


def _say(msg: str) -> None:
    click.echo(msg, err=True)


def user_errors(fn):
    """Turn WeipianError into one line on stderr and its exit status."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        ctx = click.get_current_context()
        try:
            return fn(*args, **kwargs)
        except WeipianError as e:
            if ctx.find_root().params.get("debug"):
                raise
            click.echo(f"错误 error: {e}", err=True)
            sys.exit(e.exit_code)
    return wrapper


county_argument = click.argument("county_toml", type=click.Path(dir_okay=False, path_type=Path))
batch_option = click.option("--batch", "-b", help="批次 batch (2022, 2025Q2), year (2024) or year range (2018-2021).")
out_option = click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path),
                          help="Output folder (default out/<county code>/<batch>/).")


@click.group()
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(package_name="weipian")
def main(debug: bool) -> None:
    """weipian: 土地卫片执法 pipeline on PostGIS.

    Example: weipian run data/sample/county.toml --batch 2022
    """
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(message)s")


# ---------------------------------------------------------------- db

@main.group("db")
def db_group() -> None:
    """The embedded local PostGIS (used when neither PGSERVICE nor DATABASE_URL is set).

    Example: weipian db up
    """


def _cluster() -> embedded.Cluster:
    return embedded.Cluster(embedded.default_datadir())


@db_group.command("up")
@user_errors
def db_up() -> None:
    """Create (first time) and start the embedded database.

    Example: weipian db up
    """
    c = _cluster()
    c.up()
    click.echo(c.url())


@db_group.command("down")
@user_errors
def db_down() -> None:
    """Stop the embedded database.

    Example: weipian db down
    """
    _cluster().down()


@db_group.command("status")
@user_errors
def db_status() -> None:
    """Show whether the embedded database exists and runs, and where.

    Example: weipian db status
    """
    for key, value in _cluster().status().items():
        click.echo(f"{key}: {value}")
    if db.database_url() or __import__("os").environ.get("PGSERVICE"):
        click.echo("note: DATABASE_URL/PGSERVICE is set, so the pipeline uses that server instead")


@db_group.command("url")
@user_errors
def db_url() -> None:
    """Print the connection URL of the embedded database (for psql, QGIS or DATABASE_URL).

    Example: psql "$(weipian db url)"
    """
    click.echo(_cluster().url())


# ---------------------------------------------------------------- stages

def _open(county_toml: Path):
    county = load_county(county_toml)
    conn = db.connect(autocommit=True)
    applied = db.migrate(conn)
    for name in applied:
        _say(f"数据库升级 migration applied: {name}")
    return county, conn


def _ingest(conn, county: County) -> None:
    for r in ingest_stage.ingest(conn, county):
        _say(r.line())


def _selections(county: County, batch: str | None) -> list[stats_stage.Selection]:
    batches = county.batches
    if batch:
        return [stats_stage.resolve(batch, batches)]
    return [stats_stage.resolve(b, batches) for b in batches]


def _classify(conn, county: County, batches) -> None:
    for b in batches:
        counts = classify_stage.classify_batch(conn, county, b)
        summary = "，".join(f"{report_stage.CLASS_ZH[c]} {counts.get(c, 0)}" for c in report_stage.CLASS_ZH)
        _say(f"批次 {b}：{summary}")
        for w in classify_stage.unknown_codes(conn, county, b):
            _say(f"提示 warning: {w}")


def _out_dir(out: Path | None, county: County, sel: stats_stage.Selection, several: bool) -> Path:
    if out is None:
        return Path("out") / county.code / sel.folder
    return out / sel.folder if several else out


@main.command()
@county_argument
@batch_option
@out_option
@user_errors
def run(county_toml: Path, batch: str | None, out: Path | None) -> None:
    """Every stage for a county: ingest → classify → stats → report.

    Without --batch, every batch, each in its own folder.

    Example: weipian run data/sample/county.toml --batch 2018-2021 --out out/range
    """
    county = load_county(county_toml)
    selections = _selections(county, batch)  # a bad --batch stops before anything is written
    county, conn = _open(county_toml)
    with conn:
        _ingest(conn, county)
        needed = sorted({b for s in selections for b in s.batches})
        _classify(conn, county, needed)
        for sel in selections:
            stats_stage.compute(conn, county, sel)
            path = report_stage.write_outputs(conn, county, sel, _out_dir(out, county, sel, len(selections) > 1))
            click.echo(str(path))


@main.command()
@county_argument
@user_errors
def ingest(county_toml: Path) -> None:
    """Load the county's layers that are new or changed; skip the rest.

    Example: weipian ingest data/sample/county.toml
    """
    county, conn = _open(county_toml)
    with conn:
        _ingest(conn, county)


@main.command()
@county_argument
@batch_option
@user_errors
def classify(county_toml: Path, batch: str | None) -> None:
    """The desk judgement (and field-check overrides) for a batch, from what is loaded.

    Example: weipian classify data/sample/county.toml --batch 2022
    """
    county, conn = _open(county_toml)
    with conn:
        selections = _selections(county, batch)
        _classify(conn, county, sorted({b for s in selections for b in s.batches}))


@main.command()
@county_argument
@batch_option
@user_errors
def stats(county_toml: Path, batch: str | None) -> None:
    """Township statistics of a batch or year range into weipian.township_stat.

    Example: weipian stats data/sample/county.toml --batch 2022
    """
    county, conn = _open(county_toml)
    with conn:
        for sel in _selections(county, batch):
            stats_stage.compute(conn, county, sel)
            _say(f"统计 {sel.label}：已写入 weipian.township_stat")


@main.command()
@county_argument
@batch_option
@out_option
@user_errors
def report(county_toml: Path, batch: str | None, out: Path | None) -> None:
    """Statistics and the output files, from the classified results in the database.

    Example: weipian report data/sample/county.toml --batch 2022 --out out/2022
    """
    county, conn = _open(county_toml)
    with conn:
        selections = _selections(county, batch)
        for sel in selections:
            stats_stage.compute(conn, county, sel)
            path = report_stage.write_outputs(conn, county, sel, _out_dir(out, county, sel, len(selections) > 1))
            click.echo(str(path))
