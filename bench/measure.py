"""Timing and peak memory of one benchmark step, and the database the benchmarks use.

Peak memory is sampled every 50 ms from /proc (Linux): the Python process tree
of the step (PSS, summed: a forked child's pages shared with its parent count
once, split between them; and, apart, the largest VmRSS of any one of its
processes) and, separately, the PostgreSQL server processes
(private memory RssAnon of every child of the postmaster, summed; the shared
buffers are left out, they are a fixed 256 MB set by pipeline/embedded.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.embedded import Cluster

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"


def _status(pid: int) -> dict[str, int]:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "RssAnon:")):
                    key, value = line.split(":", 1)
                    out[key + ":"] = int(value.split()[0])  # kB
    except OSError:
        pass
    return out


def _pss_kb(pid: int) -> int:
    """Proportional set size (kB) of a process: its private pages plus its share of shared ones."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


TICK = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int, children_too: bool = False) -> float:
    """CPU seconds (user + system) of a process; with children_too also of its reaped children."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if children_too:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / TICK


def server_cpu(postmaster: int | None) -> float:
    """CPU seconds used so far by the server's processes (backends, parallel workers, reaped ones)."""
    if not postmaster:
        return 0.0
    return _cpu(postmaster, True) + sum(_cpu(p) for p in _children().get(postmaster, []))


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(name))
    return kids


def _tree(root: int, kids: dict[int, list[int]]) -> list[int]:
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


@dataclass
class Sample:
    python_mb: float = 0.0          # the tree's PSS
    python_process_mb: float = 0.0  # the largest VmRSS of one process of the tree
    db_mb: float = 0.0


@dataclass
class Sampler:
    """Samples peak RSS of a process tree and of the PostgreSQL backends while running."""

    postmaster: int | None
    root: int | None = None
    peak: Sample = field(default_factory=Sample)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _once(self) -> None:
        kids = _children()
        if self.root:
            tree = _tree(self.root, kids)
            pss = sum(_pss_kb(p) for p in tree)
            rss = max((_status(p).get("VmRSS:", 0) for p in tree), default=0)
            self.peak.python_mb = max(self.peak.python_mb, pss / 1024)
            self.peak.python_process_mb = max(self.peak.python_process_mb, rss / 1024)
        if self.postmaster:
            anon = sum(_status(p).get("RssAnon:", 0) for p in kids.get(self.postmaster, []))
            self.peak.db_mb = max(self.peak.db_mb, anon / 1024)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self._once()

    def __enter__(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._once()


def postmaster_pid(cluster: Cluster) -> int | None:
    try:
        return int((cluster.datadir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


@contextmanager
def measured(result: dict, cluster: Cluster | None, root: int | None = None):
    """Time the block; put wall_s, db_cpu_s (server CPU seconds), python_peak_mb, db_peak_mb into result."""
    pm = postmaster_pid(cluster) if cluster else None
    s = Sampler(pm, root or os.getpid())
    c0 = server_cpu(pm)
    t0 = time.perf_counter()
    with s:
        yield s
    result["wall_s"] = round(time.perf_counter() - t0, 3)
    result["db_cpu_s"] = round(server_cpu(pm) - c0, 3)
    result["python_peak_mb"] = round(s.peak.python_mb, 1)
    result["python_process_peak_mb"] = round(s.peak.python_process_mb, 1)
    result["db_peak_mb"] = round(s.peak.db_mb, 1)


def run_command(cmd: list[str], env: dict, cluster: Cluster | None, timeout: float | None = None) -> dict:
    """Run a command, measuring its process tree; returns wall_s, memory, returncode, stdout, stderr."""
    result: dict = {}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            encoding="utf-8", errors="replace", cwd=ROOT)
    s = Sampler(postmaster_pid(cluster) if cluster else None, proc.pid)
    with s:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            result["timed_out"] = True
    result.update(wall_s=round(time.perf_counter() - t0, 3), python_peak_mb=round(s.peak.python_mb, 1),
                  python_process_peak_mb=round(s.peak.python_process_mb, 1), db_peak_mb=round(s.peak.db_mb, 1), returncode=proc.returncode)
    result["stdout"], result["stderr"] = out, err
    return result


def weipian(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline", *map(str, args)]


def bench_cluster() -> Cluster:
    """The benchmarks' own embedded PostGIS (bench/out/db, or $WEIPIAN_BENCH_DB_DIR), started."""
    folder = Path(os.environ.get("WEIPIAN_BENCH_DB_DIR") or OUT / "db")
    cluster = Cluster(folder)
    cluster.up()
    return cluster


def env_for(url: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PGSERVICE"}
    env.update(DATABASE_URL=url, PYTHONIOENCODING="utf-8")
    return env
