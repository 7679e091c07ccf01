"""Run records and the one-run-per-county lock.

Every `weipian run` is recorded in weipian.run: written when it starts and
updated after each stage, so even a run that was killed leaves a trace. The
lock is a session-level advisory lock keyed by county code: it is released
by PostgreSQL when the holding connection ends, killed processes included.
A killed run's backend may still be finishing its statement when the next run
starts (it notices the lost client within ``db.CLIENT_CHECK``), so a run
waits up to ``LOCK_WAIT_S`` seconds for the lock before refusing.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg
from psycopg.types.json import Jsonb

from pipeline.errors import WeipianError

LOCK_SQL = "SELECT pg_try_advisory_lock(hashtext('weipian.county'), hashtext(%s))"
WAIT_SQL = "SELECT pg_advisory_lock(hashtext('weipian.county'), hashtext(%s))"
UNLOCK_SQL = "SELECT pg_advisory_unlock(hashtext('weipian.county'), hashtext(%s))"


class LockHeld(WeipianError):
    """Another run of the same county holds the lock."""

    exit_code = 4


#: How long a run waits for a county's lock before it is refused.
LOCK_WAIT_S = 10


def acquire_lock(conn: psycopg.Connection, county_code: str) -> None:
    """Take the county's lock for the life of `conn` (autocommit), or raise LockHeld
    after waiting ``LOCK_WAIT_S`` seconds."""
    if conn.execute(LOCK_SQL, (county_code,)).fetchone()[0]:
        return
    conn.execute("SELECT set_config('lock_timeout', %s, false)", (f"{LOCK_WAIT_S}s",))
    try:
        conn.execute(WAIT_SQL, (county_code,))
    except psycopg.errors.LockNotAvailable:
        raise LockHeld(
            f"县 {county_code} 已有一个运行在进行中（数据库咨询锁被占用，已等待 {LOCK_WAIT_S} 秒）；"
            "等它结束后再运行，或用 `weipian runs --last` 查看"
        ) from None
    finally:
        conn.execute("RESET lock_timeout")


def lock_is_free(conn: psycopg.Connection, county_code: str) -> bool:
    if conn.execute(LOCK_SQL, (county_code,)).fetchone()[0]:
        conn.execute(UNLOCK_SQL, (county_code,))
        return True
    return False


@dataclass
class RunRecord:
    """One row of weipian.run, kept up to date as the run goes."""

    conn: psycopg.Connection
    county_code: str
    command: str
    id: int = 0
    stages: list[dict] = field(default_factory=list)
    inputs: list[dict] = field(default_factory=list)
    outputs: list[dict] = field(default_factory=list)

    def start(self) -> "RunRecord":
        self.id = self.conn.execute(
            "INSERT INTO weipian.run (county_code, command) VALUES (%s, %s) RETURNING id",
            (self.county_code, self.command),
        ).fetchone()[0]
        return self

    @contextmanager
    def stage(self, name: str):
        """Time a stage; the body sets rows_in / rows_out on the yielded dict."""
        entry = {"name": name, "seconds": None, "rows_in": None, "rows_out": None}
        t0 = time.perf_counter()
        yield entry
        entry["seconds"] = round(time.perf_counter() - t0, 3)
        self.stages.append(entry)
        self._save()

    def _save(self) -> None:
        self.conn.execute(
            "UPDATE weipian.run SET stages = %s, inputs = %s, outputs = %s WHERE id = %s",
            (Jsonb(self.stages), Jsonb(self.inputs), Jsonb(self.outputs), self.id),
        )

    def finish(self, exit_code: int, error: str | None = None) -> None:
        """Close the record; on a lost connection, try once more on a fresh one."""
        status = "ok" if exit_code == 0 else "failed"
        sql = """UPDATE weipian.run SET ended_at = clock_timestamp(), status = %s, exit_code = %s,
                 error = %s, stages = %s, inputs = %s, outputs = %s WHERE id = %s"""
        params = (status, exit_code, error, Jsonb(self.stages), Jsonb(self.inputs), Jsonb(self.outputs), self.id)
        try:
            self.conn.execute(sql, params)
        except psycopg.Error:
            from pipeline import db
            try:
                with db.connect(autocommit=True) as c:
                    c.execute(sql, params)
            except Exception:  # the database is gone; the log file still has the story
                pass


def list_runs(conn: psycopg.Connection, county_code: str | None, limit: int) -> list[dict]:
    rows = conn.execute(
        """SELECT id, county_code, command, started_at, ended_at, status, exit_code, error,
                  stages, inputs, outputs
           FROM weipian.run WHERE %(c)s::text IS NULL OR county_code = %(c)s
           ORDER BY id DESC LIMIT %(n)s""",
        {"c": county_code, "n": limit},
    ).fetchall()
    keys = ["id", "county_code", "command", "started_at", "ended_at", "status", "exit_code", "error",
            "stages", "inputs", "outputs"]
    runs = [dict(zip(keys, r)) for r in rows]
    for r in runs:
        if r["status"] == "running" and lock_is_free(conn, r["county_code"]):
            r["status"] = "interrupted"
    return runs


def describe(run: dict) -> str:
    """A run in detail, as `weipian runs --last` prints it."""
    lines = [
        f"运行 run {run['id']}  县 {run['county_code']}  状态 {run['status']}  退出码 {run['exit_code']}",
        f"命令 command: {run['command']}",
        f"开始 started: {run['started_at']:%Y-%m-%d %H:%M:%S}  结束 ended: "
        + (f"{run['ended_at']:%Y-%m-%d %H:%M:%S}" if run["ended_at"] else "—"),
    ]
    if run["error"]:
        lines.append(f"错误 error: {run['error']}")
    lines.append("阶段 stages:")
    for s in run["stages"]:
        lines.append(f"  {s['name']:<10} {s['seconds']:>8.3f} s  rows in {s['rows_in']}  rows out {s['rows_out']}")
    lines.append("输入 inputs:")
    for i in run["inputs"]:
        state = "重新入库 loaded" if i.get("loaded") else "未变化 unchanged"
        lines.append(f"  {i['kind']:<11} {i['path']}  {i.get('batch') or ''}  {i['checksum'][:12]}  {state}")
    if run["outputs"]:
        lines.append("输出 outputs:")
        for o in run["outputs"]:
            lines.append(f"  {o['folder']}  {'重写 written' if o['written'] else '未变化 unchanged'}")
    return "\n".join(lines)


def as_json(run: dict) -> str:
    return json.dumps(run, default=str, ensure_ascii=False)
