#!/usr/bin/env python3
"""`make bench`: weipian on a generated county, stage by stage, side by side with the alternatives.

    python bench/run_bench.py [--parcels 300000] [--changes 3000] [--timeout 300] [--scaling]

1. Generates the county (bench/generate_county.py) unless bench/out/ already
   holds it, and starts the benchmarks' own embedded PostGIS (bench/out/db).
2. Stages, in a fresh database: `weipian ingest`, `classify`, `stats`,
   `report`, each as its own process: wall time, rows/s, peak memory.
3. The whole `weipian run` from files to every output in another fresh
   database, then again with nothing new.
4. Classification side by side, from the same loaded layers: weipian's
   classify stage (parallel, and on one core), the geopandas baseline
   (bench/baseline_geopandas.py) and the DuckDB baseline
   (bench/baseline_duckdb.py), once autovacuum is done with the fresh load,
   in rounds of one run each (--repeat rounds, the fastest run of each
   counting); ratios; the areas compared per class and per polygon
   (bench/layers.py: compare).
5. What each technique buys: the naive SQL (one union of each whole layer,
   bench/naive_sql/) and the first version of the classification SQL (git
   history), against the current one, on clones of the loaded database.
6. EXPLAIN (ANALYZE, BUFFERS) of every classification statement, and of the
   statements inside weipian.classify_polygon for a few polygons (auto_explain),
   into bench/out/explain/.
7. With --scaling: classification time with twice the parcels and twice the
   change polygons (each its own generated county).
Results: bench/out/bench.json (and the table printed).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.layers import RESULT_COLUMNS, compare  # noqa: E402
from bench.measure import OUT, bench_cluster, env_for, measured, run_command, weipian  # noqa: E402
from pipeline import SQL_DIR, classify as classify_stage  # noqa: E402
from pipeline.config import load_county  # noqa: E402

TOLERANCE = (0.01, 1e-6)  # m², relative: per polygon and column
FIRST_SQL_COMMIT = "ab7398b"  # the classification SQL before issue 7 (sql/20_classify/10..60)
FIRST_SQL_STEPS = ["10_overlays.sql", "20_desk_pieces.sql", "30_judgement.sql", "40_final_pieces.sql",
                   "50_township_pieces.sql", "60_publish.sql"]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def ensure_county(parcels: int, changes: int, seed: int = 1) -> Path:
    folder = OUT / f"county_{parcels}_{changes}"
    meta = folder / "generated.json"
    if meta.is_file():
        info = json.loads(meta.read_text(encoding="utf-8"))
        if info.get("parcels") == parcels and info.get("changes") == changes:
            return folder
    log(f"generating {parcels} parcels, {changes} change polygons → {folder}")
    subprocess.run([sys.executable, str(ROOT / "bench" / "generate_county.py"), "--out", str(folder),
                    "--parcels", str(parcels), "--changes", str(changes), "--seed", str(seed)], check=True)
    return folder


def fresh_db(cluster, name: str, template: str | None = None) -> str:
    cluster.drop_database(name)
    return cluster.create_database(name, template=template)


def results_frame(url: str, county: str, batch: str) -> pd.DataFrame:
    with psycopg.connect(url) as conn:
        cur = conn.execute(f"""SELECT {', '.join(RESULT_COLUMNS)} FROM weipian.change_result
                               WHERE county_code = %s AND batch = %s ORDER BY change_id""", (county, batch))
        return pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description])


def counts(url: str, county: str) -> dict:
    with psycopg.connect(url) as conn:
        n = dict(conn.execute("SELECT kind, sum(n_read) FROM weipian.source WHERE county_code = %s GROUP BY kind",
                              (county,)).fetchall())
    return {k: int(v) for k, v in n.items()}


def rate(rows: int, seconds: float) -> float:
    return round(rows / seconds, 1) if seconds else 0.0


# ------------------------------------------------------------------ stages

def stages(cluster, toml: Path, county, batch: str) -> tuple[dict, str]:
    url = fresh_db(cluster, "bench_stages")
    env = env_for(url)
    out = {}
    for stage in ("ingest", "classify", "stats", "report"):
        args = [stage, toml] + (["--out", OUT / "stages_out"] if stage == "report" else [])
        r = run_command(weipian(*args), env, cluster)
        if r["returncode"] != 0:
            raise SystemExit(f"weipian {stage} failed:\n{r['stderr'][-3000:]}")
        out[stage] = {k: r[k] for k in ("wall_s", "python_peak_mb", "db_peak_mb")}
        log(f"  {stage:9s} {r['wall_s']:8.2f} s")
    n = counts(url, county.code)
    out["ingest"]["rows"] = sum(n.values())
    out["ingest"]["rows_by_kind"] = n
    for stage in ("classify", "stats", "report"):
        out[stage]["rows"] = n.get("change", 0)
    for v in out.values():
        v["rows_per_s"] = rate(v["rows"], v["wall_s"])
    return out, url


def whole_run(cluster, toml: Path, n_rows: int) -> dict:
    url = fresh_db(cluster, "bench_run")
    env = env_for(url)
    res = {}
    for label in ("first", "again"):
        r = run_command(weipian("run", toml, "--out", OUT / "run_out"), env, cluster)
        if r["returncode"] != 0:
            raise SystemExit(f"weipian run failed:\n{r['stderr'][-3000:]}")
        res[label] = {k: r[k] for k in ("wall_s", "python_peak_mb", "db_peak_mb")}
        res[label]["rows_per_s"] = rate(n_rows, r["wall_s"])
        log(f"  run ({label}) {r['wall_s']:8.2f} s")
    cluster.drop_database("bench_run")
    return res


# ------------------------------------------------------------------ classification side by side

def ours(cluster, url: str, county, batch: str, workers: str | None) -> dict:
    os.environ["DATABASE_URL"] = url
    if workers is None:
        os.environ.pop("WEIPIAN_PARALLEL_WORKERS", None)
    else:
        os.environ["WEIPIAN_PARALLEL_WORKERS"] = workers
    from pipeline import db

    with db.connect() as conn:
        classify_stage.install_functions(conn)
        res: dict = {}
        with measured(res, cluster):
            classify_stage.classify_batch(conn, county, batch)
    os.environ.pop("WEIPIAN_PARALLEL_WORKERS", None)
    return res


def baseline(cluster, url: str, script: str, county, batch: str, csv: Path, timeout: float) -> dict:
    r = run_command([sys.executable, str(ROOT / "bench" / script), county.code, batch, "--csv", str(csv)],
                    env_for(url), cluster, timeout=timeout)
    if r.get("timed_out"):
        return {"timed_out": True, "wall_s": r["wall_s"]}
    if r["returncode"] != 0:
        return {"error": r["stderr"][-2000:]}
    info = json.loads(r["stdout"].strip().splitlines()[-1])
    return {"classify_s": info["classify_s"], "classify_cpu_s": info["classify_cpu_s"], "load_s": info["load_s"],
            "process_wall_s": r["wall_s"],
            "python_peak_mb": r["python_peak_mb"], "classes": info["classes"]}


def best(runs: list[dict], key: str) -> dict:
    """The fastest of repeated runs, with every run's time beside it (the machine may be shared)."""
    ok = [r for r in runs if key in r]
    if not ok:
        return runs[-1]
    top = dict(min(ok, key=lambda r: r[key]))
    top["runs_s"] = [r[key] for r in ok]
    return top


def quiet(url: str, limit_s: float = 120) -> float:
    """Wait until no autovacuum worker is busy (a fresh load sets them off); return the seconds waited.

    Their VACUUM / ANALYZE of the tables just written would take a core from
    whichever contender ran first.
    """
    t = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        while time.perf_counter() - t < limit_s and conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'").fetchone()[0]:
            time.sleep(0.5)
    return round(time.perf_counter() - t, 1)


def side_by_side(cluster, url: str, county, batch: str, timeout: float, repeat: int) -> dict:
    """Each contender `repeat` times, in rounds (one run of each per round), the fastest counting.

    In rounds rather than one contender after the other, so that a slow spell of
    the shared machine falls on all of them alike.
    """
    n = len(results_frame(url, county.code, batch))
    res = {"polygons": n, "repeat": repeat, "waited_for_autovacuum_s": quiet(url)}
    baselines = (("geopandas", "baseline_geopandas.py"), ("duckdb", "baseline_duckdb.py"))
    runs: dict[str, list[dict]] = {k: [] for k in ("weipian", "weipian_one_core", *dict(baselines))}
    mine = None
    for i in range(repeat):
        log(f"  round {i + 1} of {repeat}: weipian classify (parallel, one core), geopandas, duckdb")
        runs["weipian"].append(ours(cluster, url, county, batch, None))
        if mine is None:
            mine = results_frame(url, county.code, batch)
        runs["weipian_one_core"].append(ours(cluster, url, county, batch, "0"))
        for name, script in baselines:
            runs[name].append(baseline(cluster, url, script, county, batch, OUT / f"results_{name}.csv", timeout))
    res["weipian"] = best(runs["weipian"], "wall_s")
    res["weipian_one_core"] = best(runs["weipian_one_core"], "wall_s")
    for name, _ in baselines:
        r = best(runs[name], "classify_s")
        if "classify_s" in r:
            r["same_areas"] = compare(mine, pd.read_csv(OUT / f"results_{name}.csv", dtype={"xzqdm": str}),
                                      *TOLERANCE)
            r["weipian_speedup"] = round(r["classify_s"] / res["weipian"]["wall_s"], 2)
        res[name] = r
    for v in ("weipian", "weipian_one_core"):
        res[v]["polygons_per_s"] = rate(n, res[v]["wall_s"])
    mine.to_csv(OUT / "results_weipian.csv", index=False)
    return res


# ------------------------------------------------------------------ techniques

def run_steps(url: str, county, batch: str, files: list[tuple[str, str]], timeout: float, cluster) -> dict:
    """Run SQL files in one transaction with the batch's parameters; cancelled after `timeout` seconds."""
    res: dict = {}
    conn = psycopg.connect(url)
    timer = threading.Timer(timeout, conn.cancel)
    try:
        with measured(res, cluster):
            timer.start()
            with conn.transaction():
                for k, v in {"county_code": county.code, "batch": batch,
                             "min_part_m2": county.settings["min_part_m2"]}.items():
                    conn.execute("SELECT set_config(%s, %s, true)", (f"weipian.{k}", str(v)))
                for _name, text in files:
                    conn.execute(text)
    except psycopg.errors.QueryCanceled:
        res["timed_out"] = True
    finally:
        timer.cancel()
        conn.close()
    return res


def first_sql() -> list[tuple[str, str]] | None:
    files = []
    for name in FIRST_SQL_STEPS:
        r = subprocess.run(["git", "show", f"{FIRST_SQL_COMMIT}:sql/20_classify/{name}"], cwd=ROOT,
                           capture_output=True, text=True)
        if r.returncode != 0:
            return None
        files.append((name, r.stdout))
    return files


def techniques(cluster, url: str, county, batch: str, timeout: float) -> dict:
    out = {}
    publish = (SQL_DIR / "20_classify" / "60_publish.sql").read_text(encoding="utf-8")
    naive = (ROOT / "bench" / "naive_sql" / "20_naive.sql").read_text(encoding="utf-8")
    variants = {"naive_whole_layer_unions": [("20_naive.sql", naive), ("60_publish.sql", publish)]}
    first = first_sql()
    if first:
        variants["first_sql_candidates_serial"] = first
    mine = results_frame(url, county.code, batch)
    for name, files in variants.items():
        log(f"  variant {name}")
        vurl = fresh_db(cluster, "bench_variant", template="bench_stages")
        r = run_steps(vurl, county, batch, files, timeout, cluster)
        if not r.get("timed_out"):
            r["same_areas"] = compare(mine, results_frame(vurl, county.code, batch), *TOLERANCE)
        out[name] = r
        cluster.drop_database("bench_variant")
    return out


# ------------------------------------------------------------------ EXPLAIN

def statements(text: str) -> list[str]:
    """The statements of an SQL file: split at a ';' ending a line, not inside a $$ body."""
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    out, part = [], []
    for piece in re.split(r"(;\s*\n)", body):
        part.append(piece)
        if re.fullmatch(r";\s*\n", piece) and "".join(part).count("$$") % 2 == 0:
            out.append("".join(part[:-1]))
            part = []
    out.append("".join(part))
    return [s.strip() for s in out if s.strip()]


def explain(cluster, county, batch: str) -> list[str]:
    url = fresh_db(cluster, "bench_explain", template="bench_stages")
    folder = OUT / "explain"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    with psycopg.connect(url) as conn:
        classify_stage.install_functions(conn)
        with conn.transaction():
            for k, v in classify_stage.session_settings().items():
                conn.execute("SELECT set_config(%s, %s, true)", (k, v))
            for k, v in {"county_code": county.code, "batch": batch,
                         "min_part_m2": county.settings["min_part_m2"]}.items():
                conn.execute("SELECT set_config(%s, %s, true)", (f"weipian.{k}", str(v)))
            for step in classify_stage.CLASSIFY_STEPS:
                parts = []
                for stmt in statements((SQL_DIR / "20_classify" / step).read_text(encoding="utf-8")):
                    if re.match(r"(?is)^(SELECT|WITH|INSERT|DELETE|UPDATE|CREATE\s+TEMP\s+TABLE\s+\w+.*\bAS\b)", stmt):
                        plan = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS, VERBOSE) {stmt}").fetchall()
                        parts.append(stmt + ";\n\n" + "\n".join(r[0] for r in plan))
                    else:
                        conn.execute(stmt)
                        parts.append(stmt + ";")
                path = folder / (step.replace(".sql", ".txt"))
                path.write_text("\n\n----\n\n".join(parts) + "\n", encoding="utf-8")
                written.append(str(path.relative_to(ROOT)))
        # the statements inside the function (its lookup of the reference polygons
        # near P, the plan zones of illegal pieces) for a few polygons, through auto_explain
        notices: list[str] = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        with conn.transaction():
            for stmt in ("LOAD 'auto_explain'", "SET LOCAL auto_explain.log_min_duration = 0",
                         "SET LOCAL auto_explain.log_analyze = on", "SET LOCAL auto_explain.log_buffers = on",
                         "SET LOCAL auto_explain.log_nested_statements = on",
                         "SET LOCAL auto_explain.log_level = 'notice'", "SET LOCAL jit = off",
                         "SET LOCAL max_parallel_workers_per_gather = 0"):
                conn.execute(stmt)
            conn.execute("""SELECT count(*) FROM (
                                SELECT weipian.classify_polygon(
                                           c.id, c.county_code, c.geom, coalesce(ct.rule, 'construction'), c.hsx,
                                           NULL, NULL,
                                           (SELECT array_agg(lj.class ORDER BY lj.priority)
                                            FROM weipian.land_judgement lj),
                                           true, true, 10)
                                FROM (SELECT * FROM weipian.change_polygon WHERE county_code = %s AND batch = %s
                                      ORDER BY id LIMIT 3) c
                                LEFT JOIN weipian.change_type ct ON ct.bhlx = c.bhlx) s""", (county.code, batch))
        body = [n for n in notices if "weipian.landuse" in n or "weipian.plan_zone_part" in n]
        path = folder / "00_classify_polygon_body.txt"
        path.write_text("\n\n----\n\n".join(body) + "\n", encoding="utf-8")
        written.append(str(path.relative_to(ROOT)))
    cluster.drop_database("bench_explain")
    return written


# ------------------------------------------------------------------ scaling

def scaling(cluster, base: tuple[int, int], repeat: int) -> dict:
    out = {}
    for label, (p, c) in {"base": base, "double_parcels": (2 * base[0], base[1]),
                          "double_changes": (base[0], 2 * base[1])}.items():
        folder = ensure_county(p, c)
        county = load_county(folder / "county.toml")
        url = fresh_db(cluster, "bench_scaling")
        r = run_command(weipian("ingest", folder / "county.toml"), env_for(url), cluster)
        if r["returncode"] != 0:
            raise SystemExit(f"ingest failed:\n{r['stderr'][-2000:]}")
        runs = [ours(cluster, url, county, county.batches[0], None) for _ in range(repeat + 1)][1:]
        out[label] = {"parcels": p, "changes": c, "ingest_s": r["wall_s"], "classify_s": min(x["wall_s"] for x in runs),
                      "classify_cpu_s": min(x["db_cpu_s"] for x in runs),
                      "classify_runs_s": [x["wall_s"] for x in runs], "classify_runs_cpu_s": [x["db_cpu_s"] for x in runs]}
        log(f"  {label}: {p} parcels, {c} changes: classify {out[label]['classify_s']:.2f} s, "
            f"{out[label]['classify_cpu_s']:.2f} s CPU")
        cluster.drop_database("bench_scaling")
    b = out["base"]["classify_s"]
    bc = out["base"]["classify_cpu_s"]
    out["double_parcels"]["increase_pct"] = round(100 * (out["double_parcels"]["classify_s"] / b - 1), 1)
    out["double_parcels"]["cpu_increase_pct"] = round(100 * (out["double_parcels"]["classify_cpu_s"] / bc - 1), 1)
    out["double_changes"]["ratio"] = round(out["double_changes"]["classify_s"] / b, 2)
    out["double_changes"]["cpu_ratio"] = round(out["double_changes"]["classify_cpu_s"] / bc, 2)
    return out


# ------------------------------------------------------------------ report

def table(res: dict) -> str:
    lines = []
    st = res["stages"]
    lines.append(f"county: {res['county']['parcels']} parcels, {res['county']['changes']} change polygons, "
                 f"{res['county']['farmland']} farmland, {res['county']['approvals']} approvals")
    lines.append(f"{'stage':<28}{'wall s':>9}{'rows/s':>12}{'py MB':>9}{'db MB':>9}")
    for k, v in st.items():
        lines.append(f"{k:<28}{v['wall_s']:>9.2f}{v['rows_per_s']:>12.0f}{v['python_peak_mb']:>9.0f}{v['db_peak_mb']:>9.0f}")
    for k, v in res["run"].items():
        lines.append(f"{'run (' + k + ')':<28}{v['wall_s']:>9.2f}{v['rows_per_s']:>12.0f}"
                     f"{v['python_peak_mb']:>9.0f}{v['db_peak_mb']:>9.0f}")
    c = res["classification"]
    lines.append("")
    lines.append(f"classification of {c['polygons']} polygons{'':<4}{'s':>9}{'× weipian':>12}{'CPU s':>9}  same areas")
    w = c["weipian"]["wall_s"]
    lines.append(f"{'weipian (parallel)':<28}{w:>9.2f}{1.0:>12.2f}{c['weipian'].get('db_cpu_s', 0):>9.2f}")
    lines.append(f"{'weipian (one core)':<28}{c['weipian_one_core']['wall_s']:>9.2f}"
                 f"{c['weipian_one_core']['wall_s'] / w:>12.2f}{c['weipian_one_core'].get('db_cpu_s', 0):>9.2f}")
    for name in ("geopandas", "duckdb"):
        r = c[name]
        if "classify_s" in r:
            lines.append(f"{name:<28}{r['classify_s']:>9.2f}{r['classify_s'] / w:>12.2f}{r.get('classify_cpu_s', 0):>9.2f}  "
                         f"{'yes' if r['same_areas']['ok'] else 'NO'} (max |Δ| "
                         f"{max(r['same_areas']['max_abs_diff_m2'].values()):.2g} m²)")
        else:
            lines.append(f"{name:<28}{'—':>9}  {'timed out' if r.get('timed_out') else 'failed'}")
    for name, r in res.get("techniques", {}).items():
        if r.get("timed_out"):
            lines.append(f"{name:<28}{'>' + str(res['timeout_s']):>9}{'>' + format(res['timeout_s'] / w, '.0f'):>12}"
                         f"  (cancelled)")
        else:
            lines.append(f"{name:<28}{r['wall_s']:>9.2f}{r['wall_s'] / w:>12.2f}  "
                         f"{'yes' if r['same_areas']['ok'] else 'NO'}")
    if "scaling" in res:
        s = res["scaling"]
        lines.append("")
        lines.append(f"scaling: classify {s['base']['classify_s']:.2f} s ({s['base'].get('classify_cpu_s', 0):.2f} s CPU); "
                     f"twice the parcels {s['double_parcels']['classify_s']:.2f} s "
                     f"({s['double_parcels']['increase_pct']:+.0f} %, CPU {s['double_parcels'].get('cpu_increase_pct', 0):+.0f} %); "
                     f"twice the changes {s['double_changes']['classify_s']:.2f} s "
                     f"(× {s['double_changes']['ratio']}, CPU × {s['double_changes'].get('cpu_ratio', 0)})")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parcels", type=int, default=300_000)
    ap.add_argument("--changes", type=int, default=3_000)
    ap.add_argument("--timeout", type=float, default=300, help="seconds allowed to a baseline or variant")
    ap.add_argument("--scaling", action="store_true", help="also twice the parcels / twice the changes")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each classification; the fastest counts")
    ap.add_argument("--only", help="comma-separated parts to (re)measure, kept with the others in bench.json: "
                                   "stages,run,classification,techniques,explain,scaling")
    args = ap.parse_args(argv)
    parts = set(args.only.split(",")) if args.only else {"stages", "run", "classification", "techniques",
                                                          "explain"} | ({"scaling"} if args.scaling else set())
    OUT.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    folder = ensure_county(args.parcels, args.changes)
    toml = folder / "county.toml"
    county = load_county(toml)
    batch = county.batches[0]
    cluster = bench_cluster()
    res: dict = {"county": json.loads((folder / "generated.json").read_text(encoding="utf-8")),
                 "machine": {"cores": os.cpu_count()}, "timeout_s": args.timeout,
                 "tolerance": f"per polygon and column |Δ| ≤ max({TOLERANCE[0]} m², {TOLERANCE[1]:g} × value)"}
    previous = OUT / "bench.json"
    if args.only and previous.is_file():
        res = {**json.loads(previous.read_text(encoding="utf-8")), **{k: v for k, v in res.items() if k != "county"}}
    url = cluster.url("bench_stages")
    if "stages" in parts:
        log("stages")
        res["stages"], url = stages(cluster, toml, county, batch)
    if "run" in parts:
        log("whole run")
        res["run"] = whole_run(cluster, toml, res["stages"]["ingest"]["rows"])
    if "classification" in parts:
        log("classification side by side")
        res["classification"] = side_by_side(cluster, url, county, batch, args.timeout, args.repeat)
    if "techniques" in parts:
        log("techniques")
        res["techniques"] = techniques(cluster, url, county, batch, args.timeout)
    if "explain" in parts:
        log("explain")
        res["explain_files"] = explain(cluster, county, batch)
    if "scaling" in parts:
        log("scaling")
        res["scaling"] = scaling(cluster, (args.parcels, args.changes), args.repeat)
    res["load_average_at_end"] = os.getloadavg()
    res["bench_wall_s"] = round(time.time() - t0, 1)
    (OUT / "bench.json").write_text(json.dumps(res, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    print(table(res))
    print(f"\n→ {OUT / 'bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
