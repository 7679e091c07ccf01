"""The `weipian` command line: one command per stage, and `run` for all of them.

Commands parse their arguments, call the stage, and report. Errors print one
line on stderr and exit with a status that tells what went wrong (a traceback
only with `--debug`, and always in the run's log file):

    0 success · 1 internal error · 2 bad input · 3 database unavailable · 4 county locked
    5 cannot write files (disk full, permissions, no CJK font)
"""

from __future__ import annotations

import functools
import os
import shlex
import sys
from pathlib import Path

# numpy's OpenBLAS starts a thread per core that spins for a while after start,
# about 0.1 s of CPU in an ingest; weipian does no linear algebra worth it.
# Set before anything imports numpy.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import click
import psycopg

from pipeline import db, digests, embedded, logs, runs
from pipeline import stats as stats_stage
from pipeline.config import County, load_county
from pipeline.errors import WeipianError

log = logs.get("cli")
EXIT_INTERNAL, EXIT_DATABASE, EXIT_WRITE = 1, 3, 5


def user_errors(fn):
    """Turn every failure into one line on stderr and its exit status."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        debug = click.get_current_context().find_root().params.get("debug")
        try:
            return fn(*args, **kwargs)
        except WeipianError as e:
            code, message = e.exit_code, str(e)
        except psycopg.OperationalError as e:
            code, message = EXIT_DATABASE, f"数据库连接失败或中断 database unavailable: {' '.join(str(e).split())}"
        except OSError as e:  # full disk, no permission: the previous files are still in place
            code, message = EXIT_WRITE, f"无法写入文件 cannot write: {e}；之前的输出文件未被改动"
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as e:  # a bug of ours: say so, keep the traceback in the log
            log.debug("internal error", exc_info=True)
            code, message = EXIT_INTERNAL, f"内部错误 internal error: {type(e).__name__}: {e}"
            if debug:
                raise
        ctx_record = getattr(click.get_current_context(), "run_record", None)
        if ctx_record is not None:
            ctx_record.finish(code, message)
        log.error("错误 error: %s", message, exc_info=debug and code == EXIT_INTERNAL)
        sys.exit(code)
    return wrapper


county_argument = click.argument("county_toml", type=click.Path(dir_okay=False, path_type=Path))
batch_option = click.option("--batch", "-b", help="批次 batch (2022, 2025Q2), year (2024) or year range (2018-2021).")
out_option = click.option("--out", "-o", type=click.Path(file_okay=False, path_type=Path),
                          help="Output folder (default out/<county code>/<batch>/).")


@click.group()
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", envvar="WEIPIAN_LOG_FORMAT",
              show_default=True, help="Log lines as text or JSON lines (stderr and the run's log file).")
@click.version_option(package_name="weipian")
def main(debug: bool, log_format: str) -> None:
    """weipian: 土地卫片执法 pipeline on PostGIS.

    Exit status: 0 success, 1 internal error, 2 bad input, 3 database unavailable,
    4 another run of the county holds its lock, 5 cannot write files (disk full).

    Example: weipian run data/sample/county.toml --batch 2022
    """
    logs.setup(log_format, debug)


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
    if db.database_url() or os.environ.get("PGSERVICE"):
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
    digests.start(county)  # hashing the layers' files while the stage modules import
    conn = db.connect(autocommit=True)
    for name in db.migrate(conn):
        log.info("数据库升级 migration applied: %s", name)
    return county, conn


def _selections(county: County, batch: str | None) -> list[stats_stage.Selection]:
    batches = county.batches
    if batch:
        return [stats_stage.resolve(batch, batches)]
    return [stats_stage.resolve(b, batches) for b in batches]


def _out_dir(out: Path | None, county: County, sel: stats_stage.Selection, several: bool) -> Path:
    if out is None:
        return Path("out") / county.code / sel.folder
    return out / sel.folder if several else out


def _command_line() -> str:
    """The command as run, for the run record (arguments only: credentials live in the environment)."""
    return "weipian " + " ".join(shlex.quote(a) for a in sys.argv[1:])


@main.command()
@county_argument
@batch_option
@out_option
@click.option("--force", is_flag=True, help="Re-classify and rewrite even what has not changed.")
@click.option("--log-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the run's log file (default: logs/ under the output root).")
@user_errors
def run(county_toml: Path, batch: str | None, out: Path | None, force: bool, log_dir: Path | None) -> None:
    """Every stage for a county: ingest → classify → stats → report, doing only what changed.

    Without --batch, every batch, each in its own folder. Layers whose files did not
    change are not loaded again, batches whose inputs did not change are not judged
    again, and output files whose numbers did not change are not rewritten. One run
    per county at a time; each run is recorded (`weipian runs`).

    Example: weipian run data/sample/county.toml --batch 2018-2021 --out out/range
    """
    county = load_county(county_toml)
    selections = _selections(county, batch)  # a bad --batch stops before anything is written
    several = len(selections) > 1
    digests.start(county)  # hashing the layers' files while the stage modules import
    from pipeline import runner  # the stage modules load only for the commands that use them

    targets = [runner.Target(s, _out_dir(out, county, s, several)) for s in selections]
    root = out if (out is not None and several) else (out.parent if out is not None else Path("out") / county.code)
    log_format = click.get_current_context().find_root().params["log_format"]
    conn, record = runner.open_run(county, _command_line(), log_dir or root / "logs", log_format)
    click.get_current_context().run_record = record
    with conn:
        paths = runner.run(conn, county, targets, record, force=force)
        record.finish(0)
        log.info("运行 run %s 完成", record.id)
    for p in paths:
        click.echo(str(p))


@main.command()
@county_argument
@click.option("--dry-run", is_flag=True,
              help="Read and check everything and report the counts, then roll back: nothing is written.")
@user_errors
def ingest(county_toml: Path, dry_run: bool) -> None:
    """Load the county's layers that are new or changed; skip the rest.

    Example: weipian ingest data/sample/county.toml --dry-run
    """
    county, conn = _open(county_toml)
    with conn:
        runs.acquire_lock(conn, county.code)
        from pipeline import ingest as ingest_stage

        for r in ingest_stage.ingest(conn, county, dry_run=dry_run):
            log.info(r.line())
        if dry_run:
            log.info("试运行 dry run：以上是将会入库的结果，数据库未作任何改动")


@main.command()
@county_argument
@batch_option
@user_errors
def classify(county_toml: Path, batch: str | None) -> None:
    """The desk judgement (and field-check overrides) for a batch, from what is loaded.

    Example: weipian classify data/sample/county.toml --batch 2022
    """
    from pipeline import classify as classify_stage
    from pipeline import report as report_stage

    county = load_county(county_toml)
    selections = _selections(county, batch)
    county, conn = _open(county_toml)
    with conn:
        runs.acquire_lock(conn, county.code)
        for b in sorted({b for s in selections for b in s.batches}):
            counts = classify_stage.classify_batch(conn, county, b)
            summary = "，".join(f"{report_stage.CLASS_ZH[c]} {counts.get(c, 0)}" for c in report_stage.CLASS_ZH)
            log.info("批次 %s：%s", b, summary)
            for w in classify_stage.unknown_codes(conn, county, b):
                log.warning("提示 warning: %s", w)


@main.command()
@county_argument
@batch_option
@user_errors
def stats(county_toml: Path, batch: str | None) -> None:
    """Township statistics of a batch or year range into weipian.township_stat.

    Example: weipian stats data/sample/county.toml --batch 2022
    """
    county = load_county(county_toml)
    selections = _selections(county, batch)
    county, conn = _open(county_toml)
    with conn:
        for sel in selections:
            stats_stage.compute(conn, county, sel)
            log.info("统计 %s：已写入 weipian.township_stat", sel.label)


@main.command()
@county_argument
@batch_option
@out_option
@user_errors
def report(county_toml: Path, batch: str | None, out: Path | None) -> None:
    """Statistics and the output files, from the classified results in the database.

    Example: weipian report data/sample/county.toml --batch 2022 --out out/2022
    """
    from pipeline import report as report_stage

    county = load_county(county_toml)
    selections = _selections(county, batch)
    county, conn = _open(county_toml)
    with conn:
        for sel in selections:
            stats_stage.compute(conn, county, sel)
            path = report_stage.write_outputs(conn, county, sel, _out_dir(out, county, sel, len(selections) > 1))
            click.echo(str(path))


@main.command("runs")
@click.argument("county_toml", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option("--last", is_flag=True, help="Show the latest run in detail.")
@click.option("--limit", default=20, show_default=True, help="How many runs to list.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per run.")
@user_errors
def runs_command(county_toml: Path | None, last: bool, limit: int, as_json: bool) -> None:
    """List recorded runs (all counties, or the county of COUNTY_TOML), newest first.

    A run still marked running whose county lock is free was killed: it shows as interrupted.

    Example: weipian runs --last
    """
    code = load_county(county_toml).code if county_toml else None
    with db.connect(autocommit=True) as conn:
        db.migrate(conn)
        rows = runs.list_runs(conn, code, 1 if last else limit)
    if not rows:
        click.echo("没有运行记录 no runs recorded")
        return
    for r in rows:
        if as_json:
            click.echo(runs.as_json(r))
        elif last:
            click.echo(runs.describe(r))
        else:
            took = f"{(r['ended_at'] - r['started_at']).total_seconds():.1f}s" if r["ended_at"] else "—"
            click.echo(f"{r['id']:>6}  {r['county_code']}  {r['started_at']:%Y-%m-%d %H:%M:%S}  {took:>8}  "
                       f"{r['status']:<11} {'' if r['exit_code'] is None else r['exit_code']:>2}  {r['command']}")
