#!/usr/bin/env python3
"""Ingest benchmark: `weipian ingest` beside ogr2ogr on the same DLTB, in one run.

    python bench/bench_ingest.py [--parcels 300000] [--fields standard|used] [--rounds 3] [--keep]

1. Generates (once; cached in bench/out/county<N>k_<fields>/) a DLTB of N
   Voronoi parcels with tens of vertices each (bench/generate_parcels.py), with
   the 30 fields of a 三调 DLTB (``--fields standard``, the default: what a
   county is given) or only the 8 weipian reads (``--fields used``: ogr2ogr then
   loads no more than weipian).
2. Starts a throwaway PostGIS cluster in a temporary folder (the embedded
   cluster of weipian, same settings), with one database per contender.
3. Times, each from a cold process:
   - ``weipian ingest county.toml`` (the CLI as a user runs it: read, check,
     repair, COPY, index maintained, quarantine, accounting);
   - ``ogr2ogr -f PostgreSQL --config PG_USE_COPY YES -gt 100000
     -nlt PROMOTE_TO_MULTI -lco SPATIAL_INDEX=NONE`` followed by
     ``CREATE INDEX ... USING gist`` (the index built after the load, so
     ogr2ogr gets its fastest path).
4. Repeats both ``--rounds`` times (default 3), alternating which goes first,
   each into a fresh database, and prints the median features/s of each, their
   ratio, the peak RSS of each process and the CPU seconds each costs, its own
   process and the database server's (every server process, reaped backends
   included); writes them to bench/out/ingest.json. On a machine whose two
   cores are shared with other jobs, the CPU seconds vary far less than the
   wall times.
   The machine is shared: single runs vary by a third, medians much less.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import pyogrio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline import db  # noqa: E402
from pipeline.embedded import Cluster  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from measure import postmaster_pid, server_cpu  # noqa: E402


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_timed(cmd: list[str], env: dict) -> tuple[float, int, float, subprocess.CompletedProcess]:
    """Wall seconds, peak RSS (bytes) and CPU seconds (user + system) of one child process.

    The peak is the child's VmHWM, polled every 20 ms (rusage's ru_maxrss would
    also count the memory of this process at fork time).
    """
    cpu = _children_cpu()
    t = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err)
        peak = 0
        while proc.poll() is None:
            try:
                with open(f"/proc/{proc.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            peak = max(peak, int(line.split()[1]) * 1024)
            except OSError:
                pass
            time.sleep(0.02)
        wall = time.perf_counter() - t
        out.seek(0)
        err.seek(0)
        done = subprocess.CompletedProcess(cmd, proc.returncode, out.read().decode("utf-8", "replace"),
                                           err.read().decode("utf-8", "replace"))
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return wall, peak, _children_cpu() - cpu, done


def main() -> None:
    ap = argparse.ArgumentParser(description="weipian ingest vs ogr2ogr")
    ap.add_argument("--parcels", type=int, default=300_000)
    ap.add_argument("--rounds", type=int, default=3,
                    help="runs of each contender, alternating; medians are reported (default 3)")
    ap.add_argument("--keep", action="store_true", help="keep the database cluster (prints its folder)")
    ap.add_argument("--fields", choices=["standard", "used"], default="standard",
                    help="the DLTB's fields: the 30 of a 三调 DLTB (default), or only the 8 weipian reads")
    ap.add_argument("--data", type=Path, help="a folder of county.toml and DLTB.shp to load instead of the generated one")
    args = ap.parse_args()

    data = (args.data.resolve() if args.data
            else ROOT / "bench" / "out" / f"county{args.parcels // 1000}k_{args.fields}")
    if not args.data and not (data / "county.toml").is_file():
        subprocess.run([sys.executable, str(ROOT / "bench" / "generate_parcels.py"), "--parcels", str(args.parcels),
                        "--fields", args.fields, "--out", str(data)], check=True)
    dltb = data / "DLTB.shp"
    for p in data.glob("DLTB.*"):  # warm the page cache for both contenders alike
        with open(p, "rb") as f:
            while f.read(1 << 24):
                pass

    folder = Path(tempfile.mkdtemp(prefix="wpb"))
    cluster = Cluster(folder)
    runs: dict[str, list[dict]] = {"weipian": [], "ogr2ogr": []}
    try:
        cluster.up()
        port = cluster.conninfo().split("port=")[1].split()[0]
        for i in range(args.rounds):
            order = ("weipian", "ogr2ogr") if i % 2 == 0 else ("ogr2ogr", "weipian")
            for who in order:
                name = f"bench_{who}_{i}"
                url = cluster.create_database(name)
                pm = postmaster_pid(cluster)
                runs[who].append(_weipian(url, data, pm) if who == "weipian" else _ogr2ogr(url, folder, port, name,
                                                                                             dltb, cluster.user, pm))
                cluster.drop_database(name)
                r = runs[who][-1]
                print(f"round {i + 1} {who:<8} {r['seconds']:6.2f} s  {r['features_per_s']:>7} features/s  "
                      f"CPU {r['client_cpu_s']:.2f} s + server {r['server_cpu_s']:.2f} s  "
                      f"peak RSS {r['peak_rss_mb']} MB", file=sys.stderr)
    finally:
        if args.keep:
            print(f"cluster kept in {folder}", file=sys.stderr)
        else:
            cluster.down()
            shutil.rmtree(folder, ignore_errors=True)

    results: dict = {"parcels": runs["weipian"][0]["features"], "file": str(dltb), "rounds": args.rounds,
                     "fields": len(pyogrio.read_info(dltb)["fields"])}
    for who, rs in runs.items():
        med = sorted(rs, key=lambda r: r["seconds"])[len(rs) // 2]
        cpu = sorted(r["client_cpu_s"] + r["server_cpu_s"] for r in rs)[len(rs) // 2]
        results[who] = {**med, "all_seconds": [r["seconds"] for r in rs],
                        "median_cpu_s": round(cpu, 2),
                        "peak_rss_mb": max(r["peak_rss_mb"] for r in rs)}
    ratio = results["weipian"]["features_per_s"] / results["ogr2ogr"]["features_per_s"]
    results["ratio_weipian_over_ogr2ogr"] = round(ratio, 2)
    results["cpu_ratio_ogr2ogr_over_weipian"] = round(results["ogr2ogr"]["median_cpu_s"]
                                                      / results["weipian"]["median_cpu_s"], 2)

    w, o = results["weipian"], results["ogr2ogr"]
    print(f"\ningest of {dltb}, {results['parcels']} parcels of {results['fields']} fields "
          f"(median of {args.rounds} runs each)")
    print(f"  weipian ingest : {w['seconds']:7.2f} s  {w['features_per_s']:>8} features/s  peak RSS {w['peak_rss_mb']} MB")
    print(f"  ogr2ogr + index: {o['seconds']:7.2f} s  {o['features_per_s']:>8} features/s  peak RSS {o['peak_rss_mb']} MB"
          f"  (load {o['load_seconds']} s, index {o['index_seconds']} s)")
    print(f"  ratio weipian / ogr2ogr: {ratio:.2f}× ({'at least as fast' if ratio >= 1 else 'slower'})")
    print(f"  CPU seconds, client + server (median): weipian {w['median_cpu_s']:.2f}, ogr2ogr {o['median_cpu_s']:.2f}"
          f" ({results['cpu_ratio_ogr2ogr_over_weipian']:.2f}×)")
    out = ROOT / "bench" / "out" / ("ingest.json" if args.fields == "standard" or args.data else "ingest_used.json")
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"  written to {out.relative_to(ROOT)}")


def _weipian(url: str, data: Path, postmaster: int | None) -> dict:
    with psycopg.connect(url, autocommit=True) as conn:
        db.migrate(conn)
    env = {**os.environ, "DATABASE_URL": url, "PYTHONIOENCODING": "utf-8"}
    env.pop("PGSERVICE", None)
    server = server_cpu(postmaster)
    wall, rss, cpu, _ = run_timed([sys.executable, "-m", "pipeline", "ingest", str(data / "county.toml")], env)
    time.sleep(0.2)  # the backend exits after the client: let the postmaster reap it
    server = server_cpu(postmaster) - server
    with psycopg.connect(url) as conn:
        n = conn.execute("SELECT count(*) FROM weipian.landuse").fetchone()[0]
    return {"seconds": round(wall, 2), "features": n, "features_per_s": round(n / wall),
            "client_cpu_s": round(cpu, 2), "server_cpu_s": round(server, 2), "peak_rss_mb": round(rss / 2**20)}


def _ogr2ogr(url: str, folder: Path, port: str, dbname: str, dltb: Path, user: str, postmaster: int | None) -> dict:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    ogr = shutil.which("ogr2ogr") or sys.exit("ogr2ogr not found: apt-get install gdal-bin")
    cmd = [ogr, "-f", "PostgreSQL", f"PG:host={folder} port={port} dbname={dbname} user={user}", str(dltb),
           "-nln", "dltb", "--config", "PG_USE_COPY", "YES", "-gt", "100000", "-nlt", "PROMOTE_TO_MULTI",
           "-lco", "SPATIAL_INDEX=NONE", "-lco", "GEOMETRY_NAME=geom"]
    server = server_cpu(postmaster)
    wall, rss, cpu, _ = run_timed(cmd, dict(os.environ))
    t = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE INDEX ON dltb USING gist (geom)")
        index = time.perf_counter() - t
        server = server_cpu(postmaster) - server
        n = conn.execute("SELECT count(*) FROM dltb").fetchone()[0]
    total = wall + index
    return {"seconds": round(total, 2), "load_seconds": round(wall, 2), "index_seconds": round(index, 2),
            "features": n, "features_per_s": round(n / total), "client_cpu_s": round(cpu, 2),
            "server_cpu_s": round(server, 2), "peak_rss_mb": round(rss / 2**20)}


if __name__ == "__main__":
    main()
