"""`weipian run`: every stage for a county, doing only what its inputs require.

A night with nothing new must finish in seconds and rewrite nothing:
- ingest skips every layer whose files and settings have the same checksum;
- a batch is re-classified only when the digest of everything its judgement
  depends on changed (its change layers, every reference layer, its field
  checks, the rules' code and the settings), recorded in weipian.batch_state;
- a selection's statistics and files are rewritten only when the digest of its
  batches changed or a file is missing (a manifest beside the files).
Each stage publishes in one transaction; each file is renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import psycopg

from pipeline import PROJECT_ROOT, classify, db, ingest, logs, report, runs, stats
from pipeline.config import County
from pipeline.stats import Selection

log = logs.get("run")
MANIFEST = ".weipian-outputs.json"
REFERENCE_KINDS = ("township", "landuse", "farmland", "approval", "plan")


@lru_cache(maxsize=1)
def code_version() -> str:
    """Digest of the pipeline's own code and SQL: an upgrade recomputes everything."""
    h = hashlib.sha256()
    for folder, pattern in ((PROJECT_ROOT / "sql", "**/*.sql"), (PROJECT_ROOT / "pipeline", "*.py")):
        for p in sorted(folder.glob(pattern)):
            h.update(str(p.relative_to(PROJECT_ROOT)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def batch_digests(conn: psycopg.Connection, county: County) -> dict[str, str]:
    """For each batch, a digest of every input its classification depends on."""
    rows = conn.execute(
        """SELECT kind, path, layer, batch, checksum FROM weipian.source
           WHERE county_code = %s ORDER BY kind, path, layer, batch""",
        (county.code,),
    ).fetchall()
    common = [r for r in rows if r[0] in REFERENCE_KINDS]
    head = [code_version(), county.code, county.name, county.srid, county.settings]
    digests = {}
    for b in county.batches:
        own = [r for r in rows if (r[0] == "change" and r[3] == b) or (r[0] == "field_check" and r[3] in (b, ""))]
        payload = json.dumps([head, common, own], ensure_ascii=False, sort_keys=True, default=str)
        digests[b] = hashlib.sha256(payload.encode()).hexdigest()
    return digests


def selection_digest(sel: Selection, digests: dict[str, str]) -> str:
    payload = json.dumps([sel.label, [digests[b] for b in sel.batches]])
    return hashlib.sha256(payload.encode()).hexdigest()


def outputs_current(folder: Path, digest: str) -> bool:
    manifest = folder / MANIFEST
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return data.get("digest") == digest and all((folder / f).exists() for f in data.get("files", []))


def write_manifest(folder: Path, sel: Selection, digest: str) -> None:
    files = sorted(p.name for p in folder.iterdir() if p.name != MANIFEST and not p.name.startswith("."))
    tmp = folder / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps({"selection": sel.label, "batches": list(sel.batches), "digest": digest,
                               "files": files}, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(tmp, folder / MANIFEST)


def pause_point(name: str) -> None:
    """Stop here when WEIPIAN_PAUSE_AT names this point (for WEIPIAN_PAUSE_SECONDS, default an
    hour): lets tests kill a run, or cut its database connection, in the middle of a stage."""
    if os.environ.get("WEIPIAN_PAUSE_AT") == name:
        log.warning("paused at %s", name)
        for h in logs.get().handlers:
            h.flush()
        time.sleep(float(os.environ.get("WEIPIAN_PAUSE_SECONDS", "3600")))


def remove_stale_temporaries(folder: Path) -> None:
    """Drop half-written temporary files a killed run left (files are renamed into place when whole)."""
    if folder.is_dir():
        for p in folder.glob(".*"):
            if p.is_dir():
                shutil.rmtree(p)
            elif p.name != MANIFEST:
                p.unlink()


@dataclass
class Target:
    selection: Selection
    folder: Path


def run(conn: psycopg.Connection, county: County, targets: list[Target], record: runs.RunRecord,
        force: bool = False) -> list[Path]:
    """Ingest, classify what changed, and rewrite the outputs that changed; return report paths."""
    with record.stage("ingest") as st:
        reports = ingest.ingest(conn, county)
        for r in reports:
            log.info(r.line(), extra={"stage": "ingest"})
        st["rows_in"] = sum(r.n_read for r in reports)
        st["rows_out"] = sum(r.n_loaded + r.n_repaired for r in reports)
        loaded = {(r.layer.kind, str(r.layer.path), r.layer.layer or "", r.layer.batch or "")
                  for r in reports if not r.skipped}
        record.inputs = [
            {"kind": k, "path": p, "layer": lyr, "batch": b, "checksum": c, "loaded": (k, p, lyr, b) in loaded}
            for k, p, lyr, b, c in conn.execute(
                """SELECT kind, path, layer, batch, checksum FROM weipian.source
                   WHERE county_code = %s ORDER BY layer_index""", (county.code,))
        ]

    digests = batch_digests(conn, county)
    stored = dict(conn.execute(
        "SELECT batch, inputs_digest FROM weipian.batch_state WHERE county_code = %s", (county.code,)
    ).fetchall())
    wanted = sorted({b for t in targets for b in t.selection.batches})
    todo = [b for b in wanted if force or stored.get(b) != digests[b]]
    with record.stage("classify") as st:
        st["rows_in"], st["rows_out"] = 0, 0
        if todo:
            # each ANALYZE in a transaction of its own, so its lock ends with it: inside
            # the batch transaction it would hold up the next county's ANALYZE of the
            # same shared table until this county's whole classification commits
            classify.analyze_stale(conn)
        for b in todo:
            with conn.transaction():  # the results and their state are published together
                counts = classify.classify_batch(conn, county, b)
                conn.execute(
                    """INSERT INTO weipian.batch_state (county_code, batch, inputs_digest, run_id)
                       VALUES (%s, %s, %s, %s)
                       ON CONFLICT (county_code, batch) DO UPDATE
                       SET inputs_digest = EXCLUDED.inputs_digest, run_id = EXCLUDED.run_id,
                           classified_at = now()""",
                    (county.code, b, digests[b], record.id),
                )
                pause_point("classify")
            st["rows_in"] += sum(counts.values())
            summary = "，".join(f"{report.CLASS_ZH[c]} {counts.get(c, 0)}" for c in report.CLASS_ZH)
            log.info("批次 %s：%s", b, summary, extra={"stage": "classify"})
            for w in classify.unknown_codes(conn, county, b):
                log.warning("提示 warning: %s", w, extra={"stage": "classify"})
        skipped = [b for b in wanted if b not in todo]
        if skipped:
            log.info("批次 %s：输入未变化，沿用已有判定结果", "、".join(skipped), extra={"stage": "classify"})

    paths = []
    with record.stage("report") as st:
        st["rows_in"], st["rows_out"] = 0, 0
        for t in targets:
            digest = selection_digest(t.selection, digests)
            if not force and outputs_current(t.folder, digest):
                log.info("%s：输出未变化，未重写 (%s)", t.selection.label, t.folder, extra={"stage": "report"})
                record.outputs.append({"folder": str(t.folder), "written": False})
                paths.append(t.folder / "report.md")
                continue
            stats.compute(conn, county, t.selection)
            remove_stale_temporaries(t.folder)
            pause_point("report")
            path = report.write_outputs(conn, county, t.selection, t.folder)
            write_manifest(t.folder, t.selection, digest)
            record.outputs.append({"folder": str(t.folder), "written": True})
            st["rows_out"] += 1
            paths.append(path)
    return paths


def open_run(county: County, command: str, log_dir: Path, log_format: str):
    """Connect, migrate, take the county lock, start the run record and its log file."""
    conn = db.connect(autocommit=True)
    try:
        for name in db.migrate(conn):
            log.info("数据库升级 migration applied: %s", name)
        runs.acquire_lock(conn, county.code)
        record = runs.RunRecord(conn, county.code, command).start()
    except BaseException:
        conn.close()
        raise
    logs.set_context(run_id=record.id, county=county.code)
    logs.add_file(log_dir / f"run-{record.id}.log", log_format)
    log.info("运行 run %s 开始：%s（%s）", record.id, county.name, county.code)
    return conn, record
