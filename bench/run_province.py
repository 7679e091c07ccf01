#!/usr/bin/env python3
"""`make bench-province`: a province (20 generated counties) through `weipian run`, counties in parallel.

    python bench/run_province.py [--counties 20] [--parcels 300000] [--changes 3000] [--jobs 2] [--deadline 1200]

Each county runs as its own `weipian run` process (both cores busy: --jobs
processes at a time, each also using PostgreSQL parallel workers for its
classification), all into one database. No new county starts after --deadline
seconds (default 20 minutes); the counties running then finish. Reports the
wall time, counties and parcels done, the largest Python RSS of any county
process, the database's private memory, and how busy the cores were (from
/proc/stat). Results: bench/out/province.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.measure import OUT, Sampler, bench_cluster, env_for, postmaster_pid, run_command, weipian  # noqa: E402


def cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of all cores, from /proc/stat."""
    with open("/proc/stat") as f:
        parts = [float(x) for x in f.readline().split()[1:]]
    idle = parts[3] + parts[4]
    return sum(parts) - idle, sum(parts)


def ensure_province(n: int, parcels: int, changes: int, jobs: int) -> Path:
    folder = OUT / f"province_{n}x{parcels}_{changes}"
    meta = folder / "province.json"
    if meta.is_file() and len(json.loads(meta.read_text(encoding="utf-8"))) == n:
        return folder
    t0 = time.time()
    subprocess.run([sys.executable, str(ROOT / "bench" / "generate_county.py"), "--out", str(folder),
                    "--counties", str(n), "--parcels", str(parcels), "--changes", str(changes),
                    "--jobs", str(jobs)], check=True)
    print(f"generated in {time.time() - t0:.0f} s", file=sys.stderr)
    return folder


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--counties", type=int, default=20)
    ap.add_argument("--parcels", type=int, default=300_000)
    ap.add_argument("--changes", type=int, default=3_000)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--deadline", type=float, default=1200, help="start no county after this many seconds")
    args = ap.parse_args(argv)
    folder = ensure_province(args.counties, args.parcels, args.changes, args.jobs)
    tomls = sorted(folder.glob("*/county.toml"))
    cluster = bench_cluster()
    cluster.drop_database("bench_province")
    env = env_for(cluster.create_database("bench_province"))
    # migrate once, so the county processes do not queue on the migration lock
    subprocess.run(weipian("db", "status"), env=env, check=True, capture_output=True)

    results: list[dict] = []
    lock = threading.Lock()
    t0 = time.time()
    busy0, total0 = cpu_times()
    db = Sampler(postmaster_pid(cluster))

    def one(toml: Path) -> None:
        if time.time() - t0 > args.deadline:
            return
        r = run_command(weipian("run", toml, "--out", OUT / "province_out" / toml.parent.name), env, None)
        row = {"county": toml.parent.name, "wall_s": r["wall_s"], "python_peak_mb": r["python_peak_mb"],
               "python_process_peak_mb": r["python_process_peak_mb"],
               "returncode": r["returncode"], "finished_at_s": round(time.time() - t0, 1)}
        if r["returncode"]:
            row["stderr"] = r["stderr"][-1500:]
        with lock:
            results.append(row)
        print(f"  {row['county']}: {row['wall_s']:.1f} s, python {row['python_peak_mb']:.0f} MB "
              f"(done at {row['finished_at_s']:.0f} s)", file=sys.stderr, flush=True)

    with db, ThreadPoolExecutor(max_workers=args.jobs) as pool:
        list(pool.map(one, tomls))
    wall = time.time() - t0
    busy1, total1 = cpu_times()
    ok = [r for r in results if r["returncode"] == 0]
    info = json.loads((folder / "province.json").read_text(encoding="utf-8"))
    parcels = sum(c["parcels"] for c in info if c["code"] in {r["county"] for r in ok})
    changes = sum(c["changes"] for c in info if c["code"] in {r["county"] for r in ok})
    summary = {
        "counties": len(tomls), "counties_done": len(ok), "jobs": args.jobs, "wall_s": round(wall, 1),
        "parcels_done": parcels, "changes_done": changes, "parcels_per_s": round(parcels / wall, 1),
        "python_peak_mb_max": max((r["python_peak_mb"] for r in results), default=0),
        "python_process_peak_mb_max": max((r["python_process_peak_mb"] for r in results), default=0),
        "db_private_peak_mb": round(db.peak.db_mb, 1),
        "cpu_busy_pct": round(100 * (busy1 - busy0) / max(total1 - total0, 1), 1),
        "deadline_s": args.deadline, "counties_run": sorted(results, key=lambda r: r["county"]),
    }
    (OUT / "province.json").write_text(json.dumps(summary, ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"province: {len(ok)}/{len(tomls)} counties ({parcels} parcels, {changes} change polygons) "
          f"in {wall:.0f} s; largest Python process {summary['python_process_peak_mb_max']:.0f} MB "
          f"(a county's process tree, PSS: {summary['python_peak_mb_max']:.0f} MB); "
          f"database private memory {summary['db_private_peak_mb']:.0f} MB; cores busy {summary['cpu_busy_pct']:.0f} %")
    print(f"→ {OUT / 'province.json'}")
    return 0 if len(ok) == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
